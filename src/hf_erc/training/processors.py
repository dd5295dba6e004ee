"""Tokenizers and processors of the utterance-level models (TelME, MAGTKD): built once per stage, saved with
its checkpoint, and what the stage's collators call to turn prompts, waveforms and frames into tensors."""

from __future__ import annotations

from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)


def speaker_tokens(num_speaker_tokens: int, template: str = "<s{index}>") -> list[str]:
    """The speaker markers ``<s1>``, ``<s2>``, ... the prompt writes."""
    return [template.format(index=index) for index in range(1, num_speaker_tokens + 1)]


def load_speaker_tokenizer(name_or_path: str | None, num_speaker_tokens: int):
    """The text model's tokenizer with the speaker markers added as special tokens (TelME's and MAGTKD's)."""
    from transformers import AutoTokenizer

    from ..features.encoders import resolve_encoder_path

    if name_or_path is None:
        raise ValueError(
            "The text model's prompts (and the processor of the audio/video stages) need a tokenizer: pass "
            "--model_name_or_path (a text encoder such as roberta-large, or 'minilm') or --tokenizer_name_or_path "
            "(the text model's tokenizer)."
        )
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(name_or_path), trust_remote_code=False)
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(f"The tokenizer of {name_or_path} has no mask or pad token; the prompt needs both.")
    missing = [token for token in speaker_tokens(num_speaker_tokens) if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"extra_special_tokens": missing}, replace_extra_special_tokens=False)
    return tokenizer


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


def reference_audio_feature_extractor(sampling_rate: int):
    """data2vec-audio-base-960h's feature extractor: waveforms normalised to zero mean and unit variance."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=sampling_rate, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )


def reference_image_processor(frame_size: int):
    """VideoMAE-base's image processor as TelME's reference uses it: shortest edge resized to ``frame_size``,
    centre crop, ImageNet mean and standard deviation."""
    from transformers import VideoMAEImageProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return VideoMAEImageProcessor(
        size={"shortest_edge": frame_size},
        crop_size={"height": frame_size, "width": frame_size},
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
    )


def _preprocessor_from(processor_class, source: str | None, modality: str):
    """The audio feature extractor or video image processor found at ``source``: the one inside a saved processor
    (a stage checkpoint), else the encoder's own; ``None`` when there is neither."""
    from transformers import AutoFeatureExtractor, AutoImageProcessor

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


# The authors' pipelines (read in yuntaeyang/TelME and JieLi-dd/MAGTKD): librosa's default 22,050 Hz, 400,000
# samples, OpenCV (BGR) frames through VideoMAE-base's image processor. docs/models/{telme,magtkd}.md list every item.
REFERENCE_SAMPLING_RATE = 22050
REFERENCE_AUDIO_SAMPLES = 400_000
_REFERENCE_COMMON = {
    "preprocessing": "reference",
    "audio_sampling_rate": REFERENCE_SAMPLING_RATE,
    "max_audio_seconds": REFERENCE_AUDIO_SAMPLES / REFERENCE_SAMPLING_RATE,
    "video_channel_order": "bgr",
}
REFERENCE_SETTINGS = {
    ("telme", "meld"): {
        "speaker_numbering": "carried",
        "strip_spaces_around_markers": True,
        "audio_window": "last",
        "max_clip_seconds": 30.0,
        "long_clip_inputs": "zeros",  # MELD clips over 30 s: zero audio and frames, as the students saw them
    },
    ("telme", "iemocap"): {
        "speaker_numbering": "carried",
        "speaker_key": "turn",  # TelME's IEMOCAP files name the turn in their Speaker column
        "strip_spaces_around_markers": True,
        "audio_window": "last",
        "max_clip_seconds": None,
        "video_margin_seconds": 1.0,
    },
    ("magtkd", "meld"): {
        "speaker_numbering": "vocabulary",  # speaker2id.json: the 304 MELD speakers, in MAGTKDConfig
        "prompt_template": "{sep} Now{speaker} feels",
        "num_speaker_tokens": 0,  # MAGTKD's data tokenizer adds no marker token
        "audio_window": "first",
        "max_clip_seconds": None,
    },
    ("magtkd", "iemocap"): {
        "speaker_numbering": "carried",
        "prompt_template": "{sep} Now{speaker} feels",
        "num_speaker_tokens": 0,
        "audio_window": "first",
        "max_clip_seconds": None,
        "video_margin_seconds": 1.0,
    },
}


def processor_settings(recipe_name: str, dataset: str, preprocessing: str, config) -> dict:
    """The processor fields of ``recipe_name`` on ``dataset``: the authors' (``"reference"``) or ours
    (``"default"``, from the model's configuration)."""
    if preprocessing == "default":
        return {
            "preprocessing": "default",
            "strip_spaces_around_markers": True,
            "num_speaker_tokens": config.num_speaker_tokens,
            "audio_sampling_rate": config.audio_sampling_rate,
            "max_audio_seconds": config.audio_max_seconds,
            "max_clip_seconds": config.max_clip_seconds,
            "num_frames": config.video_num_frames,
        }
    if preprocessing != "reference":
        raise ValueError(f"--preprocessing must be 'default' or 'reference', got {preprocessing!r}.")
    key = (recipe_name, dataset)
    if key not in REFERENCE_SETTINGS:
        raise ValueError(f"No reference preprocessing is known for {recipe_name} on {dataset}.")
    settings = {**_REFERENCE_COMMON, "num_speaker_tokens": config.num_speaker_tokens, "num_frames": 8}
    settings.update(REFERENCE_SETTINGS[key])
    if settings.get("speaker_numbering") == "vocabulary":
        settings["speaker_vocab"] = _reference_speaker_vocab(recipe_name, dataset)
    return settings


def _reference_speaker_vocab(recipe_name: str, dataset: str) -> dict[str, int]:
    from ..models import MAGTKDConfig

    return dict(MAGTKDConfig.for_dataset(dataset).speaker_vocab)


def build_processor(
    processor_class,
    tokenizer,
    config,
    max_length: int,
    settings: dict,
    audio_source: str | None = None,
    video_source: str | None = None,
    **fields,
):
    """The model's processor for ``config`` with ``settings`` (:func:`processor_settings`) and ``fields``.

    In default preprocessing the feature extractor and image processor come from ``audio_source``/
    ``video_source``: a folder holding a saved processor (a stage checkpoint) or an encoder's own preprocessor
    (e.g. the Hub id of data2vec-audio-base-960h); failing that, the reference's. Reference preprocessing always
    uses the reference's (:func:`reference_audio_feature_extractor`, :func:`reference_image_processor`).
    """
    reference = settings.get("preprocessing") == "reference"
    feature_extractor = None if reference else _preprocessor_from(processor_class, audio_source, "audio")
    image_processor = None if reference else _preprocessor_from(processor_class, video_source, "video")
    return processor_class(
        tokenizer=tokenizer,
        # The authors declare 16 kHz to the extractor whatever the rate: it only normalises.
        feature_extractor=feature_extractor or reference_audio_feature_extractor(config.audio_sampling_rate),
        image_processor=image_processor or reference_image_processor(config.video_frame_size),
        max_length=max_length,
        **{**settings, **fields},
    )


def skipped_over_seconds(processor) -> float | None:
    """The clip length past which a stage leaves utterances out (``None``: none are, e.g. the authors' zeros)."""
    return processor.max_clip_seconds if getattr(processor, "long_clip_inputs", "missing") == "missing" else None
