"""Tiny MELD-like data with real media files for the stage tests: the word and the audio pitch of each
utterance follow its emotion, so a few epochs learn something."""

import numpy as np
import yaml
from datasets import Dataset, DatasetDict

from hf_erc.data.contract import contract_features
from hf_erc.data.export import save_parquet_repo

from .media_fixtures import write_corrupt, write_mp4
from .tiny_encoders import tiny_audio_config, tiny_video_config

HIDDEN = 32
WORDS = {0: "calm", 1: "wow", 2: "scared"}  # neutral, surprise, fear
FREQUENCIES = {0: 300.0, 1: 900.0, 2: 2000.0}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[SEP]", "[MASK]"]
VOCABULARY = SPECIAL_TOKENS + ["now", "feels", "i", "am", "so", "really", "you", "ok"] + list(WORDS.values())

TINY_CONFIG = {
    "text_config": {
        "model_type": "bert",
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
    },
    "audio_config": tiny_audio_config(HIDDEN, num_hidden_layers=1),
    "video_config": tiny_video_config(HIDDEN, num_hidden_layers=1),
    "projection_size": HIDDEN,
    "fusion_hidden_size": HIDDEN,
    "fusion_num_heads": 2,
    "text_max_length": 48,
}
# The encoders of TelME's toy, as MAGTKD stage settings (MAGTKD has no TelME fusion fields).
TINY_MAGTKD_STAGE_CONFIG = {
    name: TINY_CONFIG[name] for name in ("text_config", "audio_config", "video_config", "projection_size", "text_max_length")
}


def write_tokenizer(path):
    """A word-level tokenizer with BERT's special tokens (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(VOCABULARY)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]", mask_token="[MASK]"
    )
    tokenizer.save_pretrained(path)
    return path


SPEAKERS = ("Ross", "Rachel", "Joey")


def media_split(directory, num_dialogues, seed, split, speakers=SPEAKERS):
    """MELD-like utterance rows whose word and audio pitch follow the emotion, spoken by ``speakers``; one mp4 per
    utterance."""
    generator = np.random.default_rng(seed)
    features = contract_features("meld", with_sentiment=False)
    rows = {name: [] for name in features}
    for dialogue in range(num_dialogues):
        for turn in range(int(generator.integers(3, 5))):
            emotion = int(generator.integers(0, 3))
            path = str(directory / f"{split}_{dialogue}_{turn}.mp4")
            has_media = True
            if split == "train" and (dialogue, turn) == (0, 1):
                path, has_media = None, False  # no media at all: skipped up front
            elif split == "train" and (dialogue, turn) == (1, 1):
                write_corrupt(path)  # announced but undecodable: dropped from its batch
            else:
                write_mp4(path, seconds=0.6, fps=10, size=(32, 48), frequency=FREQUENCIES[emotion])
            filler = " ".join(generator.choice(["i", "am", "so", "really", "you", "ok"], size=2))
            rows["dialogue_id"].append(f"{split}{dialogue}")
            rows["turn"].append(turn)
            rows["speaker"].append(str(generator.choice(list(speakers))))
            rows["text"].append(f"{filler} {WORDS[emotion]}")
            rows["emotion"].append(emotion)
            rows["audio_path"].append(path)
            rows["video_path"].append(path)
            rows["start"].append(0.0)
            rows["end"].append(0.6)
            rows["has_audio"].append(has_media)
            rows["has_video"].append(has_media)
    return Dataset.from_dict(rows, features=features, split=split)



def media_workspace(root, train_dialogues, eval_dialogues, speakers=SPEAKERS):
    """Write `root/data` (a prepared dataset whose train/validation/test splits have media files in `root/media`,
    spoken by `speakers`) and `root/tokenizer`. The stages read `root/data` straight from its Parquet shards, and `datasets.load_dataset` keys
    such a folder on its files' paths and times, so no earlier run's folder of that name comes back in its place
    (tests/data/test_prepare.py::test_reprepared_folder_is_never_read_from_a_stale_cache)."""
    media = root / "media"
    media.mkdir()
    splits = {"train": media_split(media, train_dialogues, 0, "train", speakers)}
    splits["validation"] = media_split(media, eval_dialogues, 1, "validation", speakers)
    splits["test"] = media_split(media, eval_dialogues, 2, "test", speakers)
    save_parquet_repo(DatasetDict(splits), root / "data", "# Tiny MELD-like data with media, for tests\n")
    write_tokenizer(root / "tokenizer")


def write_stage_config(path, workspace, output_dir, **fields):
    """A scripts/train.py YAML file for a tiny stage on :func:`media_workspace`'s data in ``workspace``, with the
    training settings every stage test shares; ``fields`` add or replace keys (``model_type``, ``stage``...)."""
    config = {
        "dataset_name": "meld",
        "data_dir": str(workspace / "data"),
        "embedding_cache_dir": str(workspace / "cache"),
        "output_dir": str(output_dir),
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 1e-3,
        "max_grad_norm": 10.0,
        "seed": 42,
        "save_total_limit": 1,
        "disable_tqdm": True,
    }
    config.update(fields)
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def write_magtkd_config(path, workspace, output_dir, **fields):
    """:func:`write_stage_config` for a tiny MAGTKD stage, with the workspace's tokenizer."""
    magtkd = {
        "model_type": "magtkd",
        "config_overrides": TINY_MAGTKD_STAGE_CONFIG,
        "tokenizer_name_or_path": str(workspace / "tokenizer"),
        "weight_decay": 0.01,
    }
    return write_stage_config(path, workspace, output_dir, **{**magtkd, **fields})
