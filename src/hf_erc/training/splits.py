"""The train/validation/test splits a stage reads, from whatever ``--data_dir`` holds.

``--data_dir`` may be a raw release or a prepared (optionally feature-extracted) Parquet folder, both read by
:func:`hf_erc.data.load_erc_dataset`, or a published feature pickle (a ``.pkl`` file or a folder holding
``meld_multimodal_features.pkl``/``iemocap_multimodal_features.pkl``), or MAGTKD's first-stage feature pickles
(``first_stage_{train,dev,test}_features.pkl``). Utterance-level stages read utterance
rows; dialogue-level stages read dialogue rows of feature vectors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset, DatasetDict

from ..data.dialogues import dialogue_boundaries, group_dialogues
from ..data.feature_files import FEATURE_FILE_NAMES, feature_file_speaker_vocab, read_feature_pickle
from ..data.magtkd_features import is_magtkd_feature_folder, magtkd_speaker_vocab, read_magtkd_feature_pickles
from ..data.prepare import load_erc_dataset
from .arguments import ERCDataArguments

SPLITS = ("train", "validation", "test")
# Columns a dialogue-level batch is built from (besides the feature columns).
DIALOGUE_COLUMNS = ("dialogue_id", "turn", "speaker", "emotion")


def feature_pickle(data_args: ERCDataArguments) -> Path | None:
    """The community feature pickle ``--data_dir`` names, if it names one."""
    path = Path(data_args.data_dir)
    if path.is_file() and path.suffix == ".pkl":
        return path
    candidate = path / FEATURE_FILE_NAMES[data_args.dataset_name]
    return candidate if candidate.is_file() else None


def load_utterances(data_args: ERCDataArguments) -> DatasetDict:
    """Every split of ``--data_dir`` as utterance rows of the data contract."""
    if data_args.data_dir is None:
        raise ValueError("--data_dir is required: a raw release, a prepared Parquet folder or a feature pickle.")
    if not Path(data_args.data_dir).exists():
        raise FileNotFoundError(f"--data_dir {data_args.data_dir} does not exist.")
    pickle_path = feature_pickle(data_args)
    if pickle_path is not None:
        return read_feature_pickle(pickle_path, data_args.dataset_name)
    if is_magtkd_feature_folder(data_args.data_dir):
        return read_magtkd_feature_pickles(data_args.data_dir, data_args.dataset_name)
    return load_erc_dataset(data_args.dataset_name, data_args.data_dir)


def _three_splits(data_args: ERCDataArguments) -> dict[str, Dataset]:
    utterances = load_utterances(data_args)
    missing = [split for split in SPLITS if split not in utterances]
    if missing:
        raise ValueError(f"{data_args.data_dir} has no {missing} split(s); found {list(utterances)}.")
    return {split: utterances[split] for split in SPLITS}


def load_utterance_splits(data_args: ERCDataArguments) -> dict[str, Dataset]:
    """The train/validation/test utterance rows, limited to the first ``max_*_dialogues`` dialogues if asked."""
    splits = {}
    for split, dataset in _three_splits(data_args).items():
        limit = data_args.max_train_dialogues if split == "train" else data_args.max_eval_dialogues
        if limit is not None:
            boundaries = dialogue_boundaries(dataset)
            dataset = dataset.select(range(int(boundaries[min(limit, len(boundaries) - 1)])))
        splits[split] = dataset
    return splits


def load_dialogue_splits(data_args: ERCDataArguments) -> DatasetDict:
    """The train/validation/test splits as dialogue rows (``group_dialogues``) with the modalities' features."""
    dialogues = {}
    for split, dataset in _three_splits(data_args).items():
        for modality in data_args.modalities:
            column, standard = data_args.feature_column(modality), f"{modality}_features"
            if column not in dataset.column_names:
                raise ValueError(
                    f"{data_args.data_dir} (split {split!r}) has no {column!r} column for the {modality} modality. "
                    "Extract features first (`hf-erc extract-features`), point --data_dir to a feature file, or "
                    f"set --{modality}_feature_column / --modalities."
                )
            if column != standard:
                if standard in dataset.column_names:
                    dataset = dataset.remove_columns(standard)
                dataset = dataset.rename_column(column, standard)
        if split == "train" and data_args.max_turns is not None:
            dataset = dataset.filter(
                lambda turns: [turn < data_args.max_turns for turn in turns], input_columns="turn", batched=True
            )
        columns = [name for name in DIALOGUE_COLUMNS if name in dataset.column_names]
        columns += [f"{modality}_features" for modality in data_args.modalities]
        grouped = group_dialogues(dataset, columns=columns)
        limit = data_args.max_train_dialogues if split == "train" else data_args.max_eval_dialogues
        if limit is not None:
            grouped = grouped.select(range(min(limit, len(grouped))))
        dialogues[split] = grouped
    return DatasetDict(dialogues)


def feature_dims(dataset: Dataset, modalities: Sequence[str]) -> dict[str, int]:
    """Size of each modality's feature vectors in a dialogue dataset (the first present vector), checked for
    agreement."""
    dims = {}
    for modality in modalities:
        column = f"{modality}_features"
        sizes = set()
        for dialogue in dataset.select(range(min(64, len(dataset))))[column]:
            sizes.update(len(vector) for vector in dialogue if vector is not None)
        if not sizes:
            raise ValueError(f"No {column} vector found in the first dialogues of the training split.")
        if len(sizes) > 1:
            raise ValueError(f"The {column} vectors of the training split have different sizes {sorted(sizes)}.")
        dims[modality] = sizes.pop()
    return dims


def speaker_vocab(data_args: ERCDataArguments) -> dict[str, int] | None:
    """Speaker name -> id, or ``None`` for ids by first appearance in each dialogue.

    IEMOCAP speakers are ``M``/``F`` (SDT: ``M`` -> 0, ``F`` -> 1) and feature-pickle MELD speakers
    are the one-hot slots (``speaker_<i>`` -> i); MAGTKD's feature pickles carry the authors' speaker ids;
    MELD character names are numbered by first
    appearance (capped at ``num_speakers``). ``--speaker_vocab_file`` (JSON) replaces all of this.
    """
    if data_args.speaker_vocab_file is not None:
        with open(data_args.speaker_vocab_file, encoding="utf-8") as file:
            vocab = json.load(file)
        if not isinstance(vocab, dict) or not all(isinstance(value, int) for value in vocab.values()):
            raise ValueError(f"{data_args.speaker_vocab_file}: expected a JSON object of speaker name -> integer id.")
        return vocab
    if is_magtkd_feature_folder(data_args.data_dir):
        return magtkd_speaker_vocab(data_args.dataset_name)
    if data_args.dataset_name == "iemocap" or feature_pickle(data_args) is not None:
        return feature_file_speaker_vocab(data_args.dataset_name)
    return None
