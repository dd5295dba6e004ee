"""Feature extraction interrupted half-way resumes from its cache: the utterances of finished chunks are not encoded
again, none is lost, the features equal an uninterrupted run's, and damaged cache files are encoded again.

The real MELD CSVs (a subset: 1102 + 99 + 84 utterances, so train takes three chunks of 512) and a tiny random text
encoder.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys

import numpy as np
import pytest
from datasets import DatasetDict

from hf_erc.cli import main as cli_main
from hf_erc.data.prepare import load_erc_dataset
from hf_erc.features import chunks as chunks_module
from hf_erc.features import extract_features
from hf_erc.features.chunks import CHUNK_SIZE, encode_in_chunks
from hf_erc.features.encoders import TextEncoder
from hf_erc.locking import LOCK_FILE
from tests.utils.meld_files import write_meld_subset
from tests.utils.tiny_encoders import write_tiny_text_encoder
from tests.utils.training import REPO_ROOT, offline_environment

SUBSET = {"train_sent_emo.csv": 120, "dev_sent_emo.csv": 10, "test_sent_emo.csv": 10}


@pytest.fixture(scope="module")
def meld_subset(meld_csv_dir, tmp_path_factory):
    return write_meld_subset(meld_csv_dir, tmp_path_factory.mktemp("meld"), SUBSET)


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    return write_tiny_text_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture
def encoded(monkeypatch):
    """The number of texts of each call to the text encoder, from now on in this process."""
    sizes = []
    original = TextEncoder.encode

    def encode(self, texts, *args, **kwargs):
        sizes.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(TextEncoder, "encode", encode)
    return sizes


def extract_arguments(data_dir, output, encoder):
    return ["extract-features", "meld", "--data-dir", str(data_dir), "--output", str(output), "--text-encoder", str(encoder)]


def text_features(output):
    return {name: np.array(split["text_features"]) for name, split in load_erc_dataset("meld", output).items()}


@pytest.mark.slow
def test_an_extraction_killed_half_way_resumes_without_encoding_twice(meld_subset, text_encoder, tmp_path, encoded, caplog):
    output = tmp_path / "interrupted"
    arguments = extract_arguments(meld_subset, output, text_encoder)
    # Killed when it starts encoding the second chunk of train: the first one is done.
    crash = [sys.executable, "-m", "tests.utils.interruptions", "--kill-in-encode", "2", "-m", "hf_erc.cli"]
    environment = offline_environment(HF_DATASETS_CACHE=str(tmp_path / "datasets"))
    killed = subprocess.run(crash + arguments, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (chunks,) = (output / ".feature_cache").glob("text-*.chunks")
    assert [path.name for path in chunks.iterdir()] == [f"rows-0000000-{CHUNK_SIZE:07d}.npz"]
    assert (output / LOCK_FILE).is_file()

    with caplog.at_level(logging.WARNING):
        assert cli_main(arguments) == 0  # the same command: its stale lock does not block it
    assert "taking its lock over" in caplog.text
    resumed = text_features(output)
    rows = sum(len(split) for split in resumed.values())
    assert rows == 1102 + 99 + 84
    assert sum(encoded) == rows - CHUNK_SIZE and max(encoded) <= CHUNK_SIZE  # the finished chunk was not encoded again
    assert not list((output / ".feature_cache").glob("*.chunks"))  # merged into one cache file per split
    assert not (output / LOCK_FILE).exists()

    encoded.clear()
    assert cli_main(extract_arguments(meld_subset, tmp_path / "uninterrupted", text_encoder)) == 0
    assert sum(encoded) == rows
    uninterrupted = text_features(tmp_path / "uninterrupted")
    for name, features in uninterrupted.items():
        # Chunk 0 came from the killed process (one thread); the other rows from this one.
        np.testing.assert_allclose(resumed[name], features, rtol=0, atol=1e-6, err_msg=name)


def test_damaged_chunks_and_cache_files_are_encoded_again(meld_subset, text_encoder, tmp_path, encoded, monkeypatch, caplog):
    monkeypatch.setattr(chunks_module, "CHUNK_SIZE", 16)
    dataset = load_erc_dataset("meld", meld_subset)
    dataset = DatasetDict({"validation": dataset["validation"]})  # 99 utterances: 7 chunks
    cache = tmp_path / "cache"
    expected = np.stack(TextEncoder(str(text_encoder)).encode(dataset["validation"]["text"]))
    calls = len(encoded)

    def extract():
        features, _ = extract_features(dataset, text_encoder=str(text_encoder), cache_dir=cache, progress=False)
        return np.array(features["validation"]["text_features"])

    original = TextEncoder.encode

    def crash_at_the_third_chunk(self, texts, *args, **kwargs):
        if len(encoded) - calls == 2:
            raise KeyboardInterrupt
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(TextEncoder, "encode", crash_at_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        extract()
    (chunks,) = cache.glob("text-*.chunks")
    first, second = sorted(chunks.iterdir())
    # The second chunk half-written by a writer that was not atomic, and a temporary file of a killed one.
    second.write_bytes(second.read_bytes()[:100])
    (chunks / "rows-0000032-0000048.npz.123.partial").write_bytes(b"PK\x03")
    monkeypatch.setattr(TextEncoder, "encode", original)
    encoded.clear()
    with caplog.at_level(logging.WARNING, logger="hf_erc.features.cache"):
        np.testing.assert_allclose(extract(), expected, rtol=0, atol=1e-6)
    assert f"{second} is damaged" in caplog.text
    assert sum(encoded) == 99 - 16  # all but the first chunk

    # A damaged cache file (a truncated .npy) is reported and computed again; a sound one is read.
    (cache_file,) = cache.glob("text-*.npy")
    cache_file.write_bytes(cache_file.read_bytes()[:-10])
    encoded.clear()
    np.testing.assert_allclose(extract(), expected, rtol=0, atol=1e-6)
    assert f"{cache_file} is damaged" in caplog.text and sum(encoded) == 99
    encoded.clear()
    np.testing.assert_allclose(extract(), expected, rtol=0, atol=1e-6)
    assert encoded == []


def test_chunks_keep_missing_values_and_resume_after_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(chunks_module, "CHUNK_SIZE", 4)
    values = [None if row % 3 == 0 else np.full(4, row, dtype=np.float32) for row in range(10)]
    asked = []

    def encode(rows):
        asked.append(rows)
        if len(asked) == 3:
            raise RuntimeError("out of memory")
        return [values[row] for row in rows]

    with pytest.raises(RuntimeError):
        encode_in_chunks(tmp_path, 10, encode)
    asked.clear()
    result = encode_in_chunks(tmp_path, 10, encode)
    assert asked == [range(8, 10)]  # the two chunks done before the error are read back
    assert [value is None for value in result] == [value is None for value in values]
    for got, value in zip(result, values):
        if value is not None:
            np.testing.assert_array_equal(got, value)
