"""Write a ``DatasetDict`` as a Parquet dataset repository (what the Hub serves) and push it.

The folder holds ``data/{split}-00000-of-00001.parquet`` (the split is in the file name, where ``datasets``
and the Hub look for it) and a ``README.md`` whose YAML front matter declares the features and splits
(``dataset_info``), so ``datasets.load_dataset(folder)`` -- or ``load_dataset("user/repo")`` once pushed -- gives
back the same rows with the same ``ClassLabel`` names.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets
from datasets.info import DatasetInfo, DatasetInfosDict
from datasets.splits import SplitDict, SplitInfo
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, constants

# What each column of the data contract means, for dataset cards.
COLUMN_DESCRIPTIONS: dict[str, str] = {
    "dialogue_id": "dialogue identifier, unique within the split",
    "turn": "0-based position of the utterance in its dialogue",
    "utterance_id": "the release's own utterance id (MELD: number within the dialogue, may skip numbers; IEMOCAP: turn id such as Ses01F_impro01_F000)",
    "speaker": "who speaks",
    "text": "transcript, exactly as released (UTF-8)",
    "emotion": "emotion label (ClassLabel, order below)",
    "sentiment": "sentiment label (ClassLabel, order below)",
    "audio_path": "audio file on the machine that prepared the data, null when missing",
    "video_path": "video file on the machine that prepared the data, null when missing",
    "start": "start time in seconds (float32)",
    "end": "end time in seconds (float32)",
    "has_audio": "the audio is present and decodes",
    "has_video": "the video is present and decodes",
    "text_features": "cached text-encoder features (null when absent)",
    "audio_features": "cached audio-encoder features (null when the audio is missing)",
    "video_features": "cached video-encoder features (null when the video is missing)",
}


def parquet_file_name(split: str) -> str:
    """Path of a split's single Parquet shard inside the repository."""
    return f"data/{split}-00000-of-00001.parquet"


def dataset_card_body(
    *,
    title: str,
    summary: str,
    dataset_dict: datasets.DatasetDict,
    split_table: str,
    notes: str = "",
    citation: str = "",
    license_text: str = "",
) -> str:
    """Markdown body of a dataset card: summary, loading, columns, label order, splits, notes, citation, license."""
    first = next(iter(dataset_dict.values()))
    columns = "\n".join(
        f"| `{name}` | {COLUMN_DESCRIPTIONS.get(name, str(first.features[name]))} |" for name in first.column_names
    )
    labels = "\n".join(
        f"- `{name}`: " + ", ".join(f"{index} = {label}" for index, label in enumerate(feature.names))
        for name, feature in first.features.items()
        if isinstance(feature, datasets.ClassLabel)
    )
    sections = [
        f"# {title}",
        summary.strip(),
        "## Loading\n\n```python\nfrom datasets import load_dataset\n\n"
        'dataset = load_dataset("path/to/this/folder")  # or "user/repo" on the Hub\n```',
        "## Columns\n\nOne row per utterance, rows in dialogue order.\n\n| column | meaning |\n|---|---|\n" + columns,
        "## Label order\n\n" + labels,
        "## Splits\n\n```\n" + split_table + "\n```",
    ]
    if notes:
        sections.append("## Notes\n\n" + notes.strip())
    if citation:
        sections.append("## Citation\n\n```bibtex\n" + citation.strip() + "\n```")
    if license_text:
        sections.append("## License\n\n" + license_text.strip())
    return "\n\n".join(sections) + "\n"


def save_parquet_repo(
    dataset_dict: datasets.DatasetDict,
    output_dir: str | os.PathLike,
    card_text: str,
    *,
    license: str | None = None,
    language: list[str] | None = None,
    task_categories: list[str] | None = None,
    pretty_name: str | None = None,
) -> Path:
    """Write ``dataset_dict`` to ``output_dir`` as ``data/*.parquet`` + ``README.md`` (front matter + ``card_text``).

    Existing shards of the same splits are overwritten; returns the folder.
    """
    output_dir = Path(output_dir)
    (output_dir / "data").mkdir(parents=True, exist_ok=True)
    split_infos = SplitDict()
    for split, dataset in dataset_dict.items():
        dataset.to_parquet(os.fspath(output_dir / parquet_file_name(split)))
        split_infos.add(SplitInfo(name=split, num_bytes=dataset.data.nbytes, num_examples=len(dataset)))

    card_data = DatasetCardData(
        license=license, language=language, task_categories=task_categories, pretty_name=pretty_name
    )
    # No `configs: data_files` block: the shard names follow the `data/{split}-NNNNN-of-NNNNN.parquet` layout that
    # `datasets` and the Hub find on their own, and with that block `load_dataset(folder)` keys its cache on the
    # folder's name, those patterns and the card's split sizes only, handing back the rows of an earlier folder of
    # that name (or of this one before it was prepared again) whenever the sizes match. Without it the key follows
    # each shard's path and modification time.
    features = next(iter(dataset_dict.values())).features
    DatasetInfosDict({"default": DatasetInfo(features=features, splits=split_infos)}).to_dataset_card_data(card_data)
    card = DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{card_text}")
    card.save(output_dir / "README.md")
    return output_dir


class PushError(RuntimeError):
    """Uploading a prepared dataset folder to the Hub failed; the local folder is complete."""


def push_parquet_repo(output_dir: str | os.PathLike, repo_id: str, private: bool = False) -> str:
    """Upload a folder written by :func:`save_parquet_repo` to the dataset repository ``repo_id``; returns its URL.

    Raises :class:`PushError` (offline, not logged in, no permission...) with the command to push later.
    """
    output_dir = Path(output_dir).resolve()
    later = (
        f"The local dataset folder {output_dir} is complete. Push it later, once online and logged in "
        f"(`hf auth login`), with: hf upload {repo_id} {output_dir} --repo-type dataset"
        + (" --private" if private else "")
    )
    offline_value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if constants.HF_HUB_OFFLINE or offline_value in ("1", "on", "true", "yes"):
        raise PushError(f"Cannot push to {repo_id}: HF_HUB_OFFLINE is set. {later}")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=os.fspath(output_dir), repo_id=repo_id, repo_type="dataset")
    except Exception as error:  # network, authentication and permission errors all end the same way
        raise PushError(f"Cannot push to {repo_id} ({type(error).__name__}: {error}). {later}") from error
    return f"https://huggingface.co/datasets/{repo_id}"
