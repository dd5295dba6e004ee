"""The ERC models as `transformers` models, registered with the Auto classes.

Importing this package registers each model's config and model class with `AutoConfig`/`AutoModel`
(so `AutoModel.from_pretrained` works on a checkpoint while `hf_erc` is imported) and marks them for
`save_pretrained` to copy their code into the checkpoint and write `auto_map` (so
`AutoModel.from_pretrained(path, trust_remote_code=True)` works where `hf_erc` is not installed).
"""

from transformers import AutoConfig, AutoModel, AutoProcessor

from .cmath import CMATHConfig, CMATHForEmotionRecognition, CMATHOutput, CMATHPreTrainedModel
from .magtkd import (
    MAGTKDAudioModel,
    MAGTKDAudioModelConfig,
    MAGTKDConfig,
    MAGTKDForEmotionRecognition,
    MAGTKDOutput,
    MAGTKDPreTrainedModel,
    MAGTKDProcessor,
    MAGTKDTextModel,
    MAGTKDTextModelConfig,
    MAGTKDUnimodalOutput,
    MAGTKDVideoModel,
    MAGTKDVideoModelConfig,
)
from .sdt import SDTConfig, SDTForEmotionRecognition, SDTOutput, SDTPreTrainedModel
from .telme import (
    TelMEAudioStudent,
    TelMEAudioStudentConfig,
    TelMEConfig,
    TelMEForEmotionRecognition,
    TelMEOutput,
    TelMEPreTrainedModel,
    TelMEProcessor,
    TelMETextTeacher,
    TelMETextTeacherConfig,
    TelMEUnimodalOutput,
    TelMEVideoStudent,
    TelMEVideoStudentConfig,
)


def _register(config_class, model_class):
    # exist_ok: importing twice (reload, or the same classes reached through another path) is harmless.
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModel")


_register(SDTConfig, SDTForEmotionRecognition)
# TelME: the whole model and each stage checkpoint (teacher, students) load through AutoModel as their own class.
_register(TelMEConfig, TelMEForEmotionRecognition)
_register(TelMETextTeacherConfig, TelMETextTeacher)
_register(TelMEAudioStudentConfig, TelMEAudioStudent)
_register(TelMEVideoStudentConfig, TelMEVideoStudent)
AutoProcessor.register(TelMEConfig, TelMEProcessor, exist_ok=True)
TelMEProcessor.register_for_auto_class("AutoProcessor")
# MAGTKD: the fusion (the final model) and each unimodal stage checkpoint load through AutoModel as their own class.
_register(MAGTKDConfig, MAGTKDForEmotionRecognition)
_register(MAGTKDTextModelConfig, MAGTKDTextModel)
_register(MAGTKDAudioModelConfig, MAGTKDAudioModel)
_register(MAGTKDVideoModelConfig, MAGTKDVideoModel)
AutoProcessor.register(MAGTKDConfig, MAGTKDProcessor, exist_ok=True)
MAGTKDProcessor.register_for_auto_class("AutoProcessor")
_register(CMATHConfig, CMATHForEmotionRecognition)


__all__ = [
    "CMATHConfig",
    "CMATHForEmotionRecognition",
    "CMATHOutput",
    "CMATHPreTrainedModel",
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
    "SDTConfig",
    "SDTForEmotionRecognition",
    "SDTOutput",
    "SDTPreTrainedModel",
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
