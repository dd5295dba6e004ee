"""Reader of MAGTKD's first-stage feature pickles, so a converted MAGTKD fusion can run on the authors' features.

The MAGTKD reference code (``JieLi-dd/MAGTKD``, folders ``MELD/`` and ``IEMOCAP/``) runs its frozen stage-1/2
encoders once over every split and caches the 768-d utterance vectors that its fusion stage trains on. Its
``extract_first_stage_features.py`` writes ``feature/first_stage_{train,dev,test}_features.pkl``, each one dict:

| key | value |
|---|---|
| ``text``, ``audio``, ``video``, ``audio_kd``, ``video_kd`` | ``{dialogue id: [float32 array (768,), ...]}`` |
| ``speakers`` | ``{dialogue id: [int, ...]}``: MELD the global ``speaker2id.json`` id 0..303; IEMOCAP 0/1 |
| ``labels`` | ``{dialogue id: [int, ...]}`` in the authors' (alphabetical) class order |
| ``vids`` | the dialogue ids (int) in file order |
| ``dia2utt`` | ``{dialogue id: [Utterance_ID, ...]}`` |

Every per-dialogue list has one entry per utterance, in the order of the authors' CSV.

``text`` is the text model's ``<mask>`` readout after ``W``, ``audio``/``video`` the stage-1 unimodal models,
``audio_kd``/``video_kd`` the distilled students. The fusion reads text, the distilled audio and, on MELD the
distilled video, on IEMOCAP the stage-1 video (``MAGTKD_FUSION_INPUTS``).

The files are loaded with :class:`hf_erc.data.feature_files.RestrictedUnpickler`: only numpy arrays and plain
containers are rebuilt, any other object in the file is refused before it is imported.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features
from datasets.table import InMemoryTable

from ..labels import label2id
from ..models.magtkd.configuration_magtkd import MELD_SPEAKERS
from .contract import contract_features
from .errors import DataFormatError, DataNotFoundError
from .feature_files import feature_only_media_columns, load_restricted_pickle


__all__ = [
    "MAGTKD_FEATURE_FILES",
    "MAGTKD_FEATURE_KEYS",
    "MAGTKD_FUSION_INPUTS",
    "MAGTKD_LABEL_ORDER",
    "is_magtkd_feature_folder",
    "magtkd_label_mapping",
    "magtkd_speaker_vocab",
    "read_magtkd_feature_pickles",
]

# hf_erc split -> file written by the authors' extract_first_stage_features.py.
MAGTKD_FEATURE_FILES: dict[str, str] = {
    "train": "first_stage_train_features.pkl",
    "validation": "first_stage_dev_features.pkl",
    "test": "first_stage_test_features.pkl",
}

MAGTKD_FEATURE_KEYS: tuple[str, ...] = ("text", "audio", "video", "audio_kd", "video_kd")
_PER_DIALOGUE_KEYS: tuple[str, ...] = (*MAGTKD_FEATURE_KEYS, "speakers", "labels", "dia2utt")
_REQUIRED_KEYS: tuple[str, ...] = (*_PER_DIALOGUE_KEYS, "vids")

# The feature keys the reference fusion (multimodel_fusion.py) reads for each hf_erc modality.
MAGTKD_FUSION_INPUTS: dict[str, dict[str, str]] = {
    "meld": {"text": "text", "audio": "audio_kd", "video": "video_kd"},
    "iemocap": {"text": "text", "audio": "audio_kd", "video": "video"},
}
_CHOICES = {"audio": ("audio", "audio_kd"), "video": ("video", "video_kd")}

# The authors' class ids (dataset.py ``emoList``: alphabetical), written with hf_erc's label names.
MAGTKD_LABEL_ORDER: dict[str, tuple[str, ...]] = {
    "meld": ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"),
    "iemocap": ("angry", "excited", "frustrated", "happy", "neutral", "sad"),
}

_WHAT_TO_DO = (
    "Run the authors' extract_first_stage_features.py (MAGTKD's MELD/ or IEMOCAP/ folder); it writes "
    + ", ".join(MAGTKD_FEATURE_FILES.values())
    + " into that folder's feature/ directory. Pass that directory."
)


def magtkd_label_mapping(dataset: str) -> np.ndarray:
    """``mapping[authors' class id] = hf_erc class id``.

    MELD ``[6, 5, 2, 4, 0, 3, 1]``, IEMOCAP ``[3, 4, 5, 0, 2, 1]``.
    """
    key = _check_dataset(dataset)
    ids = label2id(key)
    return np.array([ids[name] for name in MAGTKD_LABEL_ORDER[key]], dtype=np.int64)


def magtkd_speaker_vocab(dataset: str) -> dict[str, int]:
    """Speaker name -> the id MAGTKD's fusion embeds, for ``DialogueCollator(speaker_vocab=...)``.

    MELD: the 304 names of ``MELD_SPEAKERS`` (``speaker2id.json``); IEMOCAP: ``{"speaker_0": 0, "speaker_1": 1}``,
    the names :func:`read_magtkd_feature_pickles` gives the authors' per-dialogue indices. Without this vocabulary
    the collator would renumber IEMOCAP speakers by first appearance and lose the authors' utterance-0 ids.
    """
    key = _check_dataset(dataset)
    if key == "iemocap":
        return {"speaker_0": 0, "speaker_1": 1}
    return {name: index for index, name in enumerate(MELD_SPEAKERS)}


def is_magtkd_feature_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding at least one of MAGTKD's ``first_stage_*_features.pkl`` files.

    One file is enough so that a half-copied folder reaches :func:`read_magtkd_feature_pickles`, whose error
    names the missing files.
    """
    folder = os.fspath(path)
    return os.path.isdir(folder) and any(
        os.path.isfile(os.path.join(folder, name)) for name in MAGTKD_FEATURE_FILES.values()
    )


def read_magtkd_feature_pickles(
    folder: str | os.PathLike,
    dataset_name: str,
    audio: str | None = "audio_kd",
    video: str | None = None,
) -> DatasetDict:
    """Read the three first-stage pickles into the utterance-level ``DatasetDict`` of the data contract.

    Splits: ``train``/``validation``/``test`` from ``first_stage_train/dev/test_features.pkl``, dialogues in the
    order of each file's ``vids``, utterances in list order.

    Columns: ``dialogue_id`` (MELD ``dia<Dialogue_ID>``; IEMOCAP ``str`` of MAGTKD's numeric ``Dialogue_ID``,
    which restarts at 0 in each split and is not the session name), ``turn`` (0..), MELD ``utterance_id`` (from
    ``dia2utt``; IEMOCAP has no such column because the contract's is the ``Ses..._F000`` turn id and the
    pickles' is only the position), ``speaker``, ``text`` (``""``: the pickles hold no transcript), ``emotion``
    (the authors' class id mapped to ``hf_erc.labels`` order, see :func:`magtkd_label_mapping`), null media
    paths and times, ``has_audio``/``has_video`` True, and float32 ``text_features``/``audio_features``/
    ``video_features``.

    Speakers: MELD ids become names through ``MELD_SPEAKERS`` (the table the ids index). IEMOCAP ids become
    ``"speaker_0"``/``"speaker_1"``: the authors number the F/M letter per dialogue by first appearance, and the
    first utterance of every dialogue but the first is numbered against the previous dialogue's list, so the
    name is neither a gender nor always consistent within a dialogue. Use :func:`magtkd_speaker_vocab` to get
    the authors' ids back.

    Args:
        folder: the folder holding the three pickles (the authors' ``MELD/feature`` or ``IEMOCAP/feature``).
        dataset_name: ``"meld"`` or ``"iemocap"``.
        audio: pickle key for ``audio_features``, ``"audio_kd"`` (distilled, the fusion's input) or ``"audio"``;
            ``None`` means the fusion's choice.
        video: pickle key for ``video_features``, ``"video_kd"`` or ``"video"``; ``None`` (default) means the
            fusion's choice for the dataset (MELD ``video_kd``, IEMOCAP ``video``).

    Vector sizes must agree across all rows of a key (768 in the authors' files; any size is accepted).
    """
    key = _check_dataset(dataset_name)
    chosen = dict(MAGTKD_FUSION_INPUTS[key])
    for modality, value in (("audio", audio), ("video", video)):
        if value is not None:
            if value not in _CHOICES[modality]:
                raise ValueError(f"{modality}={value!r}: expected one of {_CHOICES[modality]} or None.")
            chosen[modality] = value
    paths = _feature_paths(os.fspath(folder))

    mapping = magtkd_label_mapping(key)
    speakers = MELD_SPEAKERS if key == "meld" else ("speaker_0", "speaker_1")
    features = contract_features(
        key, with_sentiment=False, utterance_id="int32" if key == "meld" else None, with_feature_vectors=True
    )
    dims: dict[str, tuple[int, str]] = {}
    splits = {}
    for split, path in paths.items():
        contents = load_restricted_pickle(path)
        table = _split_table(contents, path, key, chosen, mapping, speakers, dims, features)
        splits[split] = Dataset(InMemoryTable(table), info=DatasetInfo(features=features), split=split)
    return DatasetDict(splits)


def _check_dataset(dataset: str) -> str:
    key = str(dataset).lower()
    if key not in MAGTKD_FUSION_INPUTS:
        raise ValueError(f"Unknown dataset {dataset!r}: expected one of {sorted(MAGTKD_FUSION_INPUTS)}.")
    return key


def _feature_paths(folder: str) -> dict[str, str]:
    """``{split: path}`` of the three pickles, or an error naming the missing ones and what to do."""
    if not os.path.isdir(folder):
        raise DataNotFoundError(f"MAGTKD feature folder {folder} does not exist. {_WHAT_TO_DO}")
    paths = {split: os.path.join(folder, name) for split, name in MAGTKD_FEATURE_FILES.items()}
    missing = [os.path.basename(path) for path in paths.values() if not os.path.isfile(path)]
    if missing:
        nested = os.path.join(folder, "feature")
        if os.path.isdir(nested) and all(os.path.isfile(os.path.join(nested, name)) for name in missing):
            what_to_do = f"They are in {nested}: pass that folder."
        else:
            what_to_do = _WHAT_TO_DO
        raise DataNotFoundError(f"{folder} has no {', '.join(missing)} (MAGTKD first-stage features). {what_to_do}")
    return paths


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _integers(values: Any, what: str, vid: Any, source: str) -> np.ndarray:
    """One dialogue's list of ints as int64 (integral floats accepted), or an error naming the dialogue."""
    array = np.asarray(values)
    if array.ndim == 1 and array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        array = array.astype(np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        found = f"{values!r:.80}"
        raise DataFormatError(f"{source}: dialogue {vid!r}: '{what}' should be a list of integers, found {found}.")
    return array.astype(np.int64)


def _check_layout(contents: Any, source: str) -> list:
    """The file's ``vids`` after checking the dict's keys and that every per-dialogue dict covers exactly them."""
    if not isinstance(contents, Mapping):
        raise DataFormatError(
            f"{source}: expected the dict that MAGTKD's extract_first_stage_features.py writes, found "
            f"{type(contents).__name__}."
        )
    missing = [name for name in _REQUIRED_KEYS if name not in contents]
    if missing:
        raise DataFormatError(
            f"{source}: the dict has no {missing} (keys found: {sorted(map(str, contents))}); a MAGTKD first-stage "
            f"feature file has {list(_REQUIRED_KEYS)}."
        )
    vids = contents["vids"]
    if not isinstance(vids, (list, tuple, np.ndarray)):
        raise DataFormatError(f"{source}: 'vids' should be a list of dialogue ids, found {type(vids).__name__}.")
    vids = [_plain(vid) for vid in vids]
    if not vids:
        raise DataFormatError(f"{source}: 'vids' is empty: the file holds no dialogues.")
    repeated = sorted((vid for vid, times in Counter(vids).items() if times > 1), key=str)
    if repeated:
        raise DataFormatError(f"{source}: 'vids' lists dialogue(s) {repeated[:5]} more than once.")
    wanted = set(vids)
    for name in _PER_DIALOGUE_KEYS:
        item = contents[name]
        if not isinstance(item, Mapping):
            raise DataFormatError(
                f"{source}: '{name}' should be a dict keyed by dialogue id, found {type(item).__name__}."
            )
        present = {_plain(vid) for vid in item}
        absent = [vid for vid in vids if vid not in present]
        if absent:
            raise DataFormatError(f"{source}: '{name}' has no entry for dialogue(s) {absent[:5]} listed in 'vids'.")
        extra = sorted(present - wanted, key=str)
        if extra:
            raise DataFormatError(f"{source}: '{name}' has dialogue(s) {extra[:5]} that 'vids' does not list.")
    return vids


def _feature_matrix(values: Any, name: str, vid: Any, count: int, dims: dict, source: str) -> np.ndarray:
    """One dialogue's vectors of key ``name`` as float32 ``[count, dim]``; the dim must match earlier rows."""
    if not isinstance(values, (list, tuple, np.ndarray)) or len(values) != count:
        found = len(values) if isinstance(values, (list, tuple, np.ndarray)) else type(values).__name__
        raise DataFormatError(
            f"{source}: dialogue {vid!r} has {count} labels but {found} '{name}' vectors; every key needs one "
            "vector per utterance."
        )
    sizes = [np.shape(vector) for vector in values]
    expected = dims.get(name)
    for turn, shape in enumerate(sizes):
        if len(shape) != 1 or (expected is not None and shape[0] != expected[0]):
            wanted = f"size {expected[0]} like the rows before it (first seen in {expected[1]})" if expected else "1-D"
            raise DataFormatError(
                f"{source}: dialogue {vid!r}, utterance {turn}: the '{name}' vector has shape {shape}; expected "
                f"{wanted}."
            )
        if expected is None:
            expected = dims[name] = (shape[0], f"{source}, dialogue {vid!r}")
    try:
        return np.asarray(values, dtype=np.float32).reshape(count, expected[0])
    except (TypeError, ValueError) as error:
        raise DataFormatError(f"{source}: dialogue {vid!r}: the '{name}' vectors are not numeric ({error}).") from None


def _float_list_array(blocks: list[np.ndarray], dim: int) -> pa.Array:
    flat = np.concatenate(blocks).reshape(-1) if blocks else np.zeros(0, dtype=np.float32)
    rows = flat.size // dim if dim else sum(len(block) for block in blocks)
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * dim, type=pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(flat, type=pa.float32()))


def _split_table(contents, source, dataset, chosen, mapping, speaker_names, dims, features: Features) -> pa.Table:
    """Arrow table of one file, validated; features are copied as numpy blocks, never as Python floats."""
    vids = _check_layout(contents, source)
    lookup = {name: {_plain(vid): value for vid, value in contents[name].items()} for name in _PER_DIALOGUE_KEYS}
    names = ", ".join(f"{index} {name}" for index, name in enumerate(MAGTKD_LABEL_ORDER[dataset]))
    columns: dict[str, list] = {name: [] for name in ("dialogue_id", "turn", "utterance_id", "speaker", "emotion")}
    blocks: dict[str, list[np.ndarray]] = {modality: [] for modality in chosen}
    for vid in vids:
        labels = _integers(lookup["labels"][vid], "labels", vid, source)
        count = labels.size
        if count == 0:
            raise DataFormatError(f"{source}: dialogue {vid!r} has no utterances.")
        utterances = _integers(lookup["dia2utt"][vid], "dia2utt", vid, source)
        speakers = _integers(lookup["speakers"][vid], "speakers", vid, source)
        for what, values in (("dia2utt", utterances), ("speakers", speakers)):
            if values.size != count:
                raise DataFormatError(f"{source}: dialogue {vid!r} has {count} labels but {values.size} '{what}'.")
        bad = np.flatnonzero((labels < 0) | (labels >= mapping.size))
        if bad.size:
            turn = int(bad[0])
            raise DataFormatError(
                f"{source}: dialogue {vid!r}, utterance {turn} (Utterance_ID {int(utterances[turn])}) has label "
                f"{int(labels[turn])}; MAGTKD's {dataset} class ids are {names}."
            )
        bad = np.flatnonzero((speakers < 0) | (speakers >= len(speaker_names)))
        if bad.size:
            turn = int(bad[0])
            known = "the 304 ids of speaker2id.json (0-303)" if dataset == "meld" else "0 or 1 (per-dialogue F/M index)"
            raise DataFormatError(
                f"{source}: dialogue {vid!r}, utterance {turn} has speaker {int(speakers[turn])}; expected {known}."
            )
        matrices = {
            name: _feature_matrix(lookup[name][vid], name, vid, count, dims, source) for name in MAGTKD_FEATURE_KEYS
        }
        for modality, name in chosen.items():
            blocks[modality].append(matrices[name])
        if dataset == "meld":
            if not isinstance(vid, int) or isinstance(vid, bool):
                raise DataFormatError(f"{source}: MELD dialogue id {vid!r} should be the integer Dialogue_ID.")
            columns["dialogue_id"].extend([f"dia{vid}"] * count)
        else:
            columns["dialogue_id"].extend([str(vid)] * count)
        columns["turn"].extend(range(count))
        columns["utterance_id"].extend(utterances.tolist())
        columns["speaker"].extend(speaker_names[index] for index in speakers.tolist())
        columns["emotion"].extend(mapping[labels].tolist())

    rows = len(columns["turn"])
    arrays = {
        "dialogue_id": pa.array(columns["dialogue_id"], pa.string()),
        "turn": pa.array(columns["turn"], pa.int32()),
        "utterance_id": pa.array(columns["utterance_id"], pa.int32()),
        "speaker": pa.array(columns["speaker"], pa.string()),
        "text": pa.array([""] * rows, pa.string()),
        "emotion": pa.array(columns["emotion"], pa.int64()),
        **feature_only_media_columns(rows),
    }
    for modality, name in chosen.items():
        arrays[f"{modality}_features"] = _float_list_array(blocks[modality], dims[name][0])
    return pa.table({column: arrays[column] for column in features}).cast(features.arrow_schema)
