"""MAGTKD (Li et al., IJCAI 2025): multi-modal anchor gated transformer with knowledge distillation for ERC."""

from .configuration_magtkd import MAGTKDAudioModelConfig, MAGTKDConfig, MAGTKDTextModelConfig, MAGTKDVideoModelConfig
from .processing_magtkd import MAGTKDProcessor
from .modeling_magtkd import (
    MAGTKDAudioModel,
    MAGTKDForEmotionRecognition,
    MAGTKDOutput,
    MAGTKDPreTrainedModel,
    MAGTKDTextModel,
    MAGTKDUnimodalOutput,
    MAGTKDVideoModel,
)


__all__ = [
    "MAGTKDAudioModel",
    "MAGTKDAudioModelConfig",
    "MAGTKDConfig",
    "MAGTKDForEmotionRecognition",
    "MAGTKDOutput",
    "MAGTKDPreTrainedModel",
    "MAGTKDProcessor",
    "MAGTKDTextModel",
    "MAGTKDTextModelConfig",
    "MAGTKDUnimodalOutput",
    "MAGTKDVideoModel",
    "MAGTKDVideoModelConfig",
]
