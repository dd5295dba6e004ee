"""CMATH (Zhu et al., arXiv 2411.10060): cross-modality augmented transformer with hierarchical variational
distillation for multimodal ERC."""

from .configuration_cmath import CMATHConfig
from .modeling_cmath import CMATHForEmotionRecognition, CMATHOutput, CMATHPreTrainedModel


__all__ = ["CMATHConfig", "CMATHForEmotionRecognition", "CMATHOutput", "CMATHPreTrainedModel"]
