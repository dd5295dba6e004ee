"""`hf-erc extract-features` under `accelerate launch` with two gloo processes: the same dataset as one process.

A subset of the real MELD CSVs (a few dialogues per split) with some clips, a tiny random RoBERTa text encoder with
MiniLM's tokenizer and a tiny data2vec-audio encoder (tests/utils/tiny_encoders.py).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hf_erc.data.prepare import load_erc_dataset
from tests.utils.media_fixtures import write_corrupt, write_mp4
from tests.utils.meld_files import write_meld_subset
from tests.utils.tiny_encoders import write_tiny_audio_encoder, write_tiny_text_encoder
from tests.utils.training import REPO_ROOT, accelerate_launcher, offline_environment

DIALOGUES = {"train_sent_emo.csv": 6, "dev_sent_emo.csv": 2, "test_sent_emo.csv": 2}


def write_meld_with_clips(meld_csv_dir, path):
    """The first dialogues of each official CSV, with clips for the first train turns (one more clip is corrupt)."""
    write_meld_subset(meld_csv_dir, path, DIALOGUES)
    for folder in ("train_splits", "dev_splits_complete", "output_repeated_splits_test"):
        (path / folder).mkdir()
    for utterance in range(5):
        write_mp4(path / "train_splits" / f"dia0_utt{utterance}.mp4", seconds=0.4 + 0.1 * utterance, size=(32, 32))
    write_corrupt(path / "train_splits" / "dia1_utt0.mp4")
    return path


def write_tiny_encoders(path):
    """The tiny text encoder and data2vec-audio of tests/utils/tiny_encoders.py."""
    return write_tiny_text_encoder(path / "text"), write_tiny_audio_encoder(path / "audio")


def extract(launcher, data_dir, output, encoders, datasets_cache):
    text, audio = encoders
    command = launcher + ["-m", "hf_erc.cli", "extract-features", "meld", "--data-dir", str(data_dir)]
    command += ["--output", str(output), "--text-encoder", str(text), "--audio-encoder", str(audio)]
    command += ["--batch-size", "8"]
    environment = offline_environment(HF_DATASETS_CACHE=str(datasets_cache))
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.mark.slow
def test_two_processes_extract_the_features_of_one(meld_csv_dir, tmp_path):
    data_dir = write_meld_with_clips(meld_csv_dir, tmp_path / "meld")
    encoders = write_tiny_encoders(tmp_path / "encoders")
    two = extract(accelerate_launcher(2), data_dir, tmp_path / "two", encoders, tmp_path / "datasets")
    one = extract([sys.executable], data_dir, tmp_path / "one", encoders, tmp_path / "datasets")
    assert "Wrote" in one.stdout and two.stdout.count("Wrote") == 1  # one process reports, and writes

    # The cache keys do not depend on the number of processes: either run's cache serves the other.
    cache_one = sorted(path.name for path in (tmp_path / "one" / ".feature_cache").iterdir())
    cache_two = sorted(path.name for path in (tmp_path / "two" / ".feature_cache").iterdir())
    assert cache_one == cache_two and len(cache_one) == 6  # text and audio of three splits

    features_one, features_two = load_erc_dataset("meld", tmp_path / "one"), load_erc_dataset("meld", tmp_path / "two")
    for split in ("train", "validation", "test"):
        expected, actual = features_one[split], features_two[split]
        assert len(actual) == len(expected) > 0
        # Every utterance once, in the dataset's order.
        assert actual["dialogue_id"] == expected["dialogue_id"] and actual["turn"] == expected["turn"]
        np.testing.assert_allclose(
            np.array(actual["text_features"]), np.array(expected["text_features"]), rtol=1e-5, atol=1e-5
        )
        audio_one, audio_two = expected["audio_features"], actual["audio_features"]
        assert [value is None for value in audio_two] == [value is None for value in audio_one]
        for value_one, value_two in zip(audio_one, audio_two):
            if value_one is not None:
                np.testing.assert_allclose(value_two, value_one, rtol=1e-5, atol=1e-5)
    # The clips of dialogue 0 were encoded (by either process), the corrupt one and the missing ones were not.
    train = features_two["train"]
    rows = zip(train["dialogue_id"], train["turn"], train["audio_features"])
    assert [(dialogue, turn) for dialogue, turn, value in rows if value is not None] == [("dia0", t) for t in range(5)]
