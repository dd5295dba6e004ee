"""`hf-erc predict --video ... --subtitles ...` and the pipeline on recordings: one result per cue, speakers and
times kept, for a text-only checkpoint and tiny multimodal ones; CSV and timeline outputs; bad inputs named. A long
video is read a few cues at a time with the same labels as at once; a folder of videos is shared out among launched
processes, one result file per video, resumed where a run stopped."""

import csv
import json
import re
import shutil
import subprocess

import pytest
import torch

from hf_erc.cli import main as cli_main
from hf_erc.features.encoders import AudioEncoder, TextEncoder, VideoEncoder
from hf_erc.features.extract import save_encoder_specs
from hf_erc.labels import MELD_EMOTIONS
from hf_erc.models import SDTConfig, SDTForEmotionRecognition, TelMEForEmotionRecognition
from hf_erc.inference.pipelines import pipeline
from tests.utils.media_fixtures import write_corrupt, write_mp4
from tests.utils.subtitle_files import SCENE, srt_text, vtt_text, write_subtitles
from tests.utils.tiny_encoders import write_tiny_audio_encoder, write_tiny_video_encoder
from tests.utils.tiny_telme import tiny_config, tiny_processor
from tests.utils.training import REPO_ROOT, accelerate_launcher, offline_environment

SPEAKERS = ["JOEY", "JOEY", "Rachel"]  # the second cue carries the first speaker on
# Seven cues over talk.mp4's 7 s: more than a few chunks of cues.
SEVEN_CUES = [(index + 0.1, index + 0.9, ("JOEY", "Rachel", "Ross")[index % 3], f"Line {index}") for index in range(7)]




@pytest.fixture(scope="module")
def telme_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("telme")
    torch.manual_seed(0)
    TelMEForEmotionRecognition(tiny_config()).eval().save_pretrained(path)
    tiny_processor(max_audio_seconds=1.0).save_pretrained(path)
    return path


def test_predict_labels_every_cue_of_a_subtitled_video(text_only_checkpoint, talk, tmp_path, capsys):
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(talk / "talk.mp4")]
    arguments += ["--subtitles", str(talk / "talk.srt"), "--json", "--device", "cpu"]
    arguments += ["--csv", str(tmp_path / "cues.csv"), "--plot", str(tmp_path / "timeline.png")]
    assert cli_main(arguments) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["speaker"] for row in rows] == SPEAKERS
    assert [(row["start"], row["end"]) for row in rows] == [(start, end) for start, end, _, _ in SCENE]
    assert [row["text"] for row in rows] == [text for _, _, _, text in SCENE]
    for row in rows:
        assert set(row["probabilities"]) == set(MELD_EMOTIONS)
        assert row["emotion"] == max(row["probabilities"], key=row["probabilities"].get)
        assert "flags" not in row  # a text-only model reads no media
    with open(tmp_path / "cues.csv", newline="", encoding="utf-8") as file:
        lines = list(csv.DictReader(file))
    assert [line["speaker"] for line in lines] == SPEAKERS and float(lines[2]["start"]) == 4.5
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_pipeline_reads_each_cue_s_audio_and_frames_from_the_video(telme_checkpoint, talk, tmp_path):
    """A multimodal checkpoint: each cue's audio and frames are cut from the video by the cue's times, through the
    processor; the same as labelling the cues as a conversation of segments."""
    labeller = pipeline(str(telme_checkpoint), device="cpu")
    from_video = labeller(video=str(talk / "talk.mp4"), subtitles=str(talk / "talk.srt"))
    assert [row["speaker"] for row in from_video] == SPEAKERS
    video = str(talk / "talk.mp4")
    conversation = {
        "utterances": [
            {"speaker": speaker, "text": text, "audio": video, "video": video, "start": start, "end": end}
            for speaker, (start, end, _, text) in zip(SPEAKERS, SCENE)
        ]
    }
    for row, expected in zip(from_video, labeller(conversation)):
        assert row["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-6)
    # A batch: a list of inputs gives a list of results, one per input.
    batch = labeller([{"video": video, "subtitles": str(talk / "talk.srt")}, conversation])
    assert len(batch) == 2 and len(batch[1]) == 3
    # WebVTT voices give the same speakers.
    vtt = write_subtitles(tmp_path / "talk.vtt", vtt_text())
    assert [row["speaker"] for row in labeller(video=video, subtitles=str(vtt))] == SPEAKERS


def test_a_folder_of_videos_is_labelled_in_one_run(text_only_checkpoint, talk, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.mp4").write_bytes((talk / "talk.mp4").read_bytes())
        write_subtitles(folder / f"{name}.srt", srt_text())
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(folder), "--json", "--device", "cpu"]
    assert cli_main(arguments + ["--csv", str(tmp_path / "all.csv"), "--plot", str(tmp_path / "plots")]) == 0
    results = json.loads(capsys.readouterr().out)
    assert sorted(results) == ["a.mp4", "b.mp4"] and all(len(rows) == 3 for rows in results.values())
    assert sorted(path.name for path in (tmp_path / "plots").iterdir()) == ["a.png", "b.png"]
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as file:
        assert [line["video"] for line in csv.DictReader(file)] == ["a.mp4"] * 3 + ["b.mp4"] * 3


def test_a_video_without_audio_is_labelled_from_the_rest_and_flagged(telme_checkpoint, tmp_path):
    video = write_mp4(tmp_path / "silent.mp4", seconds=7.0, fps=10, size=(32, 40), with_audio=False)
    subtitles = write_subtitles(tmp_path / "silent.srt", srt_text())
    rows = pipeline(str(telme_checkpoint), device="cpu")(video=str(video), subtitles=str(subtitles))
    assert len(rows) == 3
    for row in rows:
        assert row["flags"] == [f"{video} has no audio stream that decodes"]


@pytest.mark.parametrize(
    "subtitles, message",
    [
        ("1\n00:00:03,000 --> 00:00:02,000\nJOEY: backwards\n", r"cue 1 \(line 1\)"),
        ("1\nnot a time\nJOEY: hi\n", "no timed cues"),
        ("1\n00:00:01,000 --> 00:00:03,000\nA: one\n\n2\n00:00:02,000 --> 00:00:04,000\nB: two\n", "overlap"),
        ("1\n00:00:09,000 --> 00:00:10,000\nJOEY: after the end\n", "past|end of the video|duration"),
    ],
)
def test_bad_subtitles_are_named_with_the_cue(text_only_checkpoint, talk, tmp_path, capsys, subtitles, message):
    path = write_subtitles(tmp_path / "bad.srt", subtitles)
    arguments = ["predict", "--model", str(text_only_checkpoint), "--video", str(talk / "talk.mp4")]
    assert cli_main(arguments + ["--subtitles", str(path), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "bad.srt" in error
    assert pytest.importorskip("re").search(message, error), error


def test_bad_videos_are_named(text_only_checkpoint, tmp_path, capsys):
    subtitles = write_subtitles(tmp_path / "talk.srt", srt_text())
    corrupt = write_corrupt(tmp_path / "broken.mp4")
    arguments = ["predict", "--model", str(text_only_checkpoint), "--subtitles", str(subtitles), "--device", "cpu"]
    assert cli_main(arguments + ["--video", str(corrupt)]) == 2
    assert "broken.mp4 cannot be decoded" in capsys.readouterr().err
    assert cli_main(arguments + ["--video", str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4 does not exist" in capsys.readouterr().err
    lonely = write_mp4(tmp_path / "lonely.mp4", seconds=2.0)
    assert cli_main(["predict", "--model", str(text_only_checkpoint), "--video", str(lonely)]) == 2
    assert "No subtitles for" in capsys.readouterr().err


def test_a_damaged_checkpoint_is_named(text_only_checkpoint, tmp_path, capsys):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(text_only_checkpoint, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    conversation = tmp_path / "conversation.json"
    conversation.write_text(json.dumps({"utterances": [{"speaker": "A", "text": "Hi."}]}), encoding="utf-8")
    assert cli_main(["predict", str(conversation), "--model", str(damaged), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert f"{weights} is damaged" in error and "Traceback" not in error
    (damaged / "config.json").write_text("{not json", encoding="utf-8")
    assert cli_main(["predict", str(conversation), "--model", str(damaged), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "config.json" in error and "not a valid JSON" in error and "Traceback" not in error


@pytest.fixture(scope="module")
def sdt_media_checkpoint(tmp_path_factory):
    """A tiny feature-level SDT reading text (MiniLM), audio (tiny data2vec-audio) and video (tiny TimeSformer)
    features, with its encoder record: the pipeline encodes each cue's media itself."""
    path = tmp_path_factory.mktemp("sdt-media")
    audio = AudioEncoder(str(write_tiny_audio_encoder(path / "audio-encoder")), device="cpu")
    video = VideoEncoder(str(write_tiny_video_encoder(path / "video-encoder")), device="cpu")
    torch.manual_seed(0)
    config = SDTConfig.for_dataset(
        "meld", modalities=["text", "audio", "video"], text_dim=384, audio_dim=audio.spec.dim, video_dim=video.spec.dim,
        hidden_size=32, num_attention_heads=2,
    )  # fmt: skip
    SDTForEmotionRecognition(config).eval().save_pretrained(path)
    save_encoder_specs({"text": TextEncoder("minilm").spec, "audio": audio.spec, "video": video.spec}, path)
    return path


def _label_in_chunks(labeller, video, subtitles, chunk_size, monkeypatch):
    """The rows of ``video`` read ``chunk_size`` cues at a time, and how many cues' media were decoded before each run
    of the model (a processor checkpoint runs its model per chunk; a feature-level one once, on the whole
    conversation)."""
    decoded, decoded_before_model = [0], []
    original_forward = labeller.model.forward

    def forward(*args, **kwargs):
        decoded_before_model.append(decoded[0])
        decoded[0] = 0
        return original_forward(*args, **kwargs)

    with monkeypatch.context() as patch:
        if hasattr(labeller, "_decoder"):
            original_decoder = type(labeller)._decoder

            def counting_decoder(self, modality):
                read = original_decoder(self, modality)

                def counted(*args):
                    decoded[0] += modality == "video"
                    return read(*args)

                return counted

            patch.setattr(type(labeller), "_decoder", counting_decoder)
        patch.setattr(labeller.model, "forward", forward)
        patch.setattr(labeller, "media_chunk_size", chunk_size)
        rows = labeller(video=str(video), subtitles=str(subtitles))
    return rows, decoded_before_model


@pytest.mark.parametrize("checkpoint", ["telme_checkpoint", "sdt_media_checkpoint"])
def test_labels_do_not_depend_on_how_many_cues_are_read_at_a_time(checkpoint, talk, tmp_path, monkeypatch, request):
    """Cues are decoded a chunk at a time and their media turned into inputs (TelME: run through the model; SDT:
    encoded to features) before the next chunk; the model's context stays the whole conversation, so every label and
    probability is the one of reading all cues at once."""
    subtitles = write_subtitles(tmp_path / "seven.srt", srt_text(SEVEN_CUES))
    labeller = pipeline(str(request.getfixturevalue(checkpoint)), device="cpu")
    at_once, _ = _label_in_chunks(labeller, talk / "talk.mp4", subtitles, 100, monkeypatch)
    assert [row["text"] for row in at_once] == [text for *_, text in SEVEN_CUES]
    for chunk_size in (1, 3):
        rows, decoded_before_model = _label_in_chunks(labeller, talk / "talk.mp4", subtitles, chunk_size, monkeypatch)
        assert [row["emotion"] for row in rows] == [row["emotion"] for row in at_once]
        for row, expected in zip(rows, at_once):
            assert row["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
            assert row.get("flags") == expected.get("flags")
        if checkpoint == "telme_checkpoint":  # one model run per chunk, right after the chunk is decoded
            assert decoded_before_model == [len(chunk) for chunk in _chunks(SEVEN_CUES, chunk_size)]


def _chunks(items, size):
    return [items[begin : begin + size] for begin in range(0, len(items), size)]


def test_predict_reads_a_video_in_batches_of_cues_with_a_progress_bar(telme_checkpoint, talk, tmp_path, capsys):
    subtitles = write_subtitles(tmp_path / "seven.srt", srt_text(SEVEN_CUES))
    arguments = ["predict", "--model", str(telme_checkpoint), "--video", str(talk / "talk.mp4"), "--json"]
    assert cli_main(arguments + ["--subtitles", str(subtitles), "--device", "cpu", "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    expected = pipeline(str(telme_checkpoint), device="cpu")(video=str(talk / "talk.mp4"), subtitles=str(subtitles))
    assert [row["emotion"] for row in rows] == [row["emotion"] for row in expected]
    assert re.search(r"cues: +\d+%.*\| \d/7 ", captured.err), captured.err  # tqdm's bar over the cues, on stderr
    assert cli_main(arguments + ["--subtitles", str(subtitles), "--batch-size", "0"]) == 2
    assert "--batch-size 0" in capsys.readouterr().err


def _write_video_folder(talk, folder, names):
    """Copies of talk.mp4, each with subtitles of its own (its name in every line), so a result written for the
    wrong video shows."""
    folder.mkdir()
    for name in names:
        shutil.copy(talk / "talk.mp4", folder / f"{name}.mp4")
        cues = [(start, end, speaker, f"{text} Video {name}.") for start, end, speaker, text in SCENE]
        write_subtitles(folder / f"{name}.srt", srt_text(cues))
    return folder


def _read_results(folder):
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))}


def _assert_same_results(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, rows in expected.items():
        labelled = [(row["text"], row["emotion"]) for row in actual[name]]
        assert labelled == [(row["text"], row["emotion"]) for row in rows]
        for row, reference in zip(actual[name], rows):
            assert row["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-6)


@pytest.mark.slow
def test_launched_processes_share_a_folder_of_videos_and_a_rerun_skips_what_is_done(
    telme_checkpoint, talk, tmp_path, capsys
):
    """`accelerate launch --num_processes 2 -m hf_erc.cli predict --video FOLDER --output DIR`: each process labels
    its share of the videos, one JSON file per video, the same files as one process writes; a second run skips the
    videos whose file exists, and a file a killed run left half-written (its temporary name) does not count."""
    folder = _write_video_folder(talk, tmp_path / "videos", ["a", "b", "c"])
    command = ["predict", "--model", str(telme_checkpoint), "--video", str(folder)]
    assert cli_main(command + ["--output", str(tmp_path / "one"), "--device", "cpu"]) == 0
    one = _read_results(tmp_path / "one")
    assert sorted(one) == ["a.json", "b.json", "c.json"]
    assert [row["text"] for row in one["b.json"]] == [f"{text} Video b." for *_, text in SCENE]
    assert capsys.readouterr().err.count("Wrote ") == 3

    launched = subprocess.run(
        accelerate_launcher(2) + ["-m", "hf_erc.cli", *command, "--output", str(tmp_path / "two")],
        cwd=REPO_ROOT, env=offline_environment(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-5000:]
    assert "videos (process 1/2)" in launched.stderr and "videos (process 2/2)" in launched.stderr
    assert launched.stderr.count("Wrote ") == 3  # every video once
    _assert_same_results(_read_results(tmp_path / "two"), one)

    # A rerun labels nothing; after a killed run (b's file never completed), only b is labelled again.
    written = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "two").glob("*.json")}
    assert cli_main(command + ["--output", str(tmp_path / "two"), "--device", "cpu"]) == 0
    error = capsys.readouterr().err
    assert "Skipping 3 video(s) whose results are in" in error and "Wrote " not in error
    (tmp_path / "two" / "b.json").unlink()
    (tmp_path / "two" / "b.json.4242.partial").write_text('[{"speaker": "JOEY", "te', encoding="utf-8")
    assert cli_main(command + ["--output", str(tmp_path / "two"), "--device", "cpu"]) == 0
    error = capsys.readouterr().err
    assert "Skipping 2 video(s)" in error and error.count("Wrote ") == 1 and "b.json" in error
    _assert_same_results(_read_results(tmp_path / "two"), one)
    for name in ("a.json", "c.json"):
        assert (tmp_path / "two" / name).stat().st_mtime_ns == written[name]


def test_output_options_are_checked(telme_checkpoint, talk, tmp_path, capsys, monkeypatch):
    folder = _write_video_folder(talk, tmp_path / "videos", ["a", "b"])
    (folder / "b.mkv").write_bytes((folder / "b.mp4").read_bytes())
    command = ["predict", "--model", str(telme_checkpoint), "--device", "cpu"]
    cases = [
        (["--video", str(folder), "--output", str(tmp_path / "out"), "--json"], "not with --json or --csv"),
        (["--video", str(talk / "talk.mp4"), "--output", str(tmp_path / "out")], "give --video FOLDER"),
        (["--video", str(folder), "--output", str(tmp_path / "out")], "b.mp4 would both write"),
    ]
    for arguments, message in cases:
        assert cli_main(command + arguments) == 2
        assert message in capsys.readouterr().err
    (folder / "b.mkv").unlink()
    (folder / "b.srt").unlink()  # a video without subtitles stops the run before any video is labelled
    assert cli_main(command + ["--video", str(folder), "--output", str(tmp_path / "out")]) == 2
    assert "No subtitles for" in capsys.readouterr().err and not list((tmp_path / "out").glob("*.json"))
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched, but nothing to share out
    assert cli_main(command + ["--video", str(talk / "talk.mp4"), "--subtitles", str(talk / "talk.srt")]) == 2
    assert "2 processes were launched" in capsys.readouterr().err
