"""Dataset summaries: per-split counts of dialogues, emotions and usable/missing media.

Kept apart from :mod:`hf_erc.data.prepare` so that the dataset builders (:mod:`~hf_erc.data.meld`,
:mod:`~hf_erc.data.iemocap`), which report on their media, can use them without importing
``prepare``, which itself dispatches to those builders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import datasets

__all__ = ["MODALITIES", "MediaCounts", "count_media", "media_report", "summarize"]


MODALITIES: tuple[str, ...] = ("audio", "video")


@dataclass
class MediaCounts:
    """Media availability of one split, per modality (``"audio"``, ``"video"``).

    ``usable[m]`` counts the utterances whose ``m`` is present and decodes, ``missing[m]`` names
    the utterances without an ``m`` file, and ``unusable[m]`` lists the ``m`` files that exist but
    do not decode (one entry per utterance). A MELD clip holds both modalities, so one bad clip
    shows in both. A split without any media file was built from text alone (``text_only``).
    """

    utterances: int
    usable: dict[str, int] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    unusable: dict[str, list[str]] = field(default_factory=dict)

    @property
    def text_only(self) -> bool:
        return self.utterances > 0 and all(len(self.missing[modality]) == self.utterances for modality in MODALITIES)


def count_media(dataset: datasets.Dataset) -> MediaCounts:
    """Usable, missing and unusable audio and video of the utterances of ``dataset``."""
    names = ["dialogue_id", "turn", "audio_path", "video_path", "has_audio", "has_video"]
    if "utterance_id" in dataset.column_names:
        names.append("utterance_id")
    columns = dataset.select_columns(names).to_dict()
    counts = MediaCounts(utterances=len(dataset))
    for modality in MODALITIES:
        paths, decodes = columns[f"{modality}_path"], columns[f"has_{modality}"]
        counts.usable[modality] = sum(decodes)
        counts.missing[modality] = [
            _utterance_name(columns, index) for index, path in enumerate(paths) if path is None
        ]
        counts.unusable[modality] = [
            os.path.basename(path) for path, ok in zip(paths, decodes) if path is not None and not ok
        ]
    return counts


def _utterance_name(columns: dict, index: int) -> str:
    """How a report names an utterance: IEMOCAP's turn id, MELD's ``dia{D}_utt{U}``, else dialogue and turn."""
    utterance_ids = columns.get("utterance_id")
    utterance_id = None if utterance_ids is None else utterance_ids[index]
    if isinstance(utterance_id, str):
        return utterance_id
    if utterance_id is not None:
        return f"{columns['dialogue_id'][index]}_utt{utterance_id}"
    return f"{columns['dialogue_id'][index]} turn {columns['turn'][index]}"


def summarize(dataset_dict: datasets.DatasetDict) -> str:
    """Plain-text table, one column per split plus the total: dialogues, utterances, emotions, media."""
    splits = list(dataset_dict)
    label_names = dataset_dict[splits[0]].features["emotion"].names
    rows: dict[str, list[int]] = {}
    for split in splits:
        dataset = dataset_dict[split]
        columns = dataset.select_columns(["dialogue_id", "emotion"]).to_dict()
        per_label = [0] * len(label_names)
        unlabeled = 0
        for label in columns["emotion"]:
            if label is None or label < 0:
                unlabeled += 1
            else:
                per_label[label] += 1
        media = count_media(dataset)
        values = {
            "dialogues": len(set(columns["dialogue_id"])),
            "utterances": len(dataset),
            **{f"  {label}": count for label, count in zip(label_names, per_label)},
            "  (unlabeled)": unlabeled,
            **{f"usable {modality}": media.usable[modality] for modality in MODALITIES},
            **{f"missing {modality}": len(media.missing[modality]) for modality in MODALITIES},
            **{f"unusable {modality}": len(media.unusable[modality]) for modality in MODALITIES},
        }
        for name, value in values.items():
            rows.setdefault(name, []).append(value)
    if not any(rows["  (unlabeled)"]):
        del rows["  (unlabeled)"]

    table = [["", *splits, "total"]]
    for name, values in rows.items():
        if name == f"  {label_names[0]}":
            table.append(["emotion"] + [""] * (len(splits) + 1))
        table.append([name, *map(str, values), str(sum(values))])
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def media_report(dataset_dict: datasets.DatasetDict, max_names: int = 5) -> list[str]:
    """One line per split: usable audio and video, and which files are missing or do not decode.

    When audio and video fail together (MELD: one clip holds both) they are reported once, as
    ``audio/video``; names are listed once per file.
    """
    lines = []
    for split, dataset in dataset_dict.items():
        counts = count_media(dataset)
        if counts.text_only:
            lines.append(f"{split}: text only (no media files found for its {counts.utterances} utterances)")
            continue
        line = (
            f"{split}: {counts.utterances} utterances, audio usable for {counts.usable['audio']}, "
            f"video for {counts.usable['video']}"
        )
        for kind in ("missing", "unusable"):
            per_modality = {modality: list(dict.fromkeys(getattr(counts, kind)[modality])) for modality in MODALITIES}
            if per_modality["audio"] == per_modality["video"]:
                per_modality = {"audio/video": per_modality["audio"]}
            for modality, names in per_modality.items():
                if names:
                    shown = ", ".join(names[:max_names]) + (", ..." if len(names) > max_names else "")
                    line += f"; {kind} {modality}: {len(names)} ({shown})"
        lines.append(line)
    return lines
