"""Views of an utterance split that training stages and feature extraction read.

A view keeps the contract's rows in order and adds what one consumer needs: the dialogue context of each
utterance (text teachers), the media file and time window of each utterance that has a modality (audio and
video models, feature extraction), a ``length`` column to bucket by, or vector columns of cached outputs.
Every view carries ``row``, the utterance's position in the split, so outputs computed on a subset of rows
find their way back.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence

import numpy as np
from datasets import List, Value

from .dialogues import add_dialogue_context, dialogue_boundaries

# Columns of an utterance row the utterance-level stages read (besides media and cached outputs).
UTTERANCE_COLUMNS = ("dialogue_id", "turn", "speaker", "text", "emotion")
# Columns a media view adds: the file to decode and the window to cut from it (None: the whole file).
MEDIA_COLUMNS = ("media_path", "media_start", "media_end")
# Contract columns that locate an utterance's media.
MEDIA_SOURCE_COLUMNS = ("audio_path", "has_audio", "video_path", "has_video", "start", "end")


def media_rows(split, modality: str) -> list[tuple[int, str, float | None, float | None]]:
    """``(row, path, start, end)`` of each utterance with usable ``modality``.

    A file used by several utterances is a whole-dialogue recording (IEMOCAP video): each turn is cut from it
    by its times; a file of its own is read whole (``start``/``end`` None).
    """
    paths = split[f"{modality}_path"]
    present = split[f"has_{modality}"]
    starts, ends = split["start"], split["end"]
    uses = Counter(path for path in paths if path)
    rows = []
    for index, (path, usable) in enumerate(zip(paths, present)):
        if path and usable:
            shared = uses[path] > 1
            rows.append((index, path, starts[index] if shared else None, ends[index] if shared else None))
    return rows


def with_row_index(dataset):
    """``dataset`` with ``row``, each row's position."""
    return dataset.add_column("row", np.arange(len(dataset), dtype=np.int64))


def with_dialogue_context(dataset, max_context_turns: int | None, extra_columns: Sequence[str] = ()):
    """Utterance rows with ``context_speakers``/``context_texts`` and ``row``, other columns dropped."""
    keep = [name for name in (*UTTERANCE_COLUMNS, *extra_columns) if name in dataset.column_names]
    dataset = dataset.select_columns(keep)
    return with_row_index(add_dialogue_context(dataset, max_context_turns=max_context_turns))


def with_carried_speakers(view, processor):
    """``view`` with ``carried_speakers``: per row, the speaker table the previous dialogue of the split left, for
    processors that number a dialogue's first turn against it (the authors' loop, ``speaker_numbering="carried"``);
    ``None`` for the split's first dialogue. Rows are in dialogue order, as the contract keeps them."""
    boundaries = dialogue_boundaries(view)
    speakers = view["speaker"]
    carried, table = [None] * len(view), None
    for first, end in zip(boundaries[:-1], boundaries[1:]):
        dialogue = speakers[int(first) : int(end)]
        carried[int(first) : int(end)] = [table] * len(dialogue)
        table = processor.speaker_table(dialogue, table)
    return view.add_column("carried_speakers", carried, feature=List(Value("string")))


def with_prompt_context(dataset, processor, max_context_turns: int | None, extra_columns: Sequence[str] = ()):
    """Utterance rows with what a processor needs to build each prompt: the dialogue context, ``row``, and the
    carried speaker table where its numbering uses one."""
    view = with_dialogue_context(dataset, max_context_turns, extra_columns)
    if getattr(processor, "speaker_numbering", None) == "carried":
        view = with_carried_speakers(view, processor)
    return view


def with_media(dataset, modality: str, max_clip_seconds: float | None):
    """The rows that have ``modality`` with ``media_path``/``media_start``/``media_end``; and how many were left
    out, by reason.

    A row has the modality when it names a file that exists, ``has_<modality>`` is true and the utterance is
    not longer than ``max_clip_seconds``.
    """
    rows = media_rows(dataset, modality)
    with_path = len(rows)
    rows = [row for row in rows if os.path.isfile(row[1])]
    absent = with_path - len(rows)
    too_long = 0
    if max_clip_seconds is not None and "start" in dataset.column_names and "end" in dataset.column_names:
        starts, ends = dataset["start"], dataset["end"]
        kept = []
        for row in rows:
            start, end = starts[row[0]], ends[row[0]]
            if start is not None and end is not None and end - start > max_clip_seconds:
                too_long += 1
            else:
                kept.append(row)
        rows = kept
    # Columns over every row first, then the selection (adding columns to a selection of a table that was
    # itself built by adding columns can fail to line the blocks up in datasets).
    columns: dict[str, list] = {name: [None] * len(dataset) for name in MEDIA_COLUMNS}
    for index, path, start, end in rows:
        columns["media_path"][index] = path
        columns["media_start"][index] = None if start is None else float(start)
        columns["media_end"][index] = None if end is None else float(end)
    view = dataset
    for name, values in columns.items():
        view = view.add_column(name, values, feature=Value("string") if name == "media_path" else Value("float64"))
    view = view.select([row[0] for row in rows])
    skipped = {
        f"no_{modality}": len(dataset) - with_path,
        f"{modality}_file_missing": absent,
        f"longer_than_{max_clip_seconds:g}s" if max_clip_seconds else "too_long": too_long,
    }
    return view, skipped


def with_length(dataset, lengths: Sequence[int]):
    """``dataset`` with the ``length`` column the length-grouped sampler buckets rows by."""
    return dataset.add_column("length", np.asarray(lengths, dtype=np.int32))


def with_vector_column(dataset, name: str, values: Sequence):
    """``dataset`` with a float32 vector column (``None`` where a row has no vector)."""
    vectors = [None if value is None else np.asarray(value, dtype=np.float32) for value in values]
    return dataset.add_column(name, vectors, feature=List(Value("float32")))
