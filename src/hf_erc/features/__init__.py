"""Frozen-encoder feature extraction into dataset columns (computed once, cached on disk)."""

from .encoders import AudioEncoder, EncoderSpec, TextEncoder, VideoEncoder
from .extract import FEATURE_COLUMNS, extract_features, load_encoder_specs, save_encoder_specs

__all__ = [
    "AudioEncoder",
    "EncoderSpec",
    "FEATURE_COLUMNS",
    "TextEncoder",
    "VideoEncoder",
    "extract_features",
    "load_encoder_specs",
    "save_encoder_specs",
]
