"""``--blank_modalities``: a fused model evaluated with one input hidden the way a missing clip is (``modality_mask``
False, features zero), through the real evaluation path, without touching training."""

import pytest
import torch

from hf_erc.data.collators import BlankModalities, DialogueCollator, UtteranceEmbeddingCollator
from hf_erc.models import SDTConfig, SDTForEmotionRecognition
from hf_erc.training import RunArguments
from tests.utils.synthetic_features import AUDIO_DIM, TEXT_DIM, synthetic_split, write_feature_dataset, write_sdt_config
from tests.utils.training import read_json, train_in_process


def test_blanking_masks_the_modality_and_changes_the_logits():
    dialogues = synthetic_split(3, seed=0, split="test").to_pandas().groupby("dialogue_id", sort=False)
    rows = [{name: list(frame[name]) for name in frame.columns} | {"dialogue_id": key} for key, frame in dialogues]
    collator = DialogueCollator(modalities=["text", "audio"], feature_dims={"text": TEXT_DIM, "audio": AUDIO_DIM})
    batch, blanked = collator(rows), BlankModalities(collator, ["audio"])(rows)
    assert batch["modality_mask"][..., 1].any() and not blanked["modality_mask"][..., 1].any()
    assert torch.equal(blanked["modality_mask"][..., 0], batch["modality_mask"][..., 0])  # text untouched
    assert not blanked["audio_features"].any() and torch.equal(blanked["text_features"], batch["text_features"])
    torch.manual_seed(0)
    config = SDTConfig.for_dataset(
        "meld", modalities=["text", "audio"], text_dim=TEXT_DIM, audio_dim=AUDIO_DIM, hidden_size=16, num_attention_heads=2
    )
    model = SDTForEmotionRecognition(config).eval()
    with torch.no_grad():
        logits, blanked_logits = model(**batch).logits, model(**blanked).logits
    real = batch["attention_mask"].bool()
    assert torch.isfinite(blanked_logits[real]).all() and not torch.allclose(logits[real], blanked_logits[real])
    # Utterance-level batches (TelME's fusion) are blanked the same way.
    rows = [{"text_embeddings": [1.0, 2.0], "audio_embeddings": [3.0], "video_embeddings": None, "emotion": 0}]
    utterance = BlankModalities(UtteranceEmbeddingCollator(audio_size=1, video_size=1), ["audio"])(rows)
    assert utterance["modality_mask"].tolist() == [[True, False, False]] and not utterance["audio_embeddings"].any()


def test_blanking_needs_a_modality_mask_and_a_modality_the_model_reads():
    with pytest.raises(ValueError, match="no modality_mask"):
        BlankModalities(lambda rows: {"input_values": torch.zeros(1, 4)}, ["audio"])([{}])
    with pytest.raises(ValueError, match="not modalities"):
        BlankModalities(lambda rows: {}, ["smell"])
    with pytest.raises(ValueError, match="does not read"):
        RunArguments.from_config(None, modalities=["text"], blank_modalities=["audio"])


def scores(metrics):
    """The metrics without the timings."""
    return {key: value for key, value in metrics.items() if "runtime" not in key and "per_second" not in key}


def test_blanked_test_metrics_leave_training_and_the_other_metrics_unchanged(tmp_path):
    data = write_feature_dataset(tmp_path / "data", train_dialogues=6, eval_dialogues=4)
    runs = {}
    for name, blank in (("plain", []), ("blank", ["audio"])):
        config = write_sdt_config(tmp_path / f"{name}.yaml", data, tmp_path / name, num_train_epochs=2, learning_rate=1e-2)
        results, _ = train_in_process(config, blank_modalities=blank)
        runs[name] = results
    plain, blank = runs["plain"], runs["blank"]
    assert plain.train["weights_sha256_per_rank"] == blank.train["weights_sha256_per_rank"]  # training untouched
    assert scores(plain.validation) == scores(blank.validation)
    assert scores({key: value for key, value in blank.test.items() if not key.startswith("test_blank_")}) == scores(
        plain.test
    )
    assert "test_blank_audio_weighted_f1" in blank.test and "test_blank_audio_loss" in blank.test
    assert blank.test["test_blank_audio_loss"] != blank.test["test_loss"]  # the logits changed
    assert read_json(tmp_path / "blank" / "test_results.json")["test_blank_audio_accuracy"] == blank.test[
        "test_blank_audio_accuracy"
    ]
