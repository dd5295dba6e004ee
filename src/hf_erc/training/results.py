"""What a finished run returns, reports and leaves behind: the metrics (:class:`TrainingResults`), the results
table, the per-rank weight fingerprints, and the publishable checkpoint folder (JSON arguments, training summary, model
card, optional push)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging

from ..features.encoders import BUNDLED_ENCODER_FOLDERS, EncoderSpec
from ..features.extract import ENCODERS_FILE, load_encoder_specs, save_encoder_specs
from ..hub import push_checkpoint, write_endpoint_files, write_model_card
from .arguments import RunArguments
from .stages import Stage

logger = logging.get_logger(__name__)


@dataclasses.dataclass
class TrainingResults:
    """What :func:`hf_erc.training.train` returns: the metrics of the model the run kept (the best epoch on
    validation weighted F1), in the process that ran it.

    Keys are the Trainer's, prefixed by split, as ``all_results.json`` holds them (:attr:`metrics`).

    Args:
        output_dir: the run's folder: the trained model with its model card, the metrics files, ``results.md``.
        validation: ``eval_weighted_f1``, ``eval_accuracy``, ``eval_macro_f1``, ``eval_f1_<class>``, ``eval_loss``...
        test: the same as ``test_*`` (empty without ``do_predict``).
        train: ``train_loss``, ``global_step``, ``world_size``, ``best_checkpoint``... (empty when the run only
            evaluated).
    """

    output_dir: Path
    validation: dict[str, float]
    test: dict[str, float] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        """Every split's metrics in one mapping, as the run writes them to ``all_results.json``."""
        return {**self.train, **self.validation, **self.test}


def _prefix(split: str) -> str:
    return "eval" if split == "validation" else split


def format_results_table(results: dict[str, dict[str, float]], label_names: Sequence[str]) -> str:
    """A Markdown table of weighted F1, accuracy, macro F1 and per-class F1 (in %), one column per split."""
    splits = list(results)
    rows = [("weighted F1", "weighted_f1"), ("accuracy", "accuracy"), ("macro F1", "macro_f1")]
    rows += [(f"F1 {name}", f"f1_{name}") for name in label_names]
    lines = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
    for title, key in rows:
        cells = []
        for split in splits:
            value = results[split].get(f"{_prefix(split)}_{key}")
            cells.append("-" if value is None else f"{100 * value:.2f}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def weights_fingerprints(model: torch.nn.Module) -> list[str]:
    """SHA-256 of the model's weights on every process (one entry per rank, in rank order).

    Data-parallel ranks must end with identical weights; the run records these so that a
    divergence (a rank that skipped a synchronisation) is visible in ``all_results.json``.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    fingerprint = digest.hexdigest()
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [fingerprint]
    fingerprints = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(fingerprints, fingerprint)
    return fingerprints


def finalize_checkpoint(args: RunArguments, stage: Stage, push_to_hub: bool) -> None:
    """Make ``output_dir`` a publishable checkpoint: encoder record, JSON arguments, training summary, model card,
    Inference Endpoints handler and its ``requirements.txt``; push if asked (:class:`~hf_erc.hub.HubUploadError` when
    that fails).

    ``save_model`` also writes ``training_args.bin`` (a pickle); it is replaced by ``training_args.json`` so the
    published folder holds no pickle.
    """
    training_args, data_args = args.training, args.data
    output_dir = Path(training_args.output_dir)
    encoders = Path(data_args.data_dir) / ENCODERS_FILE if data_args.data_dir else None
    if encoders is not None and encoders.is_file():
        save_encoder_specs(bundle_local_encoders(load_encoder_specs(encoders.parent), output_dir), output_dir)
    (output_dir / "training_args.bin").unlink(missing_ok=True)
    (output_dir / "training_args.json").write_text(training_args.to_json_string(), encoding="utf-8")
    summary = {
        "model_type": args.model.model_type,
        "stage": args.model.stage,
        "checkpoint": stage.writes,
        "trained on": stage.reads,
        "dataset": data_args.dataset_name,
        "modalities": ", ".join(data_args.modalities),
        "epochs": training_args.num_train_epochs,
        "learning_rate": training_args.learning_rate,
        f"batch_size_per_device ({stage.unit})": training_args.per_device_train_batch_size,
        "processes": training_args.world_size,
        "seed": training_args.seed,
        "best model selected on": training_args.metric_for_best_model,
        "usage": stage.usage,
    }
    (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    repo_id = training_args.hub_model_id or output_dir.name
    write_model_card(output_dir, repo_id, dataset_name=data_args.dataset_name)
    write_endpoint_files(output_dir)
    if push_to_hub:
        private = bool(training_args.hub_private_repo)
        url = push_checkpoint(output_dir, repo_id, private=private, token=training_args.hub_token)
        print(f"Pushed {output_dir} to {url}")


def bundle_local_encoders(specs: dict[str, EncoderSpec], output_dir: Path) -> dict[str, EncoderSpec]:
    """Copy every encoder that exists only as a local folder (e.g. one ``hf-erc fine-tune-text`` wrote) into the
    checkpoint as ``<modality>_encoder/`` and point its record there, so the checkpoint (and its Hub repository)
    carries the encoder its features came from. Hub ids and short names stay as they are."""
    bundled = {}
    for modality, spec in specs.items():
        source, target = Path(spec.name_or_path), output_dir / BUNDLED_ENCODER_FOLDERS[modality]
        if source.is_dir() and source.resolve() != target.resolve():
            target.mkdir(parents=True, exist_ok=True)
            for file in source.iterdir():  # weights, config, tokenizer files, fine_tuning.json
                if file.is_file() and file.suffix in (".json", ".safetensors", ".txt", ".model"):
                    shutil.copy2(file, target / file.name)
            spec = dataclasses.replace(spec, name_or_path=target.name)
        bundled[modality] = spec
    return bundled
