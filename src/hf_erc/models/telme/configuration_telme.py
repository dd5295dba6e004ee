"""TelME model configuration.

This file ships inside TelME checkpoints (loaded with ``trust_remote_code=True``), so it imports only
``transformers``.

TelME (Yun et al., "TelME: Teacher-leading Multimodal Fusion Network for Emotion Recognition in Conversation",
NAACL 2024, arXiv 2401.12987; reference code https://github.com/yuntaeyang/TelME, folders ``MELD/`` and
``IEMOCAP/``) is trained in three stages, each writing a checkpoint the next one reads:

1. ``teacher``: the RoBERTa-large text teacher (:class:`TelMETextTeacherConfig`), cross-entropy only;
2. ``student``: the data2vec-audio and TimeSformer students (:class:`TelMEAudioStudentConfig`,
   :class:`TelMEVideoStudentConfig`), each distilled from the frozen teacher;
3. ``fusion``: the attention-based modality shifting fusion (ASF) over the frozen teacher's and students'
   utterance embeddings (:class:`TelMEConfig`, the whole model), cross-entropy only.

Training hyperparameters of the reference runs (``teacher.py``, ``student.py``, ``fusion.py``,
``meld_kd.py``/``iemocap_kd.py``). They are not model settings and belong to the training configs; they are
listed here so that one place holds the whole paper setting. Every stage uses AdamW (PyTorch defaults
otherwise), batch 4 utterances, gradient clipping at norm 10, seed 42, and a linear schedule with warm-up
whose step counts are given in *utterances* (``num_warmup_steps = len(train_set)``, ``num_training_steps =
len(train_set) * epochs``) although the scheduler steps once per batch: the learning rate rises for the
first 4 of the 10 epochs and has only decayed to about 83% of its peak at the end. The best epoch is the one
with the best validation weighted F1.

| stage   | dataset | lr   | epochs | loss                                                         | precision |
|---------|---------|------|--------|--------------------------------------------------------------|-----------|
| teacher | MELD    | 1e-6 | 10     | CE                                                           | fp32      |
| teacher | IEMOCAP | 1e-5 | 10     | CE                                                           | fp32      |
| student | MELD    | 1e-5 | 10     | CE + 1.0 * DIST(T=4) + 1.0 * feature KD(T=1)                 | fp16 AMP  |
| student | IEMOCAP | 1e-5 | 10     | CE + 0.1 * DIST(T=2) + 1.0 * feature KD(T=1)                 | fp16 AMP  |
| fusion  | MELD    | 1e-5 | 10     | CE (teacher and students frozen)                             | fp16 AMP  |
| fusion  | IEMOCAP | 1e-5 | 8      | CE (teacher and students frozen)                             | fp16 AMP  |

DIST is the correlation-based logit loss (inter- plus intra-class Pearson distance of the temperature
softmaxes, each scaled by T²); the feature KD is the KL divergence between the batch similarity structures
of the teacher's and the student's utterance embeddings. The audio student is trained first, then the video
student, each with its own optimizer.
"""

from transformers import AutoConfig, Data2VecAudioConfig, PretrainedConfig, RobertaConfig, TimesformerConfig


# The modalities TelME reads, in the canonical order of `modality_mask`'s columns.
TELME_MODALITIES = ("text", "audio", "video")

# Label names in the canonical order of hf_erc.labels (the order of the published feature files). This file
# cannot import hf_erc, so the names are repeated here; a test checks that both agree. Note that the reference
# code orders the classes alphabetically instead; the conversion script reorders the released classifiers.
_DATASET_LABELS = {
    "meld": ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
    "iemocap": ("happy", "sad", "neutral", "angry", "excited", "frustrated"),
}

# The speaker markers TelME adds to the RoBERTa tokenizer (MELD dialogues have at most 9 speakers).
TELME_NUM_SPEAKER_TOKENS = 9

# roberta-large, with the embedding matrix grown by the speaker tokens (50265 + 9 rows, as the reference's
# `resize_token_embeddings(len(tokenizer))`).
_ROBERTA_LARGE = {
    "vocab_size": 50265 + TELME_NUM_SPEAKER_TOKENS,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

# The reference overrides one setting of the pretrained data2vec-audio config (`Config.mask_time_length = 3` in
# student.py/fusion.py): SpecAugment time masks of 3 frames instead of 10 while the student trains.
TELME_AUDIO_ENCODER_SETTINGS = {"mask_time_length": 3}

# Per-dataset settings of the reference (fusion.py: `hidden_size, beta_shift, dropout_prob, num_head`; utils.py:
# MELD replaces clips longer than 30 s by zero inputs, IEMOCAP does not).
_DATASET_PRESETS = {
    "meld": {"fusion_beta_shift": 0.1, "fusion_num_heads": 3, "max_clip_seconds": 30.0},
    "iemocap": {"fusion_beta_shift": 0.2, "fusion_num_heads": 4, "max_clip_seconds": None},
}

FUSION_ATTENTION_SCOPES = ("utterance", "batch")

# Text encoders whose position ids start at `pad_token_id + 1` (RoBERTa's numbering); the others (BERT, MiniLM,
# ELECTRA, ...) number positions from 0.
_PADDING_OFFSET_POSITION_MODELS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text")


def _sub_config(value, config_class, defaults=None):
    """A sub-config from `None` (defaults), a dict (as read from JSON) or a config instance (kept as is).

    A dict naming another `model_type` than `config_class`'s (e.g. a BERT text encoder) builds that model type's
    configuration, without the defaults.
    """
    if isinstance(value, PretrainedConfig):
        return value
    if isinstance(value, dict) and value.get("model_type") not in (None, config_class.model_type):
        settings = {key: item for key, item in value.items() if key not in ("model_type", "transformers_version")}
        return AutoConfig.for_model(value["model_type"], **settings)
    settings = dict(defaults or {})
    if value is not None:
        if not isinstance(value, dict):
            raise TypeError(f"Expected a dict or a {config_class.__name__}, got {type(value).__name__}.")
        ignored = ("model_type", "transformers_version")
        settings.update({key: item for key, item in value.items() if key not in ignored})
    return config_class(**settings)


class TelMEConfig(PretrainedConfig):
    r"""
    Configuration of [`TelMEForEmotionRecognition`] (and, through its stage subclasses, of the text teacher and
    the two students). A composite configuration, like `transformers`' multimodal models: the three encoders'
    configurations are nested (`text_config`, `audio_config`, `video_config`), and the TelME-specific settings
    are explicit fields. The defaults are the reference's MELD setting; use [`TelMEConfig.for_dataset`] for
    MELD or IEMOCAP.

    Args:
        text_config (`RobertaConfig` or `dict`, *optional*):
            The text teacher's encoder. Defaults to roberta-large with 9 extra embedding rows for the speaker
            tokens `<s1>`..`<s9>` (vocabulary 50274). Another encoder-only text model (e.g. a BERT-family
            `BertConfig`, or a dict with its `model_type`) can stand in for RoBERTa.
        audio_config (`Data2VecAudioConfig` or `dict`, *optional*):
            The audio student's encoder. Defaults to data2vec-audio-base-960h with `mask_time_length=3`.
        video_config (`TimesformerConfig` or `dict`, *optional*):
            The video student's encoder. Defaults to timesformer-base-finetuned-k400 (8 frames of 224x224).
        projection_size (`int`, *optional*, defaults to 768):
            Size of the text teacher's projected utterance embedding (the reference's `W`: 1024 -> 768), the vector
            the students are distilled towards and the fusion shifts.
        fusion_hidden_size (`int`, *optional*, defaults to 768):
            Width of the fusion's output layer norm; it normalises the shifted text embedding, so it must equal
            `projection_size`.
        fusion_num_heads (`int`, *optional*, defaults to 3):
            Heads of the fusion's self-attention over the concatenated audio and video embeddings (MELD 3,
            IEMOCAP 4); must divide `audio_config.hidden_size + video_config.hidden_size`.
        fusion_beta_shift (`float`, *optional*, defaults to 0.1):
            Scale of the norm-bounded shift: the non-verbal displacement is at most `fusion_beta_shift` times the
            norm of the text embedding (MELD 0.1, IEMOCAP 0.2).
        fusion_dropout (`float`, *optional*, defaults to 0.2):
            Dropout of the fusion (after both of its layer norms).
        fusion_attention_scope (`str`, *optional*, defaults to `"utterance"`):
            What the fusion's self-attention attends over. `"utterance"`: each utterance's audio+video vector is a
            sequence of one, so the attention reduces to its value and output projections and every prediction is
            independent of the rest of the batch (the query and key projections are kept, unused, so that released
            weights load and the parameter count is the paper's). `"batch"`: the reference code's behaviour, which
            feeds a `[batch, 1536]` matrix to `nn.MultiheadAttention` as one unbatched sequence, so the utterances
            of a batch attend to each other; use it to reproduce the released checkpoints' numbers (batches of 4
            in dataset order). Both coincide for a batch of one.
        text_num_virtual_tokens (`int`, *optional*, defaults to 0):
            Number of learned prompt vectors prepended to the text teacher's input embeddings (a prompt-tuned
            teacher whose PEFT prompt was folded into the model). 0 is the paper's plain fine-tuned teacher.
        num_speaker_tokens (`int`, *optional*, defaults to 9):
            Number of speaker marker tokens (`<s1>`..`<s9>`) added to the tokenizer.
        text_max_context_turns (`int`, *optional*):
            How many previous turns the text model's prompts keep (`None`: every earlier turn of the dialogue), recorded
            by the text stage (`--max_context_turns`) so that the stages that run the trained text model (the fusion)
            build the prompts it was trained on: embeddings of prompts with another context window are not what its
            classifier reads (on planted-signal data a text model trained without context gave fusion inputs worth 48 %
            where its own prediction scores 83 %).
        text_max_length (`int`, *optional*, defaults to 512):
            Most positions of one teacher input, the appended `<mask>` and any virtual tokens included (the
            reference keeps the last 511 tokens of the context and prompt): the processor keeps
            `text_max_length - text_num_virtual_tokens` tokens.
        audio_sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate the audio student expects (data2vec-audio is trained on 16 kHz speech; the reference
            declares 16 kHz to the feature extractor but loads audio with librosa's default 22.05 kHz).
        audio_max_seconds (`float`, *optional*, defaults to 25.0):
            Longest audio input; longer waveforms keep their *last* `audio_max_seconds` (the reference keeps the
            last 400,000 samples, 25 s at 16 kHz).
        max_clip_seconds (`float`, *optional*, defaults to 30.0):
            Clips longer than this have no usable audio and video (MELD's reference replaces both inputs of such
            clips by zeros; here they are marked missing). `None` keeps every clip (IEMOCAP).
        modalities (`list[str]`, *optional*, defaults to `["text", "audio", "video"]`):
            The modalities the fusion reads: `"text"` (the teacher leads, so it is required) and any of `"audio"`,
            `"video"`, stored in that canonical order. A modality left out is treated as missing for every
            utterance (its student is never run and its half of the fusion input is zeros), so a text+audio TelME
            never reads video. The paper uses all three.
        dataset_name (`str`, *optional*):
            The dataset whose labels and preset the model uses (`"meld"` or `"iemocap"`), set by `for_dataset`.

    The number of video frames and the frame size are the video encoder's (`video_num_frames`,
    `video_frame_size` read `video_config.num_frames` and `video_config.image_size`).

    Example:

    ```python
    >>> from hf_erc.models import TelMEConfig, TelMEForEmotionRecognition

    >>> config = TelMEConfig.for_dataset("meld")
    >>> model = TelMEForEmotionRecognition(config)
    ```
    """

    model_type = "telme-erc"
    sub_configs_defaults = {
        "text_config": RobertaConfig,
        "audio_config": Data2VecAudioConfig,
        "video_config": TimesformerConfig,
    }
    # What `Trainer.predict`/`evaluate` leave out of the predictions: they keep `logits` and `modality_logits`.
    keys_to_ignore_at_inference = ["loss_components", "utterance_embeddings"]

    def __init__(
        self,
        text_config=None,
        audio_config=None,
        video_config=None,
        projection_size=768,
        fusion_hidden_size=768,
        fusion_num_heads=3,
        fusion_beta_shift=0.1,
        fusion_dropout=0.2,
        fusion_attention_scope="utterance",
        text_num_virtual_tokens=0,
        num_speaker_tokens=TELME_NUM_SPEAKER_TOKENS,
        text_max_length=512,
        text_max_context_turns=None,
        audio_sampling_rate=16000,
        audio_max_seconds=25.0,
        max_clip_seconds=30.0,
        modalities=TELME_MODALITIES,
        dataset_name=None,
        **kwargs,
    ):
        self.text_config = _sub_config(text_config, RobertaConfig, _ROBERTA_LARGE)
        self.audio_config = _sub_config(audio_config, Data2VecAudioConfig, TELME_AUDIO_ENCODER_SETTINGS)
        self.video_config = _sub_config(video_config, TimesformerConfig)
        self.projection_size = projection_size
        self.fusion_hidden_size = fusion_hidden_size
        self.fusion_num_heads = fusion_num_heads
        self.fusion_beta_shift = float(fusion_beta_shift)
        self.fusion_dropout = fusion_dropout
        self.fusion_attention_scope = fusion_attention_scope
        self.text_num_virtual_tokens = text_num_virtual_tokens
        self.num_speaker_tokens = num_speaker_tokens
        self.text_max_length = text_max_length
        self.text_max_context_turns = None if text_max_context_turns is None else int(text_max_context_turns)
        self.audio_sampling_rate = audio_sampling_rate
        self.audio_max_seconds = float(audio_max_seconds)
        self.max_clip_seconds = None if max_clip_seconds is None else float(max_clip_seconds)
        if isinstance(modalities, str):
            modalities = [modalities]
        unknown = [modality for modality in modalities if modality not in TELME_MODALITIES]
        if unknown or "text" not in modalities:
            raise ValueError(
                f"TelMEConfig.modalities must contain 'text' (TelME is teacher-led: the text teacher is always read) "
                f"and only {list(TELME_MODALITIES)}, got {list(modalities)}."
            )
        self.modalities = [modality for modality in TELME_MODALITIES if modality in modalities]
        self.dataset_name = dataset_name
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            # TelME's headline setting: the MELD emotions, in the canonical order.
            kwargs["id2label"] = dict(enumerate(_DATASET_LABELS["meld"]))
            kwargs["label2id"] = {label: index for index, label in enumerate(_DATASET_LABELS["meld"])}
        super().__init__(**kwargs)
        self._validate()

    def to_dict(self):
        output = super().to_dict()
        # One model, one dtype: `from_pretrained` sets the sub-configs' dtype to the model's, so record it that way.
        if output.get("dtype") is not None:
            for name in self.sub_configs:
                output[name]["dtype"] = output["dtype"]
        return output

    def _validate(self):
        if self.fusion_hidden_size != self.projection_size:
            raise ValueError(
                f"TelMEConfig.fusion_hidden_size ({self.fusion_hidden_size}) must equal projection_size "
                f"({self.projection_size}): the fusion's layer norm normalises the shifted text embedding."
            )
        if self.fusion_attention_scope not in FUSION_ATTENTION_SCOPES:
            raise ValueError(
                f"TelMEConfig.fusion_attention_scope must be one of {FUSION_ATTENTION_SCOPES}, got "
                f"{self.fusion_attention_scope!r}."
            )
        if self.nonverbal_size % self.fusion_num_heads != 0:
            raise ValueError(
                f"TelMEConfig.fusion_num_heads ({self.fusion_num_heads}) must divide the audio+video embedding size "
                f"({self.audio_config.hidden_size} + {self.video_config.hidden_size} = {self.nonverbal_size})."
            )
        if self.text_num_virtual_tokens < 0:
            raise ValueError(f"TelMEConfig.text_num_virtual_tokens must be >= 0, got {self.text_num_virtual_tokens}.")
        if self.text_max_length > self.max_text_positions:
            raise ValueError(
                f"TelMEConfig.text_max_length ({self.text_max_length}) exceeds the {self.max_text_positions} "
                "positions of the text encoder: lower it."
            )
        if self.text_num_virtual_tokens >= self.text_max_length:
            raise ValueError(
                f"TelMEConfig.text_num_virtual_tokens ({self.text_num_virtual_tokens}) leaves no room for text in "
                f"text_max_length ({self.text_max_length}) positions."
            )
        if self.max_clip_seconds is not None and self.max_clip_seconds <= 0:
            raise ValueError(f"TelMEConfig.max_clip_seconds must be positive or None, got {self.max_clip_seconds}.")

    @property
    def nonverbal_size(self):
        """Size of the concatenated audio and video utterance embeddings the fusion attends over."""
        return self.audio_config.hidden_size + self.video_config.hidden_size

    @property
    def text_first_position(self):
        """Position id of a sequence's first token: `pad_token_id + 1` for RoBERTa-family encoders, 0 otherwise."""
        if self.text_config.model_type in _PADDING_OFFSET_POSITION_MODELS:
            return self.text_config.pad_token_id + 1
        return 0

    @property
    def max_text_positions(self):
        """Longest text input (virtual tokens included) the text encoder's position embeddings cover."""
        return self.text_config.max_position_embeddings - self.text_first_position

    @property
    def video_num_frames(self):
        """Frames per video clip the video student reads (the reference: 8)."""
        return self.video_config.num_frames

    @property
    def video_frame_size(self):
        """Height and width of each video frame after cropping (the reference: 224)."""
        return self.video_config.image_size

    @classmethod
    def for_dataset(cls, dataset, modalities=None, **overrides):
        r"""
        The reference configuration for `dataset` (`"meld"` or `"iemocap"`): the dataset's preset
        (`_DATASET_PRESETS`, with the reference's per-dataset settings) and its labels in the canonical order.
        `modalities` restricts the inputs (e.g. `["text", "audio"]`; text is required); `overrides` replace any
        field (sub-configs included; a given `audio_config` still gets the reference's `mask_time_length=3`).
        """
        key = dataset.lower()
        if key not in _DATASET_PRESETS:
            raise ValueError(
                f"Unknown dataset {dataset!r}: TelMEConfig.for_dataset expects one of {sorted(_DATASET_PRESETS)}."
            )
        labels = _DATASET_LABELS[key]
        settings = dict(_DATASET_PRESETS[key], dataset_name=key)
        settings["id2label"] = dict(enumerate(labels))
        settings["label2id"] = {label: index for index, label in enumerate(labels)}
        if modalities is not None:
            settings["modalities"] = modalities
        settings.update(overrides)
        audio_config = settings.get("audio_config")
        if isinstance(audio_config, PretrainedConfig):
            for name, value in TELME_AUDIO_ENCODER_SETTINGS.items():
                setattr(audio_config, name, value)
        elif isinstance(audio_config, dict):
            settings["audio_config"] = {**audio_config, **TELME_AUDIO_ENCODER_SETTINGS}
        return cls(**settings)

    def stage_config(self, config_class):
        """This configuration as `config_class` (another TelME configuration class), sharing the sub-configs.

        The stage models (teacher, students) use their own configuration class so that a stage checkpoint
        records its own `model_type` and `AutoModel` loads the right class; the sub-config objects are shared,
        not copied, so settings such as the attention implementation stay in one place.
        """
        if type(self) is config_class:
            return self
        fields = self.to_dict()
        for name in ("model_type", "transformers_version", "architectures", "auto_map", *self.sub_configs):
            fields.pop(name, None)
        sub_configs = {name: getattr(self, name) for name in self.sub_configs}
        # Building a config resets its sub-configs' attention implementation; keep the shared ones as they are.
        implementations = {name: sub_config._attn_implementation for name, sub_config in sub_configs.items()}
        stage = config_class(**fields, **sub_configs)
        for name, implementation in implementations.items():
            sub_configs[name]._attn_implementation_internal = implementation
        stage._attn_implementation_internal = self._attn_implementation
        return stage


class TelMETextTeacherConfig(TelMEConfig):
    r"""[`TelMEConfig`] of a stage-1 checkpoint, [`TelMETextTeacher`] (same fields)."""

    model_type = "telme-erc-text-teacher"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class TelMEAudioStudentConfig(TelMEConfig):
    r"""[`TelMEConfig`] of a stage-2 audio checkpoint, [`TelMEAudioStudent`] (same fields)."""

    model_type = "telme-erc-audio-student"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class TelMEVideoStudentConfig(TelMEConfig):
    r"""[`TelMEConfig`] of a stage-2 video checkpoint, [`TelMEVideoStudent`] (same fields)."""

    model_type = "telme-erc-video-student"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


__all__ = ["TelMEAudioStudentConfig", "TelMEConfig", "TelMETextTeacherConfig", "TelMEVideoStudentConfig"]
