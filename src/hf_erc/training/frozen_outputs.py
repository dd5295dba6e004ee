"""Outputs of frozen stage models, computed once before training and cached on disk.

A distilled student learns from its frozen teacher's logits and embeddings, and a fusion trains on the frozen
stage models' utterance embeddings: neither changes during training, so each is computed once per split
(keyed by the checkpoint, the processor settings and the rows, see :mod:`hf_erc.features.cache`) instead of on
every batch of every epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from huggingface_hub.constants import HF_HOME
from transformers.utils import logging

from ..data.collators import MediaCollator
from ..data.media import MediaDecodeError
from ..data.views import with_media
from ..features.cache import cache_key, cached_dense, cached_optional, media_identity, rows_identity
from .processors import skipped_over_seconds

logger = logging.get_logger(__name__)

# Columns of a text view that a text model's prompt depends on.
PROMPT_COLUMNS = ("dialogue_id", "turn", "speaker", "text", "context_speakers", "context_texts", "carried_speakers")


def embedding_cache_dir(data_args) -> Path:
    """``--embedding_cache_dir``, by default ``$HF_HOME/hf_erc/embeddings``."""
    if data_args.embedding_cache_dir is not None:
        return Path(data_args.embedding_cache_dir)
    return Path(HF_HOME) / "hf_erc" / "embeddings"


def processor_identity(processor) -> dict:
    """The processor's settings (prompt, audio window, frames, normalisation): what its models' inputs depend on."""
    return processor.to_dict()


def _device_and_autocast(training_args):
    device = training_args.device
    if training_args.bf16 and device.type == "cuda":
        return device, torch.autocast("cuda", dtype=torch.bfloat16)
    return device, torch.autocast(device.type, enabled=False)


@torch.no_grad()
def compute_text_outputs(text_model, view, collator, training_args) -> np.ndarray:
    """``[rows, num_labels + projection_size]``: the frozen text model's logits and utterance embeddings."""
    device, autocast = _device_and_autocast(training_args)
    text_model.to(device).eval()
    loader = torch.utils.data.DataLoader(
        view, batch_size=training_args.per_device_eval_batch_size, shuffle=False, collate_fn=collator
    )
    outputs = []
    for batch in loader:
        batch = {name: value.to(device) for name, value in batch.items() if name != "labels"}
        with autocast:
            result = text_model(**batch)
        outputs.append(torch.cat([result.logits, result.utterance_embeddings], dim=-1).float().cpu())
    return torch.cat(outputs).numpy()


class _SkipUndecodableBatches:
    """A media collator that gives ``None`` for a batch none of whose files decode (embedding passes only: the
    utterances get no embedding instead of stopping the pass)."""

    def __init__(self, collator: MediaCollator):
        self.collator = collator

    def __call__(self, rows):
        try:
            return self.collator(rows)
        except MediaDecodeError as error:
            logger.warning(f"{error}: these utterances get no {self.collator.modality} embedding.")
            return None


@torch.no_grad()
def compute_media_embeddings(model, media_view, modality: str, processor, training_args) -> list:
    """The frozen audio or video model's utterance embedding of every row of a media view (``None`` where
    decoding failed)."""
    device, autocast = _device_and_autocast(training_args)
    model.to(device).eval()
    embeddings: list = [None] * len(media_view)
    position = {int(row): index for index, row in enumerate(media_view["row"])}
    loader = torch.utils.data.DataLoader(
        media_view,
        batch_size=training_args.per_device_eval_batch_size,
        shuffle=False,
        collate_fn=_SkipUndecodableBatches(MediaCollator(modality, processor)),
        num_workers=training_args.dataloader_num_workers,
    )
    for batch in loader:
        if batch is None:
            continue
        rows = batch.pop("utterance_index").tolist()
        batch.pop("labels", None)
        with autocast:
            values = model(**{name: value.to(device) for name, value in batch.items()}).utterance_embeddings
        for row, vector in zip(rows, values.float().cpu().numpy()):
            embeddings[position[row]] = vector
    return embeddings


def cached_text_outputs(args, text_model, view, collator, checkpoint: list, prefix: str = "text") -> np.ndarray:
    """:func:`compute_text_outputs`, computed once per checkpoint, prompt length and rows (the main process first;
    the other ranks then read its file); ``prefix`` names the cache file."""
    key = f"{prefix}-" + cache_key(checkpoint, processor_identity(collator.processor), rows_identity(view, PROMPT_COLUMNS))
    with args.training.main_process_first(desc=f"{prefix} outputs"):
        return cached_dense(
            embedding_cache_dir(args.data),
            key,
            lambda: compute_text_outputs(text_model, view, collator, args.training),
        )


def utterance_embedding_columns(args, view, split, text_model, media_models, text_collator, processor, checkpoints):
    """``{"text_embeddings": [...], "<m>_embeddings": [...]}`` over the rows of an utterance view (with dialogue
    context and media columns): the frozen models' utterance embeddings, computed once and cached on disk;
    ``None`` where an utterance has no usable medium. Returns the columns and the number of utterances with
    each medium."""
    outputs = cached_text_outputs(args, text_model, view, text_collator, checkpoints["text"])
    columns = {"text_embeddings": list(outputs[:, text_model.config.num_labels :])}
    counts = {}
    with args.training.main_process_first(desc=f"{split} media embeddings"):
        for modality, model in media_models.items():
            media, _ = with_media(view, modality, skipped_over_seconds(processor))
            key = f"{modality}-" + cache_key(checkpoints[modality], media_identity(media), processor_identity(processor))
            computed = cached_optional(
                embedding_cache_dir(args.data),
                key,
                lambda model=model, media=media, modality=modality: compute_media_embeddings(
                    model, media, modality, processor, args.training
                ),
            )
            values: list = [None] * len(view)
            for row, vector in zip(media["row"], computed):
                values[int(row)] = vector
            columns[f"{modality}_embeddings"] = values
            counts[modality] = sum(vector is not None for vector in values)
    return columns, counts
