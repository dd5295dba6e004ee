"""CMATH model configuration.

This file ships inside CMATH checkpoints (loaded with ``trust_remote_code=True``), so it imports only
``transformers``.

Source: Zhu et al., "CMATH: Cross-Modality Augmented Transformer with Hierarchical Variational Distillation
for Multimodal Emotion Recognition in Conversation", arXiv 2411.10060 (Nov 2024). The authors released no
code (``cjw-MER/CMATH`` holds a one-line README).

What is and is not from the paper. Only the paper's abstract and a third-party summary of its method could
be read while writing this (the stored copies of the paper's HTML stop after the abstract). From them: the
four parts (modality reconstruction with a 1-D convolutional U-Net and a Frobenius-norm reconstruction loss;
the CMA-Transformer with one central and two auxiliary modalities; a variational fusion network from fine- to
coarse-grained representations; hierarchical distillation between granularities) and the datasets (IEMOCAP,
MELD). The paper's layer sizes, heads, dropout, loss weights and training hyperparameters could **not** be
checked: every numeric default below is this implementation's choice, named as such in its docstring, and
should be replaced by the paper's values once they are read from the PDF. The input feature sizes and
speaker counts are those of the feature files shared with SDT (text RoBERTa 1024; audio openSMILE 1582 on
IEMOCAP, 300 on MELD; visual DenseNet 342).
"""

from transformers import PretrainedConfig


CMATH_MODALITIES = ("text", "audio", "video")

# Label names in the canonical order of hf_erc.labels (the order of the feature pickles). This file cannot
# import hf_erc, so the names are repeated here; a test checks that both agree.
_DATASET_LABELS = {
    "meld": ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
    "iemocap": ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
}

# Per-dataset settings known for certain: the feature files' sizes and the number of speakers.
_DATASET_PRESETS = {
    "meld": {"text_dim": 1024, "audio_dim": 300, "video_dim": 342, "num_speakers": 9},
    "iemocap": {"text_dim": 1024, "audio_dim": 1582, "video_dim": 342, "num_speakers": 2},
}


class CMATHConfig(PretrainedConfig):
    r"""
    Configuration of [`CMATHForEmotionRecognition`] (Zhu et al., arXiv 2411.10060): modality reconstruction,
    the cross-modality augmented transformer (CMA-Transformer) around a central modality, a variational fusion
    network and hierarchical distillation. Use [`CMATHConfig.for_dataset`] for MELD or IEMOCAP, which also sets
    the feature sizes, speakers and labels. See the module docstring of `configuration_cmath` for which defaults
    come from the paper.

    Args:
        modalities (`list[str]`, *optional*, defaults to `["text", "audio", "video"]`):
            The modalities the model reads, any non-empty subset of `"text"`, `"audio"`, `"video"`, stored in that
            canonical order. With the central modality alone the CMA-Transformer reduces to a self-attention
            transformer and the fusion to the identity pooling (see the modeling docstring).
        central_modality (`str`, *optional*, defaults to `"text"`):
            The modality the CMA-Transformer augments with the others (the auxiliary modalities). Must be one of
            `modalities`. Text is the central modality of the paper's main setting (the strongest modality on
            IEMOCAP and MELD).
        text_dim (`int`, *optional*, defaults to 1024):
            Size of an utterance's text feature (RoBERTa-large).
        audio_dim (`int`, *optional*, defaults to 1582):
            Size of an utterance's audio feature (openSMILE IS10: 1582 on IEMOCAP, 300 on MELD).
        video_dim (`int`, *optional*, defaults to 342):
            Size of an utterance's visual feature (DenseNet facial features).
        hidden_size (`int`, *optional*, defaults to 256):
            Size of the compressed per-modality representations (the U-Net bottleneck), of the CMA-Transformer and
            of the coarse-grained latent. Chosen here (not checked against the paper) below every input size so
            that the reconstruction bottleneck compresses each modality.
        reconstruction_num_layers (`int`, *optional*, defaults to 2):
            Down-sampling (and as many up-sampling) convolutions of each modality's reconstruction U-Net. Level `i`
            has `round(dim * (hidden_size / dim) ** (i / reconstruction_num_layers))` channels. Implementation
            choice.
        reconstruction_kernel_size (`int`, *optional*, defaults to 3):
            Odd kernel size of the U-Net convolutions, which run along the turns of a dialogue with the feature
            vector as channels. Implementation choice.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Heads of every attention of the CMA-Transformer. Implementation choice.
        num_hidden_layers (`int`, *optional*, defaults to 2):
            Layers of the CMA-Transformer. Implementation choice.
        intermediate_size (`int`, *optional*):
            Width of the feed-forward blocks; defaults to `4 * hidden_size` (the Transformer convention).
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the compressed representations, attention probabilities, residual branches, feed-forward
            blocks and before the per-modality classifiers. Implementation choice.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the layer norms.
        num_speakers (`int`, *optional*, defaults to 2):
            Number of speaker ids; `speaker_ids` take values in `[0, num_speakers)`. One more embedding row (index
            `num_speakers`, kept at zero) is used for padding.
        max_position_embeddings (`int`, *optional*, defaults to 512):
            Longest dialogue (in utterances) the sinusoidal position encoding covers.
        log_variance_clamp (`float`, *optional*, defaults to 10.0):
            The variational fusion's log-variances are clamped to `[-log_variance_clamp, log_variance_clamp]`, so
            that `exp` cannot overflow.
        distillation_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the softmaxes of the prediction-level distillation.
        classification_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the cross-entropy of the final (coarse-grained) prediction.
        modality_classification_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the sum over modalities of the cross-entropy of the fine-grained predictions.
        reconstruction_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the sum over modalities of the reconstruction loss.
        kl_loss_weight (`float`, *optional*, defaults to 1e-3):
            Weight of the KL divergence of the variational fusion's posterior from the standard normal prior (the
            KL is summed over latent dimensions, so a small weight keeps it from dominating; implementation choice).
        logit_distillation_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the prediction-level distillation (sum over modalities of KL(coarse ‖ fine)).
        feature_distillation_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the representation-level distillation (sum over modalities of the cosine distance between
            the fine-grained representation and the coarse-grained mean).
        class_weights (`list[float]`, *optional*):
            Per-class weights of the cross-entropy terms (one per label), or `None`.
        causal (`bool`, *optional*, defaults to `False`):
            Online (causal) ERC: every attention of the CMA-Transformer also masks future turns and the
            reconstruction U-Net's convolutions over turns are causal (left-padded), so each turn is labelled from
            the turns up to it only (later turns never change earlier outputs). `False` reads the whole dialogue.

    Example:

    ```python
    >>> from hf_erc.models import CMATHConfig, CMATHForEmotionRecognition

    >>> config = CMATHConfig.for_dataset("iemocap")
    >>> model = CMATHForEmotionRecognition(config)
    ```
    """

    model_type = "cmath-erc"
    # What `Trainer.predict`/`evaluate` leave out of the predictions: they keep `logits` and `modality_logits`.
    keys_to_ignore_at_inference = [
        "loss_components",
        "compressed_hidden_states",
        "reconstructed_features",
        "modality_hidden_states",
        "fused_hidden_states",
        "fused_mean",
        "fused_log_variance",
        "fusion_weights",
    ]

    def __init__(
        self,
        modalities=CMATH_MODALITIES,
        central_modality="text",
        text_dim=1024,
        audio_dim=1582,
        video_dim=342,
        hidden_size=256,
        reconstruction_num_layers=2,
        reconstruction_kernel_size=3,
        num_attention_heads=8,
        num_hidden_layers=2,
        intermediate_size=None,
        dropout=0.1,
        layer_norm_eps=1e-5,
        num_speakers=2,
        max_position_embeddings=512,
        log_variance_clamp=10.0,
        distillation_temperature=1.0,
        classification_loss_weight=1.0,
        modality_classification_loss_weight=1.0,
        reconstruction_loss_weight=1.0,
        kl_loss_weight=1e-3,
        logit_distillation_loss_weight=1.0,
        feature_distillation_loss_weight=1.0,
        class_weights=None,
        causal=False,
        **kwargs,
    ):
        if isinstance(modalities, str):
            modalities = [modalities]
        unknown = [modality for modality in modalities if modality not in CMATH_MODALITIES]
        if unknown or not modalities:
            raise ValueError(
                f"CMATHConfig.modalities must be a non-empty subset of {list(CMATH_MODALITIES)}, "
                f"got {list(modalities)}."
            )
        if central_modality not in modalities:
            raise ValueError(
                f"CMATHConfig.central_modality {central_modality!r} is not one of the modalities {list(modalities)}: "
                "pick one of them (CMATHConfig.for_dataset picks text when present, else the first modality)."
            )
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"CMATHConfig.hidden_size ({hidden_size}) must be a multiple of "
                f"num_attention_heads ({num_attention_heads})."
            )
        if reconstruction_kernel_size < 1 or reconstruction_kernel_size % 2 == 0:
            raise ValueError(
                f"CMATHConfig.reconstruction_kernel_size must be a positive odd number (so every turn keeps its "
                f"position), got {reconstruction_kernel_size}."
            )
        if reconstruction_num_layers < 1:
            raise ValueError(
                f"CMATHConfig.reconstruction_num_layers must be at least 1, got {reconstruction_num_layers}."
            )
        if distillation_temperature <= 0:
            raise ValueError(
                f"CMATHConfig.distillation_temperature must be positive, got {distillation_temperature}."
            )
        self.modalities = [modality for modality in CMATH_MODALITIES if modality in modalities]
        self.central_modality = central_modality
        self.text_dim = text_dim
        self.audio_dim = audio_dim
        self.video_dim = video_dim
        self.hidden_size = hidden_size
        self.reconstruction_num_layers = reconstruction_num_layers
        self.reconstruction_kernel_size = reconstruction_kernel_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = 4 * hidden_size if intermediate_size is None else intermediate_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.num_speakers = num_speakers
        self.max_position_embeddings = max_position_embeddings
        self.log_variance_clamp = float(log_variance_clamp)
        self.distillation_temperature = float(distillation_temperature)
        self.classification_loss_weight = classification_loss_weight
        self.modality_classification_loss_weight = modality_classification_loss_weight
        self.reconstruction_loss_weight = reconstruction_loss_weight
        self.kl_loss_weight = kl_loss_weight
        self.logit_distillation_loss_weight = logit_distillation_loss_weight
        self.feature_distillation_loss_weight = feature_distillation_loss_weight
        self.class_weights = None if class_weights is None else [float(weight) for weight in class_weights]
        self.causal = bool(causal)
        super().__init__(**kwargs)
        if self.class_weights is not None and len(self.class_weights) != self.num_labels:
            raise ValueError(
                f"CMATHConfig.class_weights has {len(self.class_weights)} entries but the config has "
                f"{self.num_labels} labels: give one weight per label."
            )

    @property
    def auxiliary_modalities(self):
        """The modalities other than the central one, in canonical order (empty for a single modality)."""
        return [modality for modality in self.modalities if modality != self.central_modality]

    def feature_dim(self, modality):
        """Size of the input feature of `modality` ("text", "audio" or "video")."""
        return getattr(self, f"{modality}_dim")

    def loss_weights(self):
        """`{loss component name: weight}`: `loss` is the sum of each component times its weight."""
        return {
            "classification": self.classification_loss_weight,
            "modality_classification": self.modality_classification_loss_weight,
            "reconstruction": self.reconstruction_loss_weight,
            "kl": self.kl_loss_weight,
            "logit_distillation": self.logit_distillation_loss_weight,
            "feature_distillation": self.feature_distillation_loss_weight,
        }

    @classmethod
    def for_dataset(cls, dataset, modalities=None, **overrides):
        r"""
        The configuration for `dataset` (`"meld"` or `"iemocap"`): feature sizes of the shared feature files,
        number of speakers and the dataset's labels in the canonical order. `modalities` restricts the inputs
        (e.g. `["text"]`); the central modality is text when it is among them, else the first modality, unless
        `central_modality` is given. `overrides` replace any field.
        """
        key = dataset.lower()
        if key not in _DATASET_PRESETS:
            raise ValueError(
                f"Unknown dataset {dataset!r}: CMATHConfig.for_dataset expects one of {sorted(_DATASET_PRESETS)}."
            )
        labels = _DATASET_LABELS[key]
        settings = dict(_DATASET_PRESETS[key])
        settings["id2label"] = dict(enumerate(labels))
        settings["label2id"] = {label: index for index, label in enumerate(labels)}
        if modalities is not None:
            modalities = [modalities] if isinstance(modalities, str) else list(modalities)
            settings["modalities"] = modalities
            ordered = [modality for modality in CMATH_MODALITIES if modality in modalities]
            if ordered:
                settings["central_modality"] = "text" if "text" in ordered else ordered[0]
        settings.update(overrides)
        return cls(**settings)


__all__ = ["CMATHConfig"]
