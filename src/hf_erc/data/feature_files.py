"""Readers for the community pre-extracted feature pickles of MELD and IEMOCAP.

SDT, M3Net, MMGCN and their successors train on two pickles, ``iemocap_multimodal_features.pkl``
and ``meld_multimodal_features.pkl`` (RoBERTa text features from COSMIC, openSMILE audio
features and DenseNet face features from MMGCN). Each holds a tuple, every per-dialogue item a
dict keyed by dialogue id (layout read in ``butterfliesss/SDT`` ``dataloader.py``; the RoBERTa
items come from ``declare-lab/conv-emotion`` ``COSMIC/feature-extraction/roberta_feature_extract_*.py``):

| index | item | per dialogue |
|---|---|---|
| 0 | dialogue ids | utterance ids (not used) |
| 1 | speakers | IEMOCAP: ``"M"``/``"F"`` per utterance; MELD: one-hot vectors of length 9 |
| 2 | labels | emotion index per utterance, in ``hf_erc.labels`` order |
| 3 | text | RoBERTa ``<s>`` vector of the last layer ("roberta1", 1024-d; the one SDT uses) |
| 4-6 | roberta2-4 | the same vector from the 2nd, 3rd and 4th layer from the top |
| 7 | audio | openSMILE: IS10 1582-d (IEMOCAP), 300-d (MELD) |
| 8 | visual | DenseNet face features, 342-d |
| 9 | sentences | transcript of each utterance |
| 10 | train ids | list of dialogue ids (IEMOCAP sessions 1-4; MELD train and dev) |
| 11 | test ids | list of dialogue ids (IEMOCAP session 5; MELD test) |
| 12 | (MELD only) | discarded by SDT/M3Net; in the MMGCN lineage the 3-class sentiment labels |

MELD keys are integers numbered over the official splits (train 0-1038, dev 1039-1152, test
1153-1432), so the dev dialogues can be told apart inside the train ids.

SDT loads the IEMOCAP file with ``encoding="latin1"`` (it dates from Python 2; numpy needs that
encoding for Python 2 array buffers), and latin1 is harmless for Python 3 pickles, so both files
are read that way, through :class:`RestrictedUnpickler`: a pickle can run any code when
loaded, and these files come from file-sharing links, so only the globals needed to rebuild numpy
arrays and plain containers are resolved.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict, DatasetInfo, Features
from datasets.table import InMemoryTable

from ..labels import MELD_SENTIMENTS, emotion_names
from .contract import contract_features
from .errors import DataFormatError


__all__ = [
    "FEATURE_FILE_NAMES",
    "PUBLISHED_FEATURE_DIMS",
    "TEXT_FEATURE_CHOICES",
    "RestrictedUnpickler",
    "UnsafePickleError",
    "feature_file_speaker_vocab",
    "load_restricted_pickle",
    "read_feature_pickle",
]

FEATURE_FILE_NAMES: dict[str, str] = {
    "iemocap": "iemocap_multimodal_features.pkl",
    "meld": "meld_multimodal_features.pkl",
}

# Feature sizes of the published files (SDT train.py: ``feat2dim``).
PUBLISHED_FEATURE_DIMS: dict[str, dict[str, int]] = {
    "iemocap": {"text": 1024, "audio": 1582, "video": 342},
    "meld": {"text": 1024, "audio": 300, "video": 342},
}

# Which text vector becomes ``text_features``: one of the four RoBERTa layers, or their mean
# (the average COSMIC-style models take). SDT, M3Net and CMATH use "roberta1".
TEXT_FEATURE_CHOICES: tuple[str, ...] = ("roberta1", "roberta2", "roberta3", "roberta4", "mean")

# Number of speaker slots of the MELD one-hot vectors (SDT: ``n_speakers = 9``).
MELD_NUM_FEATURE_SPEAKERS = 9

# The MELD files number dialogues consecutively over the official splits: train Dialogue_ID d
# is key d (0-1038, 60 is absent from the release), dev d is 1039 + d, test d is 1153 + d.
MELD_DEV_KEY_OFFSET = 1039
MELD_TEST_KEY_OFFSET = 1153

_TUPLE_LENGTHS = (12, 13)
_ROBERTA_INDEX = {"roberta1": 3, "roberta2": 4, "roberta3": 5, "roberta4": 6}
_MODALITY_INDEX = {"audio": 7, "video": 8}


class UnsafePickleError(pickle.UnpicklingError, DataFormatError):
    """A pickle asked for a global outside the allow-list of :class:`RestrictedUnpickler`."""


def _numpy_core_module(module: str) -> str:
    """Map ``numpy.core.*`` (numpy 1 pickles) and ``numpy._core.*`` (numpy 2) onto this numpy."""
    for prefix in ("numpy.core", "numpy._core"):
        if module == prefix or module.startswith(prefix + "."):
            suffix = module[len(prefix) :]
            installed = "numpy._core" if hasattr(np, "_core") else "numpy.core"
            return installed + suffix
    return module


_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        # numpy arrays, dtypes and scalars
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        # Python 3 writes bytes as ``_codecs.encode(text, "latin1")`` at protocol 2
        ("_codecs", "encode"),
        # plain containers and values
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "tuple"),
        ("builtins", "str"),
        ("builtins", "bytes"),
        ("builtins", "bytearray"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "complex"),
        ("builtins", "bool"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
    }
)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays and plain Python containers.

    Every other global (``os.system``, ``builtins.eval``, ``builtins.getattr``, any class) raises
    :class:`UnsafePickleError` before it is imported, so a hostile file cannot run code.

    Args:
        file: binary file object to read from.
        source: name of the file, used in error messages.
        encoding: how Python 2 ``str`` objects are decoded (``"latin1"`` keeps numpy buffers intact).
    """

    def __init__(self, file, *, source: str | os.PathLike | None = None, encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = str(source) if source is not None else "<pickle>"

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (``__builtin__.set``, ``copy_reg``...) are checked under their Python 3 name.
        resolved_module, resolved_name = module, name
        if (module, name) in _compat_pickle.NAME_MAPPING:
            resolved_module, resolved_name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            resolved_module = _compat_pickle.IMPORT_MAPPING[module]
        if (resolved_module, resolved_name) not in _ALLOWED_GLOBALS:
            written = f"{module}.{name}"
            resolved = f"{resolved_module}.{resolved_name}"
            shown = written if written == resolved else f"{written} ({resolved})"
            raise UnsafePickleError(
                f"{self.source}: refused to load global '{shown}'. Feature files may only contain "
                "numpy arrays, lists, dicts, strings and numbers; this file asks for something else, which "
                "could run code. Re-create the file with plain containers and numpy arrays."
            )
        found = getattr(importlib.import_module(_numpy_core_module(resolved_module)), resolved_name)
        return self._from_data_only(found) if found in (bytes, bytearray) else found

    def _from_data_only(self, constructor):
        """``bytes``/``bytearray`` as pickles call them (from data), never from a size: ``bytearray(10**12)``
        would let a few bytes of pickle claim any amount of memory."""

        def build(*args):
            if args and isinstance(args[0], int):
                raise UnsafePickleError(
                    f"{self.source}: refused {constructor.__name__}({args[0]}): a feature file builds bytes from its "
                    "own data, never from a size that could claim any amount of memory."
                )
            return constructor(*args)

        return build


def load_restricted_pickle(path: str | os.PathLike, *, encoding: str = "latin1") -> Any:
    """Load ``path`` with :class:`RestrictedUnpickler` (numpy arrays and plain containers only)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Feature file {path} does not exist.")
    with open(path, "rb") as handle:
        try:
            return RestrictedUnpickler(handle, source=path, encoding=encoding).load()
        except UnsafePickleError:
            raise
        except Exception as error:  # garbage bytes fail in many ways (EOFError, OverflowError, MemoryError, ...)
            message = f"{path}: not a readable feature pickle ({type(error).__name__}: {str(error)[:200]})."
            raise DataFormatError(message) from error


def feature_file_speaker_vocab(dataset: str) -> dict[str, int]:
    """Speaker name -> id as the reference models index the feature files' speakers.

    IEMOCAP: ``{"M": 0, "F": 1}`` (SDT turns "M" into ``[1, 0]``). MELD: ``{"speaker_i": i}`` for the
    9 one-hot slots, the names :func:`read_feature_pickle` gives them. Pass it to
    ``DialogueCollator(speaker_vocab=...)`` to reproduce SDT's speaker indices.
    """
    key = _check_dataset(dataset)
    if key == "iemocap":
        return {"M": 0, "F": 1}
    return {_meld_speaker_name(index): index for index in range(MELD_NUM_FEATURE_SPEAKERS)}


def read_feature_pickle(
    path: str | os.PathLike,
    dataset: str,
    *,
    text_feature: str = "roberta1",
    validation_fraction: float = 0.1,
    seed: int = 42,
    validation_ids: Iterable[Any] | None = None,
    feature_dims: Mapping[str, int] | None = None,
    fix_text_encoding: bool = True,
    encoding: str = "latin1",
) -> DatasetDict:
    """Read a published feature pickle into the utterance-level ``DatasetDict`` of the data contract.

    Columns: ``dialogue_id``, ``turn``, ``speaker``, ``text``, ``emotion`` (ClassLabel, ``hf_erc.labels``
    order, the order the files use), ``audio_path``/``video_path`` (null: the files carry no media),
    ``start``/``end`` (null: the files carry no times), ``has_audio``/``has_video`` (True: every
    utterance has both features), ``text_features``/``audio_features``/``video_features`` (float32).
    MELD adds ``utterance_id`` (null: not in the files) and, when the 13th item holds them,
    ``sentiment``.

    Speakers: IEMOCAP keeps ``"M"``/``"F"``. MELD files store a one-hot slot, not a name: the speaker
    becomes ``"speaker_<slot>"`` (the slot is what SDT embeds; see :func:`feature_file_speaker_vocab`).

    Splits: ``test`` is the file's test ids. ``validation`` is taken from the file's train ids, in this
    order of preference: ``validation_ids`` when given; MELD's official dev dialogues when the keys
    follow the MELD numbering (keys 1039-1152, see ``MELD_DEV_KEY_OFFSET``), in which case MELD
    dialogue ids become the release's ``dia<Dialogue_ID>``; the 13th item when it is a list of ids;
    otherwise a seeded ``validation_fraction`` of the train dialogues (IEMOCAP, as in DESIGN.md).
    Other keys become ``dialogue_id`` as ``str(key)``. Note that SDT itself trains on all train ids
    and selects its epoch on the test set.

    Args:
        path: the pickle.
        dataset: ``"meld"`` or ``"iemocap"``.
        text_feature: which RoBERTa vector becomes ``text_features`` (see ``TEXT_FEATURE_CHOICES``).
        validation_fraction: share of train dialogues held out when no dev ids are known.
        seed: seed of that hold-out.
        validation_ids: explicit dialogue keys (as in the file) for the validation split.
        feature_dims: expected ``{"text", "audio", "video"}`` sizes; defaults to the published ones.
        fix_text_encoding: undo the mojibake of UTF-8 transcripts that Python 2 stored as bytes and
            ``latin1`` decoding turned into Latin-1 characters (``"Itâ\\x80\\x99s"`` -> ``"It’s"``).
        encoding: passed to the unpickler for Python 2 strings.
    """
    key = _check_dataset(dataset)
    if text_feature not in TEXT_FEATURE_CHOICES:
        raise ValueError(f"text_feature={text_feature!r}: expected one of {TEXT_FEATURE_CHOICES}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"validation_fraction={validation_fraction}: expected a number in [0, 1).")
    source = os.fspath(path)
    dims = dict(PUBLISHED_FEATURE_DIMS[key])
    if feature_dims is not None:
        unknown = set(feature_dims) - set(dims)
        if unknown:
            raise ValueError(f"feature_dims has unknown modalities {sorted(unknown)}: expected text, audio, video.")
        dims.update({modality: int(size) for modality, size in feature_dims.items()})

    contents = load_restricted_pickle(source, encoding=encoding)
    if not isinstance(contents, (tuple, list)) or len(contents) not in _TUPLE_LENGTHS:
        found = type(contents).__name__
        if isinstance(contents, (tuple, list)):
            found = f"a {found} of {len(contents)} items"
        raise DataFormatError(
            f"{source}: expected the SDT/M3Net feature tuple of 12 items (13 for MELD: ids, speakers, labels, "
            f"text, roberta2-4, audio, visual, sentences, train ids, test ids[, extra]), found {found}."
        )
    train_keys = _key_list(contents[10], "train ids (item 10)", source)
    test_keys = _key_list(contents[11], "test ids (item 11)", source)
    extra = contents[12] if len(contents) == 13 else None
    train_keys, validation_keys, names = _split_keys(
        key, train_keys, test_keys, extra, validation_ids, validation_fraction, seed, source
    )

    sentiments = _sentiment_item(extra, train_keys + validation_keys + test_keys) if key == "meld" else None
    features = _contract_features(key, sentiments is not None)
    splits = {}
    for split, keys in (("train", train_keys), ("validation", validation_keys), ("test", test_keys)):
        table = _split_table(
            contents, keys, names, key, text_feature, dims, sentiments, fix_text_encoding, source, features
        )
        splits[split] = Dataset(InMemoryTable(table), info=DatasetInfo(features=features), split=split)
    return DatasetDict(splits)


def _check_dataset(dataset: str) -> str:
    key = dataset.lower()
    if key not in FEATURE_FILE_NAMES:
        raise ValueError(f"Unknown dataset {dataset!r}: expected one of {sorted(FEATURE_FILE_NAMES)}.")
    return key


def _meld_speaker_name(slot: int) -> str:
    return f"speaker_{slot}"


def _plain_key(key: Any) -> Any:
    """numpy integer/str keys as Python values, so they hash like the dict keys."""
    return key.item() if isinstance(key, np.generic) else key


def _key_list(item: Any, what: str, source: str) -> list:
    if isinstance(item, (set, frozenset)):
        return sorted((_plain_key(key) for key in item), key=lambda value: (str(type(value)), value))
    if isinstance(item, (list, tuple, np.ndarray)):
        return [_plain_key(key) for key in item]
    raise DataFormatError(f"{source}: {what} should be a list of dialogue ids, found {type(item).__name__}.")


def _is_id_collection(item: Any) -> bool:
    return isinstance(item, (list, tuple, set, frozenset, np.ndarray)) and not isinstance(item, Mapping)


def _split_keys(dataset, train_keys, test_keys, extra, validation_ids, fraction, seed, source):
    """(train keys, validation keys, {key: dialogue_id}) following :func:`read_feature_pickle`'s rules."""
    test_set = set(test_keys)
    overlap = [key for key in train_keys if key in test_set]
    if overlap:
        raise DataFormatError(f"{source}: dialogues {overlap[:5]} are listed in both the train and the test ids.")
    names = {key: str(key) for key in list(train_keys) + list(test_keys)}

    if validation_ids is not None:
        wanted = {_plain_key(key) for key in validation_ids}
        missing = wanted - set(train_keys)
        if missing:
            raise ValueError(f"validation_ids {sorted(map(str, missing))[:5]} are not among the train ids of {source}.")
        return [k for k in train_keys if k not in wanted], [k for k in train_keys if k in wanted], names

    if dataset == "meld" and _follows_meld_numbering(train_keys, test_keys):
        for key in train_keys:
            names[key] = f"dia{key - MELD_DEV_KEY_OFFSET}" if key >= MELD_DEV_KEY_OFFSET else f"dia{key}"
        for key in test_keys:
            names[key] = f"dia{key - MELD_TEST_KEY_OFFSET}"
        validation = [key for key in train_keys if key >= MELD_DEV_KEY_OFFSET]
        return [key for key in train_keys if key < MELD_DEV_KEY_OFFSET], validation, names

    if _is_id_collection(extra):
        wanted = {_plain_key(key) for key in extra}
        if wanted and wanted <= set(train_keys):
            return [k for k in train_keys if k not in wanted], [k for k in train_keys if k in wanted], names
        if wanted and not wanted & (set(train_keys) | test_set):
            # A separate list of validation dialogues (COSMIC keeps train/valid/test apart).
            return list(train_keys), _key_list(extra, "validation ids (item 12)", source), {
                **names,
                **{key: str(key) for key in wanted},
            }

    count = int(round(fraction * len(train_keys)))
    if fraction > 0 and count == 0 and len(train_keys) > 1:
        count = 1
    chosen = set(np.random.default_rng(seed).permutation(len(train_keys))[:count].tolist())
    validation = [key for index, key in enumerate(train_keys) if index in chosen]
    return [key for index, key in enumerate(train_keys) if index not in chosen], validation, names


def _follows_meld_numbering(train_keys: Sequence, test_keys: Sequence) -> bool:
    """True when the keys are MELD's consecutive integers: train+dev below 1153, test from 1153 on."""
    keys = list(train_keys) + list(test_keys)
    if not keys or not all(isinstance(key, int) and not isinstance(key, bool) for key in keys):
        return False
    return (
        all(0 <= key < MELD_TEST_KEY_OFFSET for key in train_keys)
        and any(key >= MELD_DEV_KEY_OFFSET for key in train_keys)
        and all(key >= MELD_TEST_KEY_OFFSET for key in test_keys)
    )


def _sentiment_item(extra: Any, keys: Sequence) -> Mapping | None:
    """The 13th MELD item when it holds one sentiment index (0-2) per utterance of every dialogue."""
    if not isinstance(extra, Mapping) or not all(key in extra for key in keys):
        return None
    for key in keys:
        values = np.asarray(extra[key])
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            return None
        if values.size and (values.min() < 0 or values.max() >= len(MELD_SENTIMENTS)):
            return None
    return extra


def _contract_features(dataset: str, with_sentiment: bool) -> Features:
    return contract_features(
        dataset,
        with_sentiment=with_sentiment,
        utterance_id="int32" if dataset == "meld" else None,
        with_feature_vectors=True,
    )


def _dialogue_item(item: Any, key: Any, what: str, source: str) -> Any:
    if not isinstance(item, Mapping):
        raise DataFormatError(
            f"{source}: the {what} item should be a dict keyed by dialogue id, found {type(item).__name__}."
        )
    if key not in item:
        raise DataFormatError(f"{source}: dialogue {key!r} is listed in the split ids but has no {what}.")
    return item[key]


def _feature_matrix(values: Any, key: Any, what: str, count: int, dim: int, source: str) -> np.ndarray:
    """Stack one dialogue's feature vectors into float32 ``[count, dim]`` or say which is wrong."""
    expected = f"{count} vectors of size {dim} (one per labelled utterance)"
    try:
        matrix = np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):
        sizes = [np.asarray(vector).size for vector in values]
        bad = next((index for index, size in enumerate(sizes) if size != dim), None)
        detail = f"{what} features are not numeric"
        if bad is not None:
            detail = f"{what} feature of utterance {bad} has size {sizes[bad]}"
        raise DataFormatError(f"{source}: dialogue {key!r}, {detail}; expected {expected}.") from None
    if matrix.ndim != 2 or matrix.shape[0] != count or matrix.shape[1] != dim:
        raise DataFormatError(
            f"{source}: dialogue {key!r} has {what} features of shape {tuple(matrix.shape)}; expected {expected}. "
            "If the file uses other feature sizes, pass feature_dims."
        )
    return matrix


def _repair_mojibake(text: str) -> str:
    """Re-decode a UTF-8 byte string that was decoded as Latin-1; leave every other string as is."""
    if text.isascii() or any(ord(char) > 0xFF for char in text):
        return text
    try:
        return text.encode("latin1").decode("utf-8")
    except UnicodeDecodeError:
        return text


def _speaker_names(values: Any, key: Any, count: int, source: str) -> list[str]:
    if len(values) != count:
        raise DataFormatError(f"{source}: dialogue {key!r} has {len(values)} speakers for {count} labels.")
    if all(isinstance(value, (str, bytes)) for value in values):
        return [value.decode("latin1") if isinstance(value, bytes) else value for value in values]
    one_hot = np.asarray(values, dtype=np.float32)
    if one_hot.ndim != 2:
        raise DataFormatError(
            f"{source}: dialogue {key!r}: speakers should be names or one-hot vectors, found shape {one_hot.shape}."
        )
    return [_meld_speaker_name(int(slot)) for slot in one_hot.argmax(axis=1)]


def _float_list_array(matrices: list[np.ndarray], dim: int) -> pa.Array:
    flat = np.concatenate(matrices).reshape(-1) if matrices else np.zeros(0, dtype=np.float32)
    rows = flat.size // dim if dim else 0
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * dim, type=pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(flat, type=pa.float32()))


def _split_table(contents, keys, names, dataset, text_feature, dims, sentiments, fix_text, source, features):
    """Arrow table of one split; features are copied as numpy blocks, never as Python floats."""
    num_labels = len(emotion_names(dataset))
    columns: dict[str, list] = {name: [] for name in ("dialogue_id", "turn", "speaker", "text", "emotion", "sentiment")}
    matrices: dict[str, list[np.ndarray]] = {"text": [], "audio": [], "video": []}
    for key in keys:
        labels = np.asarray(_dialogue_item(contents[2], key, "labels", source))
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise DataFormatError(f"{source}: dialogue {key!r}: labels should be a list of integers.")
        if labels.size == 0:
            raise DataFormatError(f"{source}: dialogue {key!r} has no utterances.")
        invalid = labels[(labels < 0) | (labels >= num_labels)]
        if invalid.size:
            raise DataFormatError(
                f"{source}: dialogue {key!r} has label {int(invalid[0])}; {dataset} labels are 0-{num_labels - 1} "
                f"({', '.join(emotion_names(dataset))})."
            )
        count = labels.size
        if text_feature == "mean":
            layers = [
                _feature_matrix(_dialogue_item(contents[i], key, name, source), key, name, count, dims["text"], source)
                for name, i in _ROBERTA_INDEX.items()
            ]
            matrices["text"].append(np.mean(layers, axis=0, dtype=np.float32))
        else:
            index = _ROBERTA_INDEX[text_feature]
            values = _dialogue_item(contents[index], key, text_feature, source)
            matrices["text"].append(_feature_matrix(values, key, "text", count, dims["text"], source))
        for modality, index in _MODALITY_INDEX.items():
            values = _dialogue_item(contents[index], key, modality, source)
            matrices[modality].append(_feature_matrix(values, key, modality, count, dims[modality], source))

        sentences = list(_dialogue_item(contents[9], key, "sentences", source))
        if len(sentences) != count:
            raise DataFormatError(f"{source}: dialogue {key!r} has {len(sentences)} sentences for {count} labels.")
        sentences = [s.decode("utf-8", errors="replace") if isinstance(s, bytes) else str(s) for s in sentences]
        if fix_text:
            sentences = [_repair_mojibake(sentence) for sentence in sentences]
        speakers = _speaker_names(_dialogue_item(contents[1], key, "speakers", source), key, count, source)
        columns["dialogue_id"].extend([names[key]] * count)
        columns["turn"].extend(range(count))
        columns["speaker"].extend(speakers)
        columns["text"].extend(sentences)
        columns["emotion"].extend(labels.tolist())
        if sentiments is not None:
            if len(sentiments[key]) != count:
                raise DataFormatError(
                    f"{source}: dialogue {key!r} has {len(sentiments[key])} sentiments for {count} labels."
                )
            columns["sentiment"].extend(np.asarray(sentiments[key]).tolist())

    rows = len(columns["turn"])
    arrays = {
        "dialogue_id": pa.array(columns["dialogue_id"], pa.string()),
        "turn": pa.array(columns["turn"], pa.int32()),
        "speaker": pa.array(columns["speaker"], pa.string()),
        "text": pa.array(columns["text"], pa.string()),
        "emotion": pa.array(columns["emotion"], pa.int64()),
        "sentiment": pa.array(columns["sentiment"], pa.int64()),
        "utterance_id": pa.nulls(rows, pa.int32()),
        **feature_only_media_columns(rows),
    }
    for modality, blocks in matrices.items():
        arrays[f"{modality}_features"] = _float_list_array(blocks, dims[modality])
    return pa.table({name: arrays[name] for name in features}).cast(features.arrow_schema)


def feature_only_media_columns(rows: int) -> dict:
    """The contract's media columns for rows read from feature files: no media file or time, but every modality
    present (its features stand for it)."""
    return {
        "audio_path": pa.nulls(rows, pa.string()),
        "video_path": pa.nulls(rows, pa.string()),
        "start": pa.nulls(rows, pa.float32()),
        "end": pa.nulls(rows, pa.float32()),
        "has_audio": pa.array(np.ones(rows, dtype=bool)),
        "has_video": pa.array(np.ones(rows, dtype=bool)),
    }
