"""`hf-erc predict --video ... --subtitles ...` and the pipeline on recordings: one result per cue, speakers and
times kept, for a text-only checkpoint and a tiny multimodal one; CSV and timeline outputs; bad inputs named."""

import csv
import json

import pytest
import torch

from hf_erc.cli import main as cli_main
from hf_erc.labels import MELD_EMOTIONS
from hf_erc.models import TelMEForEmotionRecognition
from hf_erc.inference.pipelines import pipeline
from tests.utils.media_fixtures import write_corrupt, write_mp4
from tests.utils.subtitle_files import SCENE, srt_text, vtt_text, write_subtitles
from tests.utils.tiny_telme import tiny_config, tiny_processor

SPEAKERS = ["JOEY", "JOEY", "Rachel"]  # the second cue carries the first speaker on




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
