"""TelME (Yun et al., NAACL 2024): teacher-leading multimodal fusion network for ERC."""

from .configuration_telme import TelMEAudioStudentConfig, TelMEConfig, TelMETextTeacherConfig, TelMEVideoStudentConfig
from .modeling_telme import (
    TelMEAttentionShiftingFusion,
    TelMEAudioStudent,
    TelMEForEmotionRecognition,
    TelMEOutput,
    TelMEPreTrainedModel,
    TelMETextTeacher,
    TelMEUnimodalOutput,
    TelMEVideoStudent,
)
from .processing_telme import TelMEProcessor


__all__ = [
    "TelMEAttentionShiftingFusion",
    "TelMEAudioStudent",
    "TelMEAudioStudentConfig",
    "TelMEConfig",
    "TelMEForEmotionRecognition",
    "TelMEOutput",
    "TelMEPreTrainedModel",
    "TelMEProcessor",
    "TelMETextTeacher",
    "TelMETextTeacherConfig",
    "TelMEUnimodalOutput",
    "TelMEVideoStudent",
    "TelMEVideoStudentConfig",
]
