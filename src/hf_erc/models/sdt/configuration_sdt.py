"""SDT model configuration.

This file ships inside SDT checkpoints (loaded with ``trust_remote_code=True``), so it imports only
``transformers``.

Training hyperparameters of the reference runs (``exec_meld.sh``, ``exec_iemocap.sh`` and the
defaults of ``train.py`` in https://github.com/butterfliesss/SDT). They are not model settings and
belong to the training config; they are listed here so one place holds the whole paper setting:

| dataset | optimizer | learning rate | L2 (weight decay) | batch (dialogues) | epochs |
|---------|-----------|---------------|-------------------|-------------------|--------|
| MELD    | Adam      | 5e-6          | 1e-5              | 8                 | 50     |
| IEMOCAP | Adam      | 1e-4          | 1e-5              | 16                | 150    |

The reference keeps the best epoch by *test* score (``train.py``); select on validation instead.
The distillation temperature (MELD 8, IEMOCAP 1) and the IEMOCAP class weights are model settings here
(``SDTConfig.for_dataset``).
"""

from transformers import PretrainedConfig


SDT_MODALITIES = ("text", "audio", "video")

# Label names in the canonical order of hf_erc.labels (the order of the feature pickles). This file
# cannot import hf_erc, so the names are repeated here; a test checks that both agree.
_DATASET_LABELS = {
    "meld": ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
    "iemocap": ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
}

# Class weights of the reference IEMOCAP run: the inverse of each class's share of the training
# utterances, in the label order above (hap, sad, neu, ang, exc, fru).
_IEMOCAP_CLASS_FREQUENCIES = (0.086747, 0.144406, 0.227883, 0.160585, 0.127711, 0.252668)

_DATASET_PRESETS = {
    "meld": {
        "text_dim": 1024,
        "audio_dim": 300,
        "video_dim": 342,
        "num_speakers": 9,
        "distillation_temperature": 8.0,
        "trainable_unimodal_gates": False,
        "class_weights": None,
    },
    "iemocap": {
        "text_dim": 1024,
        "audio_dim": 1582,
        "video_dim": 342,
        "num_speakers": 2,
        # The reference one-hot encodes M as [1, 0] and F as [0, 1].
        "speaker_vocab": {"M": 0, "F": 1},
        "distillation_temperature": 1.0,
        "trainable_unimodal_gates": True,
        "class_weights": [1.0 / frequency for frequency in _IEMOCAP_CLASS_FREQUENCIES],
    },
}


class SDTConfig(PretrainedConfig):
    r"""
    Configuration of [`SDTForEmotionRecognition`], the Transformer-based model with self-distillation of
    Ma et al., "A Transformer-Based Model With Self-Distillation for Multimodal Emotion Recognition in
    Conversations" (IEEE TMM 2024). The defaults are the architecture of the reference code
    (`butterfliesss/SDT`, `train.py` defaults); use [`SDTConfig.for_dataset`] for the paper's MELD and
    IEMOCAP settings, which also set the labels.

    Args:
        modalities (`list[str]`, *optional*, defaults to `["text", "audio", "video"]`):
            The modalities the model reads, any non-empty subset of `"text"`, `"audio"`, `"video"`. They are
            stored in that canonical order. With one modality the model is a single intra-modal transformer
            with its classifier (the fusion over one modality is the identity).
        text_dim (`int`, *optional*, defaults to 1024):
            Size of an utterance's text feature (RoBERTa-large in the reference features).
        audio_dim (`int`, *optional*, defaults to 1582):
            Size of an utterance's audio feature (openSMILE IS10: 1582 on IEMOCAP, 300 on MELD).
        video_dim (`int`, *optional*, defaults to 342):
            Size of an utterance's visual feature (DenseNet facial features).
        hidden_size (`int`, *optional*, defaults to 1024):
            Width of the projected features, of every transformer and of the fusion.
        num_attention_heads (`int`, *optional*, defaults to 8):
            Attention heads of every intra- and inter-modal transformer.
        num_hidden_layers (`int`, *optional*, defaults to 1):
            Layers of each intra-/inter-modal transformer (the reference uses 1 for all nine).
        intermediate_size (`int`, *optional*):
            Width of the feed-forward block of a transformer layer; defaults to `hidden_size`, as in the
            reference.
        dropout (`float`, *optional*, defaults to 0.5):
            The single dropout rate of the reference, used on the embedded inputs, attention probabilities,
            residual branches, feed-forward block and the per-modality classifiers.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the layer norms.
        num_speakers (`int`, *optional*, defaults to 2):
            Number of speaker ids; `speaker_ids` take values in `[0, num_speakers)`. One more embedding row
            (index `num_speakers`, kept at zero) is used for padding.
        max_position_embeddings (`int`, *optional*, defaults to 512):
            Longest dialogue (in utterances) the sinusoidal position encoding covers. MELD dialogues have at
            most 33 turns and IEMOCAP ones about 110.
        trainable_unimodal_gates (`bool`, *optional*, defaults to `True`):
            Whether each unimodal gate `sigmoid(W h) * h` learns `W`. The reference fixes `W` to the identity
            and freezes it on MELD (the gate becomes `sigmoid(h) * h`, with no parameters here).
        distillation_temperature (`float`, *optional*, defaults to 1.0):
            Temperature of the self-distillation softmaxes (reference: 1 on IEMOCAP, 8 on MELD).
        fused_loss_weight (`float`, *optional*, defaults to 1.0):
            γ1, the weight of the fused prediction's negative log-likelihood.
        modality_loss_weight (`float`, *optional*, defaults to 1.0):
            γ2, the weight of the sum of the per-modality negative log-likelihoods.
        self_distillation_loss_weight (`float`, *optional*, defaults to 1.0):
            γ3, the weight of the sum over modalities of KL(fused ‖ modality) at `distillation_temperature`.
        class_weights (`list[float]`, *optional*):
            Per-class weights of the negative log-likelihood terms (one per label), or `None` for none. The
            reference weighs IEMOCAP classes by their inverse frequency.
        dataset_name (`str`, *optional*):
            The dataset whose labels and preset the model uses (`"meld"` or `"iemocap"`); set by
            [`SDTConfig.for_dataset`], read by model cards and inference.
        speaker_vocab (`dict[str, int]`, *optional*):
            How speaker names map to `speaker_ids` (IEMOCAP: `{"M": 0, "F": 1}`). `None` numbers the speakers of
            each dialogue by order of first appearance, capped at `num_speakers - 1`, as the MELD features do.
            Stored so that inference builds the same ids as training.
        causal (`bool`, *optional*, defaults to `False`):
            Online (causal) ERC: every attention over the dialogue's turns also masks future turns, so each turn is
            labelled from the turns up to it only (later turns never change earlier outputs). `False` is the
            paper's model, which reads the whole dialogue.

    Example:

    ```python
    >>> from hf_erc.models import SDTConfig, SDTForEmotionRecognition

    >>> config = SDTConfig.for_dataset("meld")
    >>> model = SDTForEmotionRecognition(config)
    ```
    """

    model_type = "sdt-erc"
    # What `Trainer.predict`/`evaluate` leave out of the predictions: they keep `logits` and `modality_logits`.
    keys_to_ignore_at_inference = ["loss_components", "fused_hidden_states", "modality_hidden_states", "gate_weights"]

    def __init__(
        self,
        modalities=SDT_MODALITIES,
        text_dim=1024,
        audio_dim=1582,
        video_dim=342,
        hidden_size=1024,
        num_attention_heads=8,
        num_hidden_layers=1,
        intermediate_size=None,
        dropout=0.5,
        layer_norm_eps=1e-6,
        num_speakers=2,
        max_position_embeddings=512,
        trainable_unimodal_gates=True,
        distillation_temperature=1.0,
        fused_loss_weight=1.0,
        modality_loss_weight=1.0,
        self_distillation_loss_weight=1.0,
        class_weights=None,
        dataset_name=None,
        speaker_vocab=None,
        causal=False,
        **kwargs,
    ):
        if isinstance(modalities, str):
            modalities = [modalities]
        unknown = [modality for modality in modalities if modality not in SDT_MODALITIES]
        if unknown or not modalities:
            raise ValueError(
                f"SDTConfig.modalities must be a non-empty subset of {list(SDT_MODALITIES)}, got {list(modalities)}."
            )
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"SDTConfig.hidden_size ({hidden_size}) must be a multiple of "
                f"num_attention_heads ({num_attention_heads})."
            )
        if distillation_temperature <= 0:
            raise ValueError(f"SDTConfig.distillation_temperature must be positive, got {distillation_temperature}.")
        self.modalities = [modality for modality in SDT_MODALITIES if modality in modalities]
        self.text_dim = text_dim
        self.audio_dim = audio_dim
        self.video_dim = video_dim
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = hidden_size if intermediate_size is None else intermediate_size
        self.dropout = dropout
        self.layer_norm_eps = layer_norm_eps
        self.num_speakers = num_speakers
        self.max_position_embeddings = max_position_embeddings
        self.trainable_unimodal_gates = trainable_unimodal_gates
        self.distillation_temperature = float(distillation_temperature)
        self.fused_loss_weight = fused_loss_weight
        self.modality_loss_weight = modality_loss_weight
        self.self_distillation_loss_weight = self_distillation_loss_weight
        self.class_weights = None if class_weights is None else [float(weight) for weight in class_weights]
        self.dataset_name = dataset_name
        self.speaker_vocab = None if speaker_vocab is None else {str(name): int(index) for name, index in speaker_vocab.items()}
        self.causal = bool(causal)
        super().__init__(**kwargs)
        if self.class_weights is not None and len(self.class_weights) != self.num_labels:
            raise ValueError(
                f"SDTConfig.class_weights has {len(self.class_weights)} entries but the config has "
                f"{self.num_labels} labels: give one weight per label."
            )

    def feature_dim(self, modality):
        """Size of the input feature of `modality` ("text", "audio" or "video")."""
        return getattr(self, f"{modality}_dim")

    @classmethod
    def for_dataset(cls, dataset, modalities=None, **overrides):
        r"""
        The paper's configuration for `dataset` (`"meld"` or `"iemocap"`): feature sizes of the reference
        feature files, speakers, distillation temperature, unimodal gates, class weights and the dataset's
        labels in the canonical order. `modalities` restricts the inputs (e.g. `["text"]`); `overrides`
        replace any field.
        """
        key = dataset.lower()
        if key not in _DATASET_PRESETS:
            raise ValueError(
                f"Unknown dataset {dataset!r}: SDTConfig.for_dataset expects one of {sorted(_DATASET_PRESETS)}."
            )
        labels = _DATASET_LABELS[key]
        settings = dict(_DATASET_PRESETS[key], dataset_name=key)
        settings["id2label"] = dict(enumerate(labels))
        settings["label2id"] = {label: index for index, label in enumerate(labels)}
        if modalities is not None:
            settings["modalities"] = modalities
        settings.update(overrides)
        return cls(**settings)


__all__ = ["SDTConfig"]
