"""What each model's paper says, for model cards: title, description, citation and reported results.

Each model family of the registry (:mod:`hf_erc.models.registry`) holds its paper's :class:`PaperInfo`; the model
cards (:mod:`hf_erc.hub`) read it from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaperInfo:
    """What a model card says about the method a checkpoint implements."""

    title: str
    description: str
    citation: str
    reported: dict[str, str] = field(default_factory=dict)


SDT_PAPER = PaperInfo(
    title="SDT: Transformer-Based Self-Distillation for Multimodal ERC",
    description=(
        "SDT (Ma et al., IEEE Transactions on Multimedia 2024) is a dialogue-level transformer over "
        "per-utterance text, audio and visual features. Intra- and inter-modal transformers model the "
        "conversation within and across modalities, a hierarchical gated fusion combines them, and "
        "self-distillation transfers the fused prediction's soft labels to each modality's classifier "
        "during training."
    ),
    citation=(
        "@article{ma2024sdt,\n"
        "  title   = {A Transformer-Based Model With Self-Distillation for Multimodal Emotion Recognition in Conversations},\n"
        "  author  = {Ma, Hui and Wang, Jian and Lin, Hongfei and Zhang, Bo and Zhang, Yijia and Xu, Bo},\n"
        "  journal = {IEEE Transactions on Multimedia},\n"
        "  volume  = {26},\n"
        "  pages   = {776--788},\n"
        "  year    = {2024}\n"
        "}"
    ),
    reported={
        "meld": "weighted F1 66.60 with RoBERTa-large text, openSMILE audio and DenseNet visual features",
        "iemocap": "accuracy 73.95 with RoBERTa-large text, openSMILE audio and DenseNet visual features",
    },
)

CMATH_PAPER = PaperInfo(
    title="CMATH: Cross-Modality Augmented Transformer with Hierarchical Variational Distillation",
    description=(
        "CMATH (Zhu et al., arXiv 2411.10060, 2024) reconstructs a compressed representation of each modality, "
        "fuses them asymmetrically with a cross-modality augmented transformer around one central modality, "
        "fuses the fine-grained representations into a coarse-grained one with a variational network, and "
        "distils between the granularities. The authors released no code; this is hf_erc's implementation "
        "from the paper (see the modeling file's docstring for every interpretation)."
    ),
    citation=(
        "@article{zhu2024cmath,\n"
        "  title   = {{CMATH}: Cross-Modality Augmented Transformer with Hierarchical Variational Distillation for Multimodal Emotion Recognition in Conversation},\n"
        "  author  = {Zhu, Xiaofei and Cheng, Jiawei and Yang, Zhou and Chen, Zhuo and Wang, Qingyang and Yao, Jianfeng},\n"
        "  journal = {arXiv preprint arXiv:2411.10060},\n"
        "  year    = {2024}\n"
        "}"
    ),
    reported={},
)

TELME_PAPER = PaperInfo(
    title="TelME: Teacher-leading Multimodal Fusion Network for ERC",
    description=(
        "TelME (Yun et al., NAACL 2024) fine-tunes a text teacher on the dialogue context with a prompt asking "
        "how the current speaker feels, distils it into audio (data2vec-audio) and video (TimeSformer) students "
        "with response- and feature-based knowledge distillation, and fuses the three with attention-based "
        "modality shifting, in which the students' embeddings shift the teacher's."
    ),
    citation=(
        "@inproceedings{yun2024telme,\n"
        "  title     = {{TelME}: Teacher-leading Multimodal Fusion Network for Emotion Recognition in Conversation},\n"
        "  author    = {Yun, Taeyang and Lim, Hyunkuk and Lee, Jeonghwan and Song, Min},\n"
        "  booktitle = {Proceedings of the 2024 Conference of the North American Chapter of the Association for Computational Linguistics},\n"
        "  year      = {2024}\n"
        "}"
    ),
    reported={"meld": "weighted F1 67.37 (RoBERTa-large, data2vec-audio, TimeSformer)", "iemocap": "weighted F1 70.48"},
)

MAGTKD_PAPER = PaperInfo(
    title="MAGTKD: Multi-modal Anchor Gated Transformer with Knowledge Distillation",
    description=(
        "MAGTKD (Li et al., IJCAI 2025) prompt-learns a text model, distils it into audio and video models, and "
        "fuses the three utterance representations of a dialogue with a multi-modal anchor gated transformer in "
        "which text is the anchor that the enhanced audio and video representations feed through gates."
    ),
    citation=(
        "@inproceedings{li2025magtkd,\n"
        "  title     = {Multi-modal Anchor Gated Transformer with Knowledge Distillation for Emotion Recognition in Conversation},\n"
        "  author    = {Li, Jie and Ding, Shifei and Guo, Lili and Li, Xuan},\n"
        "  booktitle = {Proceedings of the Thirty-Fourth International Joint Conference on Artificial Intelligence},\n"
        "  pages     = {8141--8149},\n"
        "  year      = {2025}\n"
        "}"
    ),
    reported={},
)
