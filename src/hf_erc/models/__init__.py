"""The ERC models as `transformers` models, registered with the Auto classes.

Importing this package registers each model's config and model class with `AutoConfig`/`AutoModel`
(so `AutoModel.from_pretrained` works on a checkpoint while `hf_erc` is imported) and marks them for
`save_pretrained` to copy their code into the checkpoint and write `auto_map` (so
`AutoModel.from_pretrained(path, trust_remote_code=True)` works where `hf_erc` is not installed).
"""

from transformers import AutoConfig, AutoModel

from .cmath import CMATHConfig, CMATHForEmotionRecognition, CMATHOutput, CMATHPreTrainedModel
from .sdt import SDTConfig, SDTForEmotionRecognition, SDTOutput, SDTPreTrainedModel


def _register(config_class, model_class):
    # exist_ok: importing twice (reload, or the same classes reached through another path) is harmless.
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModel")


_register(SDTConfig, SDTForEmotionRecognition)
_register(CMATHConfig, CMATHForEmotionRecognition)


__all__ = [
    "CMATHConfig",
    "CMATHForEmotionRecognition",
    "CMATHOutput",
    "CMATHPreTrainedModel",
    "SDTConfig",
    "SDTForEmotionRecognition",
    "SDTOutput",
    "SDTPreTrainedModel",
]
