"""Model cards: rendered from model_cards/template.md with the measured results in model-index."""

from __future__ import annotations

import json

import pytest
import yaml

from hf_erc.hub import (
    HubUploadError,
    build_model_card,
    push_checkpoint,
    template_path,
    write_endpoint_files,
    write_model_card,
)
from hf_erc.inference.checkpoints import ENDPOINT_HANDLER_SOURCE
from hf_erc.labels import MELD_EMOTIONS


def _fake_checkpoint(path, with_results=True):
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "sdt-erc",
        "dataset_name": "meld",
        "modalities": ["text"],
        "id2label": {str(i): name for i, name in enumerate(MELD_EMOTIONS)},
    }
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.safetensors").write_bytes(b"not really weights")
    (path / "feature_encoders.json").write_text(
        json.dumps({"text": {"modality": "text", "name_or_path": "minilm", "pooling": "mean", "dim": 384, "max_length": 128}})
    )
    if with_results:
        results = {"eval_weighted_f1": 0.5123, "eval_accuracy": 0.55, "eval_macro_f1": 0.3,
                   "test_weighted_f1": 0.5876, "test_accuracy": 0.6123, "test_macro_f1": 0.35,
                   **{f"test_f1_{name}": 0.1 * i for i, name in enumerate(MELD_EMOTIONS)}}
        (path / "all_results.json").write_text(json.dumps(results))
    return path


def _front_matter(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_template_is_shipped():
    assert template_path().is_file()


def test_card_holds_measured_results(tmp_path):
    checkpoint = _fake_checkpoint(tmp_path / "ckpt")
    readme = write_model_card(checkpoint, "someone/sdt-meld-text")
    text = readme.read_text()
    metadata = _front_matter(text)
    index = metadata["model-index"][0]
    values = {(r["dataset"]["split"], m["name"]): m["value"] for r in index["results"] for m in r["metrics"]}
    assert values[("test", "Weighted F1")] == 58.76
    assert values[("validation", "Accuracy")] == 55.0
    assert index["results"][0]["dataset"]["name"] == "MELD"
    assert metadata["library_name"] == "transformers" and "sdt-erc" in metadata["tags"]
    body = text.split("---\n", 2)[2]
    assert "| test | 58.76 | 61.23 | 35.00 |" in body
    assert "| anger | 60.00 |" in body
    assert "someone/sdt-meld-text" in body and "trust_remote_code=True" in body
    assert "`minilm`, mean pooling, 384-d" in body
    assert "Poria" in body and "Ma, Hui" in body
    # How to deploy it as an Inference Endpoint, with this checkpoint's labels in the example response.
    assert "## Deploy as an Inference Endpoint" in body and '"probabilities": {"neutral": 0.62, "surprise"' in body
    assert "{{ " not in body and " }}" not in body  # no unrendered template fields


def test_card_without_results_says_so(tmp_path):
    card = build_model_card(_fake_checkpoint(tmp_path / "c", with_results=False), "a/b")
    assert "not evaluated" in card.text
    assert "model-index" not in card.content.split("---")[1]


def test_unknown_dataset_is_an_error(tmp_path):
    checkpoint = _fake_checkpoint(tmp_path / "c")
    config = json.loads((checkpoint / "config.json").read_text())
    del config["dataset_name"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="pass dataset_name"):
        build_model_card(checkpoint, "a/b")
    assert "IEMOCAP" in build_model_card(checkpoint, "a/b", dataset_name="iemocap").text


def test_push_offline_writes_everything_then_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = _fake_checkpoint(tmp_path / "ckpt")
    with pytest.raises(HubUploadError, match="The folder is complete"):
        push_checkpoint(checkpoint, "someone/sdt-meld-text", token="hf_fake")
    assert (checkpoint / "README.md").is_file()
    assert (checkpoint / "handler.py").is_file() and (checkpoint / "requirements.txt").is_file()


def test_endpoint_files_refresh_the_handler_and_keep_an_edited_requirements_file(tmp_path):
    checkpoint = _fake_checkpoint(tmp_path / "ckpt")
    write_endpoint_files(checkpoint)
    assert (checkpoint / "handler.py").read_bytes() == ENDPOINT_HANDLER_SOURCE.read_bytes()
    assert "hf_erc is not on PyPI" in (checkpoint / "requirements.txt").read_text()
    edited = "hf-erc @ https://example.org/hf_erc-0.1.0-py3-none-any.whl\n"
    (checkpoint / "requirements.txt").write_text(edited)
    (checkpoint / "handler.py").write_text("class EndpointHandler: ...\n")
    write_endpoint_files(checkpoint)
    assert (checkpoint / "requirements.txt").read_text() == edited
    assert (checkpoint / "handler.py").read_bytes() == ENDPOINT_HANDLER_SOURCE.read_bytes()


def test_push_refuses_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        push_checkpoint(tmp_path, "a/b")


def test_stage_checkpoints_get_their_family_card(tmp_path):
    checkpoint = _fake_checkpoint(tmp_path / "teacher")
    config = json.loads((checkpoint / "config.json").read_text())
    config["model_type"] = "telme-erc-text-teacher"
    (checkpoint / "config.json").write_text(json.dumps(config))
    assert "Yun, Taeyang" in build_model_card(checkpoint, "a/telme-teacher").text
    config["model_type"] = "telmex-erc"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no model-card information"):
        build_model_card(checkpoint, "a/b")
