"""MAGTKD's fusion on the authors' own first-stage features (`--stage features`): a MAGTKD fusion checkpoint is
evaluated on `first_stage_*_features.pkl` through scripts/train.py, and gives the predictions the model gives on
the same features batched by hand; the fusion also trains on them."""

import json

import numpy as np
import torch

from hf_erc.data.magtkd_features import magtkd_label_mapping
from hf_erc.models import MAGTKDConfig, MAGTKDForEmotionRecognition
from hf_erc.training import run as train_run
from tests.utils.magtkd_pickles import DIM, MELD_SPLITS, write_feature_folder
from tests.utils.training import read_json

TINY_FUSION = {"hidden_size": DIM, "num_attention_heads": 2, "max_position_embeddings": 32}


def arguments(data_dir, output_dir, *extra):
    return [
        "--model_type", "magtkd", "--stage", "features", "--dataset_name", "meld", "--data_dir", str(data_dir),
        "--output_dir", str(output_dir), "--per_device_eval_batch_size", "2", "--per_device_train_batch_size", "2",
        "--use_cpu", "true", "--disable_tqdm", "true", "--report_to", "none", "--bf16", "false", *extra,
    ]  # fmt: skip


def test_a_magtkd_fusion_checkpoint_runs_on_the_authors_features(tmp_path):
    written = write_feature_folder(tmp_path / "feature", MELD_SPLITS)
    torch.manual_seed(0)
    model = MAGTKDForEmotionRecognition(MAGTKDConfig.for_dataset("meld", **TINY_FUSION)).eval()
    model.save_pretrained(tmp_path / "fusion")
    output_dir = tmp_path / "evaluated"
    command = arguments(tmp_path / "feature", output_dir, "--model_name_or_path", str(tmp_path / "fusion"))
    assert train_run.main(command + ["--do_train", "false"]) == 0
    results = read_json(output_dir / "test_results.json")
    test = written["test"]
    assert results["test_num_utterances"] == sum(len(labels) for labels in test["labels"].values())

    # The same predictions by hand: the authors' inputs (text, audio_kd, video_kd), their speaker ids, labels in
    # hf_erc's order.
    mapping = magtkd_label_mapping("meld")
    predicted, expected = [], []
    for vid in test["vids"]:
        features = {
            f"{modality}_features": torch.tensor(np.stack(test[key][vid]))[None]
            for modality, key in (("text", "text"), ("audio", "audio_kd"), ("video", "video_kd"))
        }
        length = features["text_features"].shape[1]
        with torch.no_grad():
            logits = model(
                **features,
                attention_mask=torch.ones(1, length, dtype=torch.long),
                speaker_ids=torch.tensor([test["speakers"][vid]]),
            ).logits[0]
        predicted += logits.argmax(-1).tolist()
        expected += [int(mapping[label]) for label in test["labels"][vid]]
    accuracy = float(np.mean(np.asarray(predicted) == np.asarray(expected)))
    assert results["test_accuracy"] == accuracy


def test_the_fusion_trains_on_the_authors_features(tmp_path):
    write_feature_folder(tmp_path / "feature", MELD_SPLITS)
    output_dir = tmp_path / "trained"
    overrides = json.dumps(TINY_FUSION)
    command = arguments(tmp_path / "feature", output_dir, "--config_overrides", overrides, "--num_train_epochs", "2")
    assert train_run.main(command) == 0
    config = read_json(output_dir / "config.json")
    assert config["model_type"] == "magtkd-erc" and config["hidden_size"] == DIM
    assert len(config["speaker_vocab"]) == 304  # the authors' speaker ids, kept
    assert (output_dir / "README.md").is_file() and (output_dir / "model.safetensors").is_file()
