"""The planted-signal release: read by the MELD builder, real clips whose cues survive coding, planted statistics,
exact Bayes ceilings, determinism, argument checks and ``hf-erc make-planted``."""

from __future__ import annotations

import argparse
import colorsys
import contextlib
import csv
import io
import itertools
import json
import math
from collections import Counter, defaultdict

import av
import numpy as np
import pytest

from hf_erc.cli import main
from hf_erc.commands import make_planted
from hf_erc.data import load_erc_dataset
from hf_erc.data.media import decode_audio, decode_video_frames
from hf_erc.data.planted import (
    CUE_WORDS,
    MELD_SPEAKERS,
    MODALITIES,
    NEW_SPEAKERS,
    SENTIMENT_OF,
    PlantedConfig,
    read_planted_config,
    read_planted_truth,
    release_ceilings,
    sample_planted_release,
    write_planted_release,
)
from hf_erc.data.planted_ceilings import (
    UNOBSERVED,
    PlantedSplit,
    context_posteriors,
    expected_utterance_accuracy,
    planted_ceilings,
    transition_matrix,
    utterance_posteriors,
)
from hf_erc.data.planted_media import HUE_DEGREES, TONE_HZ, audio_cue, video_cue
from hf_erc.labels import MELD_EMOTIONS

SMALL = {"dialogues": {"train": 3, "dev": 2, "test": 2}, "seed": 7}
CLIP_FOLDERS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
DATASET_SPLIT = {"train": "train", "dev": "validation", "test": "test"}


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def clip_key(row) -> tuple[int, int]:
    return int(row["Dialogue_ID"]), int(row["Utterance_ID"])


@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    """A small planted release with media: (folder, summary)."""
    folder = tmp_path_factory.mktemp("planted") / "release"
    return folder, write_planted_release(folder, **SMALL)


@pytest.fixture(scope="module")
def small_dataset(small_release, tmp_path_factory):
    folder, _ = small_release
    return load_erc_dataset("meld", folder, cache_dir=tmp_path_factory.mktemp("planted_cache"))


# ---------------------------------------------------------------- the release as MELD


def test_meld_builder_reads_every_split_and_flags_exactly_the_bad_clips(small_release, small_dataset):
    folder, summary = small_release
    assert {split: len(small_dataset[split]) for split in ("train", "validation", "test")} == {
        DATASET_SPLIT[split]: count for split, count in summary.utterances.items()
    }
    assert small_dataset["train"].features["emotion"].names == list(MELD_EMOTIONS)
    missing = tuple(int(part) for part in summary.missing_clip.removeprefix("train_splits/dia")[:-4].split("_utt"))
    corrupt = tuple(int(part) for part in summary.corrupt_clip.removeprefix("train_splits/dia")[:-4].split("_utt"))
    assert missing != corrupt
    emotion_names = small_dataset["train"].features["emotion"].names
    for split, dataset_split in DATASET_SPLIT.items():
        truth = read_rows(folder / f"planted_{split}.csv")
        table = read_rows(folder / f"{split}_sent_emo.csv")
        rows = small_dataset[dataset_split].to_list()
        assert len({row["dialogue_id"] for row in rows}) == summary.config.dialogues[split]
        for row, planted, released in zip(rows, truth, table, strict=True):
            key = (int(row["dialogue_id"][3:]), row["utterance_id"])
            assert key == clip_key(planted) == clip_key(released)
            assert (row["speaker"], row["text"]) == (released["Speaker"], released["Utterance"])
            assert emotion_names[row["emotion"]] == planted["emotion"] == released["Emotion"]
            assert released["Sentiment"] == SENTIMENT_OF[planted["emotion"]]
            bad = split == "train" and key in (missing, corrupt)
            assert row["has_audio"] is row["has_video"] is (not bad), (split, key)
            assert (row["audio_path"] is None) == (split == "train" and key == missing)
            assert planted["clip"] == ("missing" if bad and key == missing else "corrupt" if bad else "ok")


def test_clips_are_h264_and_aac_mp4s_of_the_csv_durations(small_release):
    folder, _ = small_release
    durations = []
    for split, clip_folder in CLIP_FOLDERS.items():
        for row in read_rows(folder / f"{split}_sent_emo.csv"):
            path = folder / clip_folder / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
            planted_clip = {clip_key(r): r["clip"] for r in read_rows(folder / f"planted_{split}.csv")}[clip_key(row)]
            if planted_clip != "ok":
                assert path.exists() == (planted_clip == "corrupt")
                continue
            with av.open(str(path)) as container:
                assert "mp4" in container.format.name
                video, audio = container.streams.video[0], container.streams.audio[0]
                assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
                assert (video.codec_context.width, video.codec_context.height) == (64, 64)
                assert (audio.codec_context.sample_rate, audio.codec_context.channels) == (16000, 1)
                seconds = container.duration / 1e6
            start, end = (sum(float(x) * 60**i for i, x in enumerate(reversed(t.replace(",", ".").split(":"))))
                          for t in (row["StartTime"], row["EndTime"]))  # fmt: skip
            assert abs(seconds - (end - start)) < 0.2
            durations.append(end - start)
    assert 1.0 <= min(durations) and max(durations) <= 3.0 and max(durations) - min(durations) > 0.5


def test_decoded_clips_show_their_planted_audio_and_video_cues(small_release):
    """The dominant frequency and the mean hue of every decoded clip are its planted cues: they survive AAC/H.264."""
    folder, summary = small_release
    emotions = summary.config.emotions
    checked = 0
    for split, clip_folder in CLIP_FOLDERS.items():
        for row in read_rows(folder / f"planted_{split}.csv"):
            if row["clip"] != "ok":
                continue
            path = folder / clip_folder / f"dia{row['Dialogue_ID']}_utt{row['Utterance_ID']}.mp4"
            waveform = decode_audio(path)
            spectrum = np.abs(np.fft.rfft(waveform))
            frequencies = np.fft.rfftfreq(len(waveform), d=1 / 16000)
            spectrum[frequencies < 100] = 0
            peak = frequencies[np.argmax(spectrum)]
            assert abs(math.log2(peak / TONE_HZ[row["audio_cue"]])) < 0.1, (path, peak)
            frames = decode_video_frames(path, num_frames=4, size=None)
            hue = 360 * colorsys.rgb_to_hsv(*(frames.reshape(-1, 3).mean(axis=0) / 255))[0]
            distance = abs(hue - HUE_DEGREES[row["video_cue"]])
            assert min(distance, 360 - distance) < 15, (path, hue)
            assert audio_cue(waveform, emotions) == row["audio_cue"]
            assert video_cue(frames, emotions) == row["video_cue"]
            checked += 1
    assert checked == sum(summary.utterances.values()) - 2


def test_text_holds_exactly_one_cue_word_which_is_the_text_cue(small_release):
    folder, _ = small_release
    word_to_emotion = {word: emotion for emotion, word in CUE_WORDS.items()}
    for split in CLIP_FOLDERS:
        truth = read_rows(folder / f"planted_{split}.csv")
        for released, planted in zip(read_rows(folder / f"{split}_sent_emo.csv"), truth, strict=True):
            words = released["Utterance"].lower().replace("?", " ").replace(".", " ").replace(",", " ").split()
            cues = [word_to_emotion[word] for word in words if word in word_to_emotion]
            assert cues == [planted["text_cue"]]


def test_prepare_command_reads_the_release(small_release, tmp_path):
    folder, summary = small_release
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["prepare", "meld", "--raw-dir", str(folder), "--output", str(tmp_path / "out"),
                     "--cache-dir", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0, printed.getvalue()
    prepared = load_erc_dataset("meld", tmp_path / "out")
    assert len(prepared["train"]) == summary.utterances["train"]
    assert sum(prepared["train"]["has_audio"]) == summary.utterances["train"] - 2


# ---------------------------------------------------------------- the planted statistics


@pytest.fixture(scope="module")
def large_draw():
    """About 21,000 training utterances drawn without writing anything."""
    config = PlantedConfig.create(dialogues={"train": 3000, "dev": 1, "test": 1}, seed=11)
    return config, sample_planted_release(config)["train"]


def test_each_cue_is_right_with_its_reliability_and_otherwise_uniform(large_draw):
    config, rows = large_draw
    num_emotions = len(config.emotions)
    for modality in MODALITIES:
        right = np.mean([row.cues[modality] == row.emotion for row in rows])
        assert abs(right - config.reliabilities[modality]) < 0.015, modality
        wrong = Counter(
            (config.emotions.index(row.cues[modality]) - config.emotions.index(row.emotion)) % num_emotions
            for row in rows
            if row.cues[modality] != row.emotion
        )
        shares = np.array([wrong[offset] for offset in range(1, num_emotions)]) / sum(wrong.values())
        assert np.abs(shares - 1 / (num_emotions - 1)).max() < 0.03, modality
    emotion_shares = np.array(list(Counter(row.emotion for row in rows).values())) / len(rows)
    assert np.abs(emotion_shares - 1 / num_emotions).max() < 0.02


def test_dialogue_structure_and_speaker_persistence(large_draw):
    config, rows = large_draw
    dialogues = defaultdict(list)
    for row in rows:
        dialogues[row.dialogue].append(row)
    repeats = []
    for turns in dialogues.values():
        assert 4 <= len(turns) <= 10
        assert [row.utterance for row in turns] == list(range(len(turns)))
        assert len({row.speaker for row in turns}) in (2, 3)
        assert all(a.speaker != b.speaker for a, b in itertools.pairwise(turns))
        last = {}
        for row in turns:
            if row.speaker in last:
                repeats.append(last[row.speaker] == row.emotion)
            last[row.speaker] = row.emotion
    expected = config.persistence + (1 - config.persistence) / len(config.emotions)
    assert abs(np.mean(repeats) - expected) < 0.015
    speakers = Counter(row.speaker for row in rows)
    assert set(speakers) == set(MELD_SPEAKERS + NEW_SPEAKERS)


def test_new_speakers_are_not_meld_characters(meld_csv_dir):
    tables = [read_rows(meld_csv_dir / f"{name}_sent_emo.csv") for name in ("train", "dev", "test")]
    names = {row["Speaker"] for table in tables for row in table}
    assert set(MELD_SPEAKERS) <= names
    assert not set(NEW_SPEAKERS) & names


# ---------------------------------------------------------------- the Bayes ceilings


def brute_force_posteriors(split: PlantedSplit, reliabilities, persistence):
    """Marginal posteriors of every utterance by summing the joint over all K**N emotion sequences."""
    num_emotions, count = split.num_emotions, len(split.emotion)
    transition = transition_matrix(num_emotions, persistence)
    sequences = np.array(list(itertools.product(range(num_emotions), repeat=count)))
    joint = np.ones(len(sequences))
    last = {}
    for turn in range(count):
        chain = (int(split.dialogue[turn]), split.speaker[turn])
        joint *= 1 / num_emotions if chain not in last else transition[sequences[:, last[chain]], sequences[:, turn]]
        last[chain] = turn
        for modality, cues in split.cues.items():
            if cues[turn] != UNOBSERVED:
                r = reliabilities[modality]
                joint *= np.where(sequences[:, turn] == cues[turn], r, (1 - r) / (num_emotions - 1))
    marginals = np.stack(
        [np.bincount(sequences[:, turn], weights=joint, minlength=num_emotions) for turn in range(count)]
    )
    return marginals / marginals.sum(axis=1, keepdims=True)


def tiny_split() -> PlantedSplit:
    """Two dialogues (Ann in both, as two separate chains), three emotions, one unobserved audio cue."""
    return PlantedSplit(
        emotions=("neutral", "surprise", "fear"),
        dialogue=np.array([0, 0, 0, 0, 0, 1, 1, 1]),
        speaker=["Ann", "Bob", "Ann", "Ann", "Bob", "Ann", "Cy", "Ann"],
        emotion=np.array([0, 1, 0, 2, 1, 2, 2, 0]),
        cues={
            "text": np.array([0, 1, 2, 2, 0, 2, 1, 0]),
            "audio": np.array([1, 1, 0, UNOBSERVED, 1, 2, 2, 1]),
            "video": np.array([0, 2, 0, 2, 1, 0, 2, 0]),
        },
    )


@pytest.mark.parametrize("persistence", [0.0, 0.3, 0.9])
def test_context_posteriors_equal_brute_force_enumeration(persistence):
    split, reliabilities = tiny_split(), {"text": 0.8, "audio": 0.6, "video": 0.45}
    expected = brute_force_posteriors(split, reliabilities, persistence)
    np.testing.assert_allclose(context_posteriors(split, reliabilities, persistence), expected, atol=1e-12)
    # With persistence 0 the chains carry nothing: context changes no posterior.
    independent = brute_force_posteriors(split, reliabilities, 0.0)
    np.testing.assert_allclose(utterance_posteriors(split, reliabilities), independent, atol=1e-12)
    for modality in MODALITIES:
        cues = {modality: split.cues[modality]}
        single = PlantedSplit(split.emotions, split.dialogue, split.speaker, split.emotion, cues)
        np.testing.assert_allclose(
            context_posteriors(split, reliabilities, persistence, [modality]),
            brute_force_posteriors(single, reliabilities, persistence),
            atol=1e-12,
        )


def test_expected_utterance_accuracy_on_hand_cases():
    assert expected_utterance_accuracy([0.7], 4) == pytest.approx(0.7)
    # A second cue as reliable as the first only breaks ties it cannot win: per utterance it adds nothing.
    assert expected_utterance_accuracy([0.7, 0.7], 4) == pytest.approx(0.7)
    # With two emotions and three cues of 0.6 the majority vote is right with 0.6**3 + 3 * 0.6**2 * 0.4.
    assert expected_utterance_accuracy([0.6, 0.6, 0.6], 2) == pytest.approx(0.648)


@pytest.mark.parametrize(
    "reliability", [{"text": 0.6, "audio": 0.6, "video": 0.6}, {"text": 0.8, "audio": 0.7, "video": 0.6}]
)
def test_ceilings_of_a_large_release(reliability, tmp_path):
    dialogues = {"train": 1, "dev": 1, "test": 2000}
    summary = write_planted_release(tmp_path, dialogues, seed=5, reliabilities=reliability, media=False)
    ceilings = release_ceilings(tmp_path)
    assert ceilings == summary.ceilings
    assert not any((tmp_path / folder).exists() for folder in CLIP_FOLDERS.values())
    for modality, r in reliability.items():
        assert abs(ceilings[modality]["accuracy"] - r) < 0.02
    assert abs(ceilings["all"]["accuracy"] - expected_utterance_accuracy(reliability, 4)) < 0.02
    # Fusing the cues never loses; with equal reliabilities it gains 11 points in expectation (71.2 vs 60), while
    # with 0.8/0.7/0.6 audio and video overrule the text when they agree against it (85.2 vs 80).
    best_single = max(ceilings[m]["accuracy"] for m in MODALITIES)
    assert ceilings["all"]["accuracy"] >= best_single - 0.01
    assert ceilings["all"]["accuracy"] > best_single + 0.04
    # persistence 0.7 > 1/K: the dialogue context adds to every cue set, and most to all the cues together.
    for cues in MODALITIES + ("all",):
        assert ceilings[f"{cues}+context"]["accuracy"] > ceilings[cues]["accuracy"] + 0.01, cues
    best_single_in_context = max(ceilings[f"{m}+context"]["accuracy"] for m in MODALITIES)
    assert ceilings["all+context"]["accuracy"] > best_single_in_context + 0.03
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    line = f"| Bayes, all cues + dialogue context | {100 * ceilings['all+context']['accuracy']:.1f} |"
    assert line in card and "--no-media" in card


def test_context_adds_nothing_without_persistence(tmp_path):
    write_planted_release(tmp_path, {"train": 1, "dev": 1, "test": 300}, seed=2, persistence=0.0, media=False)
    config = read_planted_config(tmp_path)
    truth = read_planted_truth(tmp_path, "test")
    np.testing.assert_allclose(
        context_posteriors(truth, config.reliabilities, 0.0), utterance_posteriors(truth, config.reliabilities)
    )
    ceilings = planted_ceilings(truth, config.reliabilities, 0.0)
    assert ceilings["all+context"] == ceilings["all"]


def test_truth_of_a_bad_clip_has_no_audio_or_video_cue(small_release):
    folder, _ = small_release
    truth = read_planted_truth(folder, "train")
    rows = read_rows(folder / "planted_train.csv")
    bad = np.array([row["clip"] != "ok" for row in rows])
    assert bad.sum() == 2
    for modality in ("audio", "video"):
        assert (truth.cues[modality][bad] == UNOBSERVED).all() and (truth.cues[modality][~bad] >= 0).all()
    assert (truth.cues["text"] >= 0).all()
    validation, dev = read_planted_truth(folder, "validation"), read_planted_truth(folder, "dev")
    assert validation.emotion.tolist() == dev.emotion.tolist()


# ---------------------------------------------------------------- determinism and arguments


def test_same_seed_writes_the_same_bytes(small_release, tmp_path):
    """Clips included, and whether they are written by one process or several."""
    folder, _ = small_release
    again = tmp_path / "again"
    write_planted_release(again, **SMALL, num_workers=2)
    files = sorted(path.relative_to(folder) for path in folder.rglob("*") if path.is_file())
    assert files == sorted(path.relative_to(again) for path in again.rglob("*") if path.is_file())
    assert all((folder / name).read_bytes() == (again / name).read_bytes() for name in files)
    text_only = tmp_path / "text_only"
    write_planted_release(text_only, **SMALL, media=False)
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv", "test_sent_emo.csv", "planted_train.csv", "planted_test.csv"):
        assert (folder / name).read_bytes() == (text_only / name).read_bytes()
    other = tmp_path / "other"
    write_planted_release(other, SMALL["dialogues"], seed=8, media=False)
    assert (other / "planted_train.csv").read_bytes() != (folder / "planted_train.csv").read_bytes()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"reliabilities": {"audio": 0.25}}, "reliability of audio must be in (1/K, 1]"),
        ({"reliabilities": {"text": 1.2}}, "reliability of text must be in (1/K, 1]"),
        ({"reliabilities": {"video": 0.4}, "emotions": 2}, "reliability of video must be in (1/K, 1]"),
        ({"reliabilities": {"speech": 0.7}}, "unknown modality speech"),
        ({"dialogues": 0}, "too few dialogues in train"),
        ({"dialogues": {"train": 5, "dev": 0, "test": 2}}, "too few dialogues in dev"),
        ({"dialogues": {"train": 5, "test": 2}}, "need a count for each of train, dev, test"),
        ({"emotions": 1}, "need between 2 and 7 emotions"),
        ({"emotions": ["joy", "happy"]}, "unknown emotion(s) ['happy']"),
        ({"persistence": 1.5}, "persistence must be a probability"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_one_line_value_errors(arguments, message, tmp_path):
    with pytest.raises(ValueError) as error:
        write_planted_release(tmp_path / "release", **arguments)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "release").exists()


def test_a_non_empty_folder_needs_overwrite(tmp_path):
    write_planted_release(tmp_path, 1, media=False)
    with pytest.raises(ValueError, match="is not empty"):
        write_planted_release(tmp_path, 1, media=False)
    (tmp_path / "notes.txt").write_text("mine")
    summary = write_planted_release(tmp_path, 2, seed=4, media=False, overwrite=True)
    assert read_planted_config(tmp_path) == summary.config and (tmp_path / "notes.txt").exists()


# ---------------------------------------------------------------- hf-erc make-planted


def run_command(argv):
    parser = argparse.ArgumentParser()
    make_planted.register(parser.add_subparsers())
    args = parser.parse_args(["make-planted", *argv])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = args.func(args)
    return code, printed.getvalue()


def test_make_planted_command(tmp_path):
    code, printed = run_command([
        "--output", str(tmp_path / "release"), "--dialogues", "train=2,dev=1,test=1", "--seed", "3",
        "--reliability", "audio=0.7,video=0.6", "--persistence", "0.5", "--emotions", "anger,neutral,joy",
        "--no-media",
    ])  # fmt: skip
    assert code == 0
    assert "| Bayes, all cues + dialogue context |" in printed
    config = read_planted_config(tmp_path / "release")
    reliabilities = {"text": 0.8, "audio": 0.7, "video": 0.6}
    dialogues = {"train": 2, "dev": 1, "test": 1}
    assert config == PlantedConfig.create(dialogues, 3, reliabilities, 0.5, ["anger", "joy", "neutral"])
    assert config.emotions == ("neutral", "joy", "anger")
    record = json.loads((tmp_path / "release" / "planted.json").read_text(encoding="utf-8"))
    assert record["media"] is False and record["cue_words"] == {"neutral": "table", "joy": "garden", "anger": "ladder"}
    # The card's regeneration command writes the same release.
    card = (tmp_path / "release" / "README.md").read_text(encoding="utf-8")
    command = next(line.strip() for line in card.splitlines() if line.strip().startswith("hf-erc make-planted"))
    argv = command.split()[2:]
    argv[argv.index("DIR")] = str(tmp_path / "again")
    assert run_command(argv)[0] == 0
    for name in ("planted_train.csv", "test_sent_emo.csv", "README.md"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "release" / name).read_bytes()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--reliability", "text=high"], "--reliability: expected name=value pairs"),
        (["--reliability", "speech=0.7"], "unknown modality speech"),
        (["--dialogues", "train=3,dev=1"], "need a count for each of train, dev, test"),
        (["--emotions", "9"], "need between 2 and 7 emotions"),
    ],
)
def test_make_planted_errors_are_one_line(argv, message, tmp_path):
    with pytest.raises(ValueError) as error:
        run_command(["--output", str(tmp_path / "release"), "--no-media", *argv])
    assert message in str(error.value) and "\n" not in str(error.value)
