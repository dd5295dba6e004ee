"""SDT (Ma et al., IEEE TMM 2024): Transformer-based multimodal ERC with self-distillation."""

from .configuration_sdt import SDTConfig
from .modeling_sdt import SDTForEmotionRecognition, SDTOutput, SDTPreTrainedModel


__all__ = ["SDTConfig", "SDTForEmotionRecognition", "SDTOutput", "SDTPreTrainedModel"]
