"""The ERC models as `transformers` models, registered with the Auto classes.

Importing this package registers the classes of every model family of the registry (`hf_erc.models.registry`):
each config and model class with `AutoConfig`/`AutoModel` and each processor with `AutoProcessor` (so
`AutoModel.from_pretrained` works on a checkpoint while `hf_erc` is imported), marked for `save_pretrained` to copy
their code into the checkpoint and write `auto_map` (so `AutoModel.from_pretrained(path, trust_remote_code=True)`
works where `hf_erc` is not installed).
"""

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
from .registry import MODEL_FAMILIES, register_auto_classes
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


# Every class of every family (the registry's table), with AutoConfig/AutoModel/AutoProcessor and for save_pretrained.
for _family in MODEL_FAMILIES.values():
    register_auto_classes(_family)


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
