"""`hf-erc fine-tune-text`: a text encoder adapted to a dataset's emotions, then used by extraction, training and the
pipeline exactly as it was trained (pooling, length), carried inside the checkpoint trained on its features.

Real MELD CSVs (a subset) and a tiny random RoBERTa with MiniLM's tokenizer.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_erc.cli import main as cli_main
from hf_erc.data.prepare import load_erc_dataset
from hf_erc.features.encoders import FINE_TUNING_FILE, TextEncoder
from hf_erc.features.extract import extract_features_to_disk, load_encoder_specs
from hf_erc.inference.pipelines import pipeline
from hf_erc.training import RunArguments, train
from hf_erc.training.finetune import TextFineTuningArguments, fine_tune_text_encoder
from hf_erc.labels import emotion_names
from tests.utils.meld_files import write_meld_subset
from tests.utils.tiny_encoders import write_tiny_text_encoder
from tests.utils.training import REPO_ROOT

SUBSET = {"train_sent_emo.csv": 40, "dev_sent_emo.csv": 6, "test_sent_emo.csv": 6}


@pytest.fixture(scope="module")
def meld_subset(meld_csv_dir, tmp_path_factory):
    return write_meld_subset(meld_csv_dir, tmp_path_factory.mktemp("meld"), SUBSET)


@pytest.fixture(scope="module")
def base_encoder(tmp_path_factory):
    return write_tiny_text_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def fine_tuned(meld_subset, base_encoder, tmp_path_factory):
    """The tiny encoder fine-tuned through the command line (two epochs)."""
    output = tmp_path_factory.mktemp("fine-tuned")
    status = cli_main(
        ["fine-tune-text", "meld", "--data-dir", str(meld_subset), "--output", str(output), "--text-encoder",
         str(base_encoder), "--max-length", "24", "--epochs", "2", "--learning-rate", "1e-3", "--batch-size", "16"]
    )
    assert status == 0
    return output


def test_fine_tuning_changes_the_encoder_but_not_the_vocabulary(fine_tuned, base_encoder):
    before, after = load_file(base_encoder / "model.safetensors"), load_file(fine_tuned / "model.safetensors")
    assert before.keys() == after.keys()
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert "embeddings.word_embeddings.weight" not in changed  # frozen: the vocabulary rows stay as they were
    assert any(name.startswith("encoder.layer.1.") for name in changed)
    assert not list(fine_tuned.glob("*.bin")) and not (fine_tuned / "trainer").exists()
    record = json.loads((fine_tuned / FINE_TUNING_FILE).read_text())
    assert record["arguments"]["max_length"] == 24 and record["arguments"]["pooling"] == "mean"
    assert record["base_encoder"] == str(base_encoder)
    assert 0.0 <= record["validation"]["weighted_f1"] <= 1.0 and record["num_train_utterances"] > 300


def test_training_loss_decreases_and_only_train_labels_are_read(meld_subset, base_encoder, tmp_path):
    dataset = load_erc_dataset("meld", meld_subset)
    # Test labels are never read: scrambled test labels give the same encoder.
    scrambled = dataset.copy()
    scrambled["test"] = dataset["test"].map(lambda row: {"emotion": (row["emotion"] + 3) % 7})
    arguments = TextFineTuningArguments(text_encoder=str(base_encoder), max_length=24, num_train_epochs=3, learning_rate=1e-3, batch_size=16)
    fine_tune_text_encoder(dataset, emotion_names("meld"), tmp_path / "a", arguments)
    fine_tune_text_encoder(scrambled, emotion_names("meld"), tmp_path / "b", arguments)
    first, second = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)
    history = json.loads((tmp_path / "a" / FINE_TUNING_FILE).read_text())["training_loss"]
    assert history[-1] < history[0]


def test_extraction_encodes_as_fine_tuning_trained(fine_tuned, meld_subset, tmp_path):
    encoder = TextEncoder(str(fine_tuned))
    assert encoder.max_length == 24 and encoder.pooling == "mean"  # from fine_tuning.json
    dataset, specs = extract_features_to_disk("meld", meld_subset, tmp_path / "features", text_encoder=str(fine_tuned))
    assert specs["text"].max_length == 24
    texts = dataset["validation"]["text"]
    assert np.allclose(np.stack(dataset["validation"]["text_features"]), encoder.encode(texts), atol=1e-6)


def test_the_cache_knows_an_encoder_folder_fine_tuned_again(fine_tuned, meld_subset, tmp_path):
    encoder = tmp_path / "encoder"
    shutil.copytree(fine_tuned, encoder)
    cache = tmp_path / "cache"
    first, _ = extract_features_to_disk("meld", meld_subset, tmp_path / "one", text_encoder=str(encoder), cache_dir=cache)
    weights = load_file(encoder / "model.safetensors")
    weights["encoder.layer.1.output.dense.bias"] += 1.0  # the same folder, new weights
    save_file(weights, encoder / "model.safetensors", metadata={"format": "pt"})
    second, _ = extract_features_to_disk("meld", meld_subset, tmp_path / "two", text_encoder=str(encoder), cache_dir=cache)
    assert not np.allclose(np.stack(first["test"]["text_features"]), np.stack(second["test"]["text_features"]))


@pytest.mark.slow
def test_a_checkpoint_carries_its_fine_tuned_encoder(fine_tuned, meld_subset, tmp_path):
    """SDT trained on the fine-tuned features: the checkpoint holds the encoder (``text_encoder/``), so the pipeline
    labels raw text with it after the original folder is gone, and gives the model's own output on those features."""
    encoder = tmp_path / "encoder"
    shutil.copytree(fine_tuned, encoder)
    features, checkpoint = tmp_path / "features", tmp_path / "sdt"
    dataset, _ = extract_features_to_disk("meld", meld_subset, features, text_encoder=str(encoder))
    arguments = RunArguments.from_config(
        REPO_ROOT / "configs" / "sdt-meld-text.yaml", data_dir=features, output_dir=checkpoint, num_train_epochs=1,
        config_overrides={"text_dim": 32}, disable_tqdm=True,
    )
    assert train(arguments).output_dir == checkpoint
    assert load_encoder_specs(checkpoint)["text"].name_or_path == "text_encoder"
    assert (checkpoint / "text_encoder" / "model.safetensors").is_file() and (checkpoint / "text_encoder" / FINE_TUNING_FILE).is_file()
    shutil.rmtree(encoder)

    labeller = pipeline(str(checkpoint), device="cpu")
    assert labeller.encoders["text"].max_length == 24
    dialogue = dataset["test"].filter(lambda name: name == dataset["test"][0]["dialogue_id"], input_columns="dialogue_id")
    conversation = {"utterances": [{"speaker": row["speaker"], "text": row["text"]} for row in dialogue]}
    expected = np.stack(dialogue["text_features"])
    assert np.allclose(labeller.encoders["text"].encode(list(dialogue["text"])), expected, atol=1e-5)
    rows = labeller(conversation)
    assert len(rows) == len(dialogue)


def test_a_training_split_without_labelled_utterances_is_a_clear_error(meld_subset, base_encoder, tmp_path):
    dataset = load_erc_dataset("meld", meld_subset)
    dataset["train"] = dataset["train"].select([])
    with pytest.raises(ValueError, match="The train split has no labelled utterance"):
        fine_tune_text_encoder(dataset, emotion_names("meld"), tmp_path, TextFineTuningArguments(text_encoder=str(base_encoder)))
