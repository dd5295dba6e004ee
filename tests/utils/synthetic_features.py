"""Synthetic feature datasets for the training tests: utterance rows of the data contract whose text features
carry the emotion (learnable in a few epochs) and whose audio features are partly missing."""

import numpy as np
import yaml
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from hf_erc.data.export import save_parquet_repo
from hf_erc.labels import MELD_EMOTIONS

TEXT_DIM, AUDIO_DIM = 8, 5


def synthetic_split(num_dialogues, seed, split):
    """Utterance rows of the data contract with learnable text and (partly missing) audio features."""
    generator = np.random.default_rng(seed)
    rows = {name: [] for name in ("dialogue_id", "turn", "speaker", "text", "emotion", "text_features", "audio_features")}
    for dialogue in range(num_dialogues):
        for turn in range(int(generator.integers(2, 6))):
            emotion = int(generator.integers(0, 3))  # neutral, surprise, fear
            text = generator.normal(scale=0.3, size=TEXT_DIM)
            text[emotion] += 2.0
            audio = None if generator.random() < 0.2 else generator.normal(size=AUDIO_DIM).tolist()
            rows["dialogue_id"].append(f"dia{dialogue}")
            rows["turn"].append(turn)
            rows["speaker"].append(str(generator.choice(["Ross", "Rachel", "Joey"])))
            rows["text"].append(f"utterance {turn}")
            rows["emotion"].append(emotion)
            rows["text_features"].append(text.tolist())
            rows["audio_features"].append(audio)
    features = Features(
        {
            "dialogue_id": Value("string"),
            "turn": Value("int32"),
            "speaker": Value("string"),
            "text": Value("string"),
            "emotion": ClassLabel(names=list(MELD_EMOTIONS)),
            "text_features": List(Value("float32")),
            "audio_features": List(Value("float32")),
        }
    )
    return Dataset.from_dict(rows, features=features, split=split)


def write_feature_dataset(path, train_dialogues, eval_dialogues=6):
    """A prepared Parquet folder at ``path`` with train/validation/test splits of :func:`synthetic_split`."""
    splits = {
        "train": synthetic_split(train_dialogues, 0, "train"),
        "validation": synthetic_split(eval_dialogues, 1, "validation"),
        "test": synthetic_split(eval_dialogues, 2, "test"),
    }
    save_parquet_repo(DatasetDict(splits), path, "# Synthetic MELD-like features for tests\n")
    return path


def write_sdt_config(path, data_dir, output_dir, **fields):
    """A scripts/train.py YAML file for a small text+audio SDT on these features; ``fields`` add or replace keys."""
    config = {
        "model_type": "sdt",
        "dataset_name": "meld",
        "data_dir": str(data_dir),
        "modalities": ["text", "audio"],
        "config_overrides": {"hidden_size": 16, "num_attention_heads": 2, "dropout": 0.1},
        "output_dir": str(output_dir),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "seed": 0,
        "disable_tqdm": True,
        **fields,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
