"""What the training stages need around the utterance-level models' processors (TelME, MAGTKD).

The processors and their presets are the models' own (``TelMEProcessor.from_preset``,
``MAGTKDProcessor.from_preset``): a checkpoint is served with the processor it was trained with. What is here concerns
a training run only: how many tokens the text model reads, growing its embeddings to the speaker markers, which audio
feature extractor or image processor a stage starts from, and which clips a stage leaves out.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoFeatureExtractor, AutoImageProcessor
from transformers.utils import logging

logger = logging.get_logger(__name__)


def fit_embeddings_to_tokenizer(text_model, tokenizer) -> None:
    """Grow the text model's word embeddings to the tokenizer's size (the speaker tokens take the new rows)."""
    rows = text_model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        text_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        text_model.config.text_config.vocab_size = len(tokenizer)


def text_max_length(data_args, config, extra_virtual_tokens: int = 0) -> int:
    """Tokens per text-model input: ``--max_length``, at most what the encoder's positions leave after the virtual
    tokens (folded ones and those a PEFT prompt adds while training)."""
    limit = config.text_max_length - config.text_num_virtual_tokens - extra_virtual_tokens
    if data_args.max_length is None:
        return limit
    if data_args.max_length > limit:
        raise ValueError(
            f"--max_length {data_args.max_length} exceeds the {limit} tokens the text model can read "
            f"(text_max_length {config.text_max_length} minus {config.text_num_virtual_tokens + extra_virtual_tokens} "
            "virtual tokens): lower it."
        )
    return data_args.max_length


def pretrained_preprocessor(processor_class, source: str | None, modality: str):
    """The audio feature extractor (``modality="audio"``) or video image processor found at ``source``: the one
    inside a saved processor (a stage checkpoint), else the encoder's own; ``None`` when there is neither (the
    processor then uses the reference's)."""
    attribute, auto_class = {
        "audio": ("feature_extractor", AutoFeatureExtractor),
        "video": ("image_processor", AutoImageProcessor),
    }[modality]
    if source is None:
        return None
    if Path(source, "processor_config.json").is_file():
        return getattr(processor_class.from_pretrained(source, trust_remote_code=False), attribute)
    try:
        return auto_class.from_pretrained(source, trust_remote_code=False)
    except (OSError, ValueError):
        logger.info(f"No {attribute} in {source}: using the reference's {modality} preprocessing.")
        return None


def skipped_over_seconds(processor) -> float | None:
    """The clip length past which a stage leaves utterances out (``None``: none are, e.g. the authors' zeros)."""
    return processor.max_clip_seconds if getattr(processor, "long_clip_inputs", "missing") == "missing" else None
