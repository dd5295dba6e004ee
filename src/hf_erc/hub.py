"""Model cards and publishing checkpoints to the Hugging Face Hub.

A checkpoint folder (``save_pretrained`` output: config, safetensors weights, model code)
gets a ``README.md`` rendered from ``model_cards/template.md`` whose ``model-index``
metadata holds the measured results, so the Hub shows them on the model page, and the
``handler.py`` and ``requirements.txt`` that deploy it as a Hugging Face Inference Endpoint.
Publishing works offline up to the upload: everything is written locally first, and a
failed upload says which folder to push later.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData

from . import __version__
from .inference.checkpoints import ENDPOINT_HANDLER_FILE, ENDPOINT_HANDLER_SOURCE, read_checkpoint_json
from .labels import emotion_names
from .locking import LOCK_FILE
from .models.papers import PaperInfo
from .models.registry import family_for_model_type, known_model_types

RESULTS_FILES = ("all_results.json", "eval_results.json", "test_results.json")
# How a card describes a dialogue-level checkpoint's inputs when its training summary does not say.
DIALOGUE_MODEL_USAGE = (
    "The model takes a padded batch of dialogues: per-modality feature tensors `[batch, turns, dim]` "
    "(`text_features`, `audio_features`, `video_features`), `attention_mask` `[batch, turns]`, `speaker_ids` "
    "`[batch, turns]` and optionally `modality_mask` `[batch, turns, 3]`; `outputs.logits` is `[batch, turns, "
    "{num_labels}]` over the labels in `config.id2label`."
)
HEADLINE_METRICS = ("weighted_f1", "accuracy", "macro_f1")
# What an Inference Endpoint installs before it imports handler.py: hf_erc, at the version that wrote the handler.
ENDPOINT_REQUIREMENTS = f"""\
# What handler.py needs on a Hugging Face Inference Endpoint, which installs this file before importing it.
# hf_erc is not on PyPI: before deploying, replace the last line with where hf_erc {__version__} lives, e.g.
#   hf-erc @ git+https://github.com/<org>/hf_erc@<tag>
#   hf-erc @ https://<host>/hf_erc-{__version__}-py3-none-any.whl
hf-erc=={__version__}
"""


def paper_info(model_type: str) -> PaperInfo | None:
    """The paper of a checkpoint's ``model_type``: its family's in the model registry (stage checkpoints belong to
    their family's); ``None`` for a model type no family writes."""
    family = family_for_model_type(model_type)
    return None if family is None else family.paper


@dataclass(frozen=True)
class DatasetInfo:
    title: str
    hub_id: str
    domain: str
    citation: str


DATASETS: dict[str, DatasetInfo] = {
    "meld": DatasetInfo(
        title="MELD",
        hub_id="declare-lab/MELD",
        domain="English multi-party dialogue from the TV series Friends",
        citation=(
            "@inproceedings{poria2019meld,\n"
            "  title     = {{MELD}: A Multimodal Multi-Party Dataset for Emotion Recognition in Conversations},\n"
            "  author    = {Poria, Soujanya and Hazarika, Devamanyu and Majumder, Navonil and Naik, Gautam and Cambria, Erik and Mihalcea, Rada},\n"
            "  booktitle = {Proceedings of the 57th Annual Meeting of the Association for Computational Linguistics},\n"
            "  pages     = {527--536},\n"
            "  year      = {2019}\n"
            "}"
        ),
    ),
    "iemocap": DatasetInfo(
        title="IEMOCAP",
        hub_id="iemocap",
        domain="English dyadic conversations acted by ten actors in a lab (scripted and improvised)",
        citation=(
            "@article{busso2008iemocap,\n"
            "  title   = {{IEMOCAP}: Interactive emotional dyadic motion capture database},\n"
            "  author  = {Busso, Carlos and Bulut, Murtaza and Lee, Chi-Chun and Kazemzadeh, Abe and Mower, Emily and Kim, Samuel and Chang, Jeannette N. and Lee, Sungbok and Narayanan, Shrikanth S.},\n"
            "  journal = {Language Resources and Evaluation},\n"
            "  volume  = {42},\n"
            "  number  = {4},\n"
            "  pages   = {335--359},\n"
            "  year    = {2008}\n"
            "}"
        ),
    ),
}


class HubUploadError(RuntimeError):
    """The upload failed; the local folder is complete and can be pushed later."""


def template_path() -> Path:
    """``model_cards/template.md`` (shipped inside the package as a resource)."""
    return Path(str(resources.files("hf_erc") / "resources" / "model_cards" / "template.md"))


def read_results(checkpoint_dir: str | os.PathLike) -> dict[str, float]:
    """Metrics written by training (``all_results.json`` and friends), keys like ``eval_weighted_f1``."""
    results: dict[str, float] = {}
    for name in RESULTS_FILES:
        path = Path(checkpoint_dir) / name
        if path.is_file():
            results.update(json.loads(path.read_text()))
    return results


def _split_metrics(results: dict, prefix: str) -> dict[str, float]:
    return {key[len(prefix) + 1 :]: value for key, value in results.items() if key.startswith(prefix + "_")}


def _percent(value) -> str:
    return "–" if value is None else f"{100 * float(value):.2f}"


def build_model_card(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    dataset_name: str | None = None,
    results: dict[str, float] | None = None,
    training_description: str | None = None,
):
    """Render the model card of ``checkpoint_dir`` (a ``huggingface_hub.ModelCard``)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        raise FileNotFoundError(f"Checkpoint folder {checkpoint_dir} does not exist.")
    config = read_checkpoint_json(checkpoint_dir)  # a clear error when config.json is missing or not JSON
    model_type = config.get("model_type", "")
    paper = paper_info(model_type)
    if paper is None:
        raise ValueError(
            f"{checkpoint_dir / 'config.json'}: no model-card information for model_type {model_type!r}; known: "
            f"{known_model_types()}."
        )
    dataset_name = (dataset_name or config.get("dataset_name") or "").lower()
    if dataset_name not in DATASETS:
        raise ValueError(
            f"{checkpoint_dir}: cannot tell which dataset the checkpoint was trained on; pass dataset_name (one of {sorted(DATASETS)})."
        )
    dataset = DATASETS[dataset_name]
    results = read_results(checkpoint_dir) if results is None else results
    label_names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))] if "id2label" in config else list(emotion_names(dataset_name))
    modalities = config.get("modalities") or ["text", "audio", "video"]

    eval_results, rows = [], []
    for prefix, split in (("eval", "validation"), ("test", "test")):
        metrics = _split_metrics(results, prefix)
        if not metrics:
            continue
        rows.append({"split": split, **{name: _percent(metrics.get(name)) for name in HEADLINE_METRICS}})
        for name, pretty in (("weighted_f1", "Weighted F1"), ("accuracy", "Accuracy"), ("macro_f1", "Macro F1")):
            if name in metrics:
                eval_results.append(
                    EvalResult(
                        task_type="text-classification",
                        task_name="Emotion Recognition in Conversation",
                        dataset_type=dataset.hub_id,
                        dataset_name=dataset.title,
                        dataset_split=split,
                        metric_type="f1" if "f1" in name else "accuracy",
                        metric_name=pretty,
                        metric_value=round(100 * float(metrics[name]), 2),
                        metric_args={"average": name.split("_")[0]} if "f1" in name else None,
                    )
                )
    test_metrics = _split_metrics(results, "test")
    per_class_split = "test" if test_metrics else "validation"
    per_class_source = test_metrics or _split_metrics(results, "eval")
    per_class_rows = [
        {"label": label, "f1": _percent(per_class_source[f"f1_{label}"])} for label in label_names if f"f1_{label}" in per_class_source
    ]
    card_data = ModelCardData(
        model_name=repo_id.split("/")[-1],
        library_name="transformers",
        license="apache-2.0",
        language="en",
        datasets=[dataset.hub_id],
        metrics=["f1", "accuracy"],
        tags=["emotion-recognition", "emotion-recognition-in-conversation", "multimodal", "hf_erc", model_type],
        eval_results=eval_results or None,
    )
    reported = paper.reported.get(dataset_name)
    comparison = (
        f"For reference, the paper reports {reported} on {dataset.title}; this checkpoint's inputs and training may "
        "differ (see Inputs and Training)." if reported else ""
    )
    encoders_file = checkpoint_dir / "feature_encoders.json"
    inputs = ""
    if encoders_file.is_file():
        encoders = json.loads(encoders_file.read_text())
        inputs = "Per-utterance features from frozen encoders (recorded in `feature_encoders.json`):\n\n" + "\n".join(
            f"- {modality}: `{spec['name_or_path']}`, {spec['pooling']} pooling, {spec['dim']}-d"
            + _bundled_encoder_note(checkpoint_dir / spec["name_or_path"])
            for modality, spec in encoders.items()
        )
    summary = _training_summary(checkpoint_dir)
    if not encoders_file.is_file():
        trained_on = summary.get("trained on")
        inputs = f"Trained on {trained_on}." if trained_on else "Per-utterance feature vectors; dimensions are in `config.json`."
    usage = summary.pop("usage", None) or DIALOGUE_MODEL_USAGE.format(num_labels=len(label_names))
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_title=f"{paper.title} — {dataset.title} ({', '.join(modalities)})",
        model_description=paper.description,
        dataset_title=dataset.title,
        dataset_domain=dataset.domain,
        modalities_text="modalities: " + ", ".join(modalities),
        num_labels=len(label_names),
        label_list=", ".join(label_names),
        example_labels=label_names[:3],  # the endpoint section's example response
        result_rows=rows or [{"split": "not evaluated", **{name: "–" for name in HEADLINE_METRICS}}],
        per_class_rows=per_class_rows,
        per_class_split=per_class_split,
        paper_comparison=comparison,
        repo_id=repo_id,
        usage_inputs=usage,
        inputs_description=inputs,
        training_description=training_description or _training_description(summary),
        model_citation=paper.citation,
        dataset_citation=dataset.citation,
    )


def _bundled_encoder_note(folder: Path) -> str:
    """What the card says of an encoder carried in the checkpoint's own folder (``hf-erc fine-tune-text``'s output)."""
    record = folder / "fine_tuning.json"
    if not record.is_file():
        return " (in this repository)" if folder.is_dir() else ""
    fine_tuning = json.loads(record.read_text(encoding="utf-8"))
    arguments, validation = fine_tuning.get("arguments", {}), fine_tuning.get("validation", {})
    note = (
        f" (in this repository: `{fine_tuning.get('base_encoder')}` fine-tuned on {fine_tuning.get('num_train_utterances')} "
        f"training utterances' emotions for {arguments.get('num_train_epochs')} epochs, at most {arguments.get('max_length')} tokens"
    )
    if "weighted_f1" in validation:
        note += f"; its utterance classifier reached validation weighted F1 {100 * validation['weighted_f1']:.2f}"
    return note + ")"


def _training_summary(checkpoint_dir: Path) -> dict:
    """``training_summary.json`` written by ``scripts/train.py`` (empty when absent)."""
    path = checkpoint_dir / "training_summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _training_description(summary: dict) -> str:
    if not summary:
        return "Trained with `accelerate launch scripts/train.py` from hf_erc."
    return "Trained with `accelerate launch scripts/train.py` from hf_erc:\n\n" + "\n".join(
        f"- {key}: `{value}`" for key, value in summary.items()
    )


def write_endpoint_files(checkpoint_dir: str | os.PathLike) -> list[Path]:
    """Make ``checkpoint_dir`` deployable as a Hugging Face Inference Endpoint: ``handler.py`` (hf_erc's
    :mod:`~hf_erc.inference.endpoint_handler`, copied verbatim, so it is always the installed package's) and, unless
    the folder has one already (e.g. edited to point at a wheel), ``requirements.txt`` naming hf_erc."""
    checkpoint_dir = Path(checkpoint_dir)
    handler, requirements = checkpoint_dir / ENDPOINT_HANDLER_FILE, checkpoint_dir / "requirements.txt"
    shutil.copyfile(ENDPOINT_HANDLER_SOURCE, handler)
    if not requirements.is_file():
        requirements.write_text(ENDPOINT_REQUIREMENTS, encoding="utf-8")
    return [handler, requirements]


def write_model_card(checkpoint_dir: str | os.PathLike, repo_id: str, **options) -> Path:
    """Render and save ``README.md`` in ``checkpoint_dir``."""
    card = build_model_card(checkpoint_dir, repo_id, **options)
    path = Path(checkpoint_dir) / "README.md"
    card.save(path)
    return path


def push_checkpoint(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    commit_message: str = "Upload hf_erc checkpoint",
    token: str | None = None,
    **card_options,
) -> str:
    """Write the model card and the endpoint files, then upload the folder to ``repo_id``; returns the commit URL."""
    checkpoint_dir = Path(checkpoint_dir)
    missing = [name for name in ("config.json", "model.safetensors") if not (checkpoint_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{checkpoint_dir} is not a checkpoint folder: {', '.join(missing)} missing. Point at a `save_pretrained` output.")
    write_model_card(checkpoint_dir, repo_id, **card_options)
    write_endpoint_files(checkpoint_dir)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(checkpoint_dir),
            repo_id=repo_id,
            commit_message=commit_message,
            ignore_patterns=[
                "checkpoint-*", "*.pt", "*.bin", "optimizer*", "scheduler*", "rng_state*", "trainer_state.json",
                f"{LOCK_FILE}*",  # the training run that pushes holds its output_dir's lock
            ],
        )
    except Exception as error:  # network, auth and offline-mode errors all end here
        raise HubUploadError(
            f"Upload of {checkpoint_dir} to {repo_id} failed ({type(error).__name__}: {error}). "
            f"The folder is complete (weights, config, code, model card, endpoint handler): push it later with "
            f"`python scripts/push_to_hub.py {checkpoint_dir} {repo_id}` once the Hub is reachable and you are logged in."
        ) from error
    return str(getattr(commit, "commit_url", commit))
