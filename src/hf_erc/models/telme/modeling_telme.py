"""TelME: a teacher-leading multimodal fusion network for ERC.

Yun et al., "TelME: Teacher-leading Multimodal Fusion Network for Emotion Recognition in Conversation",
NAACL 2024 (arXiv 2401.12987). Reference code: https://github.com/yuntaeyang/TelME (``MELD/model.py``,
``MELD/utils.py``, ``teacher.py``, ``student.py``, ``fusion.py``; ``IEMOCAP/`` differs only in settings). This
file ships inside checkpoints (loaded with ``trust_remote_code=True``), so it imports only ``torch``,
``transformers`` and its sibling ``configuration_telme``.

Parts (``model.py``), for a batch of utterances:

- :class:`TelMETextTeacher` (``Teacher_model``): RoBERTa over the left-padded dialogue context ending in
  ``</s> Now <sK> feels<mask>``; the last hidden state at the last position (the ``<mask>``) is projected to 768
  (``W``) and classified (``classifier``). The 768-d projection is the utterance embedding.
- :class:`TelMEAudioStudent` (``Student_Audio``): data2vec-audio over the waveform; the hidden state of the
  first frame (768-d) is the utterance embedding, classified by one linear layer (``W``).
- :class:`TelMEVideoStudent` (``Student_Video``): TimeSformer over 8 frames; the hidden state of the first
  token (the CLS token, after the final layer norm) is the utterance embedding, classified by one linear layer.
- :class:`TelMEAttentionShiftingFusion` (``ASF``): with ``z = [audio; video]`` (1536-d),
  ``z' = dropout(LayerNorm(MHA(z) + z))``, gate ``g = ReLU(W_hav [z'; t])``, displacement ``h = g * W_av z'``,
  ``alpha = min(beta_shift * ||t|| / ||h||, 1)`` (``||h||`` replaced by 1 when it is 0, and ``1e-6`` added to
  it), fused ``f = dropout(LayerNorm(t + alpha h))``, logits ``W f``.

Choices where the reference is silent or where this implementation differs on purpose:

- Missing modalities. The reference has no notion of them (MELD clips longer than 30 s get all-zero audio and
  video inputs that still go through the students). Here ``modality_mask`` (or ``audio_mask``/``video_mask``)
  says which exist: a student runs only on the utterances that have its modality, and a missing student's
  embedding is replaced by zeros before the fusion. With one of audio/video missing, the fusion shifts the text
  embedding by what the remaining one gives (the attention sees zeros in the missing half). With both missing
  the shift is skipped (``alpha = 0``), so the prediction is the fusion's text path,
  ``classifier(LayerNorm(t))``: the teacher leads alone. No NaN can come from a missing modality: its inputs
  are never read. A modality left out of ``config.modalities`` (e.g. a text+audio TelME) is missing for every
  utterance; its student keeps its place in the state dict but is never run.
- The fusion's self-attention runs over each utterance alone by default (``fusion_attention_scope=
  "utterance"``): the reference passes a ``[batch, 1536]`` matrix to ``nn.MultiheadAttention``, which reads it
  as one unbatched sequence, so a batch's utterances attend to each other. ``"batch"`` reproduces that. With a
  sequence of one, softmax weights are 1 and the attention is ``out_proj(v_proj(z))``: the query and key
  projections get no gradient (they exist so released weights load and the parameter count is the paper's).
- The teacher's read position: the last position whose ``attention_mask`` is 1, which is the last position
  under the reference's left padding and the ``<mask>`` under right padding too; ``prompt_positions`` (from
  ``hf_erc.data.collators.PromptCollator``) overrides it. Position ids are computed from the attention mask
  (what RoBERTa does from the pad tokens), so padding never moves the real tokens' positions. The text encoder may
  be a BERT-family model instead of RoBERTa (e.g. MiniLM as an offline stand-in): it is built with ``AutoModel``
  from ``text_config`` and its positions start at 0 (``TelMEConfig.text_first_position``).
- Virtual tokens (``text_num_virtual_tokens`` > 0, a folded prompt-tuning prompt): prepended to the word
  embeddings before any padding, with attention mask 1 and positions ``2..k+1``, the layout PEFT's prompt
  tuning produces; the read position moves by ``k``.
- The audio student reads the first frame of a right-padded batch with the attention mask (the reference pads
  on the *left* without a mask, so a short clip's first frame lies in padding and depends on the batch). Its
  RoBERTa encoder has no pooler (the reference's is never used; the conversion script drops it).
- Heads are initialised as PyTorch initialises the reference's modules (``nn.Linear``: Kaiming-uniform;
  ``nn.MultiheadAttention``: Xavier-uniform over the stacked q/k/v matrix, zero biases).
"""

import copy
import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, Data2VecAudioModel, PreTrainedModel, TimesformerModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_telme import (
    TELME_MODALITIES,
    TELME_NUM_SPEAKER_TOKENS,
    TelMEAudioStudentConfig,
    TelMEConfig,
    TelMETextTeacherConfig,
    TelMEVideoStudentConfig,
)


@dataclass
class TelMEUnimodalOutput(ModelOutput):
    r"""
    Output of the stage models [`TelMETextTeacher`], [`TelMEAudioStudent`] and [`TelMEVideoStudent`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Cross-entropy of `logits` over the labelled utterances.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            The stage model's emotion scores.
        modality_logits (`dict[str, torch.FloatTensor]`):
            `{modality: logits}` for the model's one modality (the interface every hf_erc model shares).
        utterance_embeddings (`torch.FloatTensor` of shape `(batch_size, dim)`):
            The vector distillation and fusion use: the teacher's 768-d projection, a student's first hidden state.
        loss_components (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            `{"ce": loss}`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    modality_logits: dict[str, torch.FloatTensor] | None = None
    utterance_embeddings: torch.FloatTensor | None = None
    loss_components: dict[str, torch.FloatTensor] | None = None


@dataclass
class TelMEOutput(ModelOutput):
    r"""
    Output of [`TelMEForEmotionRecognition`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Cross-entropy of the fused `logits` over the labelled utterances (the fusion stage's only loss).
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Scores of the fusion's classifier (the model's prediction).
        modality_logits (`dict[str, torch.FloatTensor]`):
            Scores of the teacher's and each available student's own classifier, `(batch_size, num_labels)`. A
            modality given for none of the utterances, or not in `config.modalities`, is left out; on an utterance
            without the modality its scores are those of a zero embedding (the classifier's bias).
        utterance_embeddings (`dict[str, torch.FloatTensor]`):
            The embeddings the fusion read, `{"text": (batch, projection_size), "audio": (batch, audio hidden),
            "video": (batch, video hidden)}` (zeros where a modality is missing; absent modalities left out).
        loss_components (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            `{"fused_ce": loss}`.
        fused_embeddings (`torch.FloatTensor` of shape `(batch_size, projection_size)`):
            The shifted, normalised text embedding fed to the fusion's classifier.
        shift_scale (`torch.FloatTensor` of shape `(batch_size,)`):
            `alpha`, the share of the displacement added to the text embedding (0 without audio and video).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    modality_logits: dict[str, torch.FloatTensor] | None = None
    utterance_embeddings: dict[str, torch.FloatTensor] | None = None
    loss_components: dict[str, torch.FloatTensor] | None = None
    fused_embeddings: torch.FloatTensor | None = None
    shift_scale: torch.FloatTensor | None = None


def _cross_entropy(logits, labels):
    """Mean cross-entropy over labels that are not -100; 0 (still attached to the graph) when there are none."""
    labels = labels.to(logits.device)
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-100)


class TelMEPreTrainedModel(PreTrainedModel):
    config_class = TelMEConfig
    config: TelMEConfig
    base_model_prefix = "telme"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["RobertaLayer", "Data2VecAudioEncoderLayer", "TimesformerLayer"]

    def _init_weights(self, module):
        """PyTorch's default initialisation of the reference's heads; the encoders initialise themselves."""
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, TelMEFusionAttention):
            # nn.MultiheadAttention: Xavier-uniform over the stacked [3E, E] in-projection, zero biases.
            bound = math.sqrt(6.0 / (module.embed_dim + 3 * module.embed_dim))
            for projection in (module.q_proj, module.k_proj, module.v_proj):
                init.uniform_(projection.weight, -bound, bound)
                init.zeros_(projection.bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, TelMETextTeacher) and module.virtual_token_embeddings is not None:
            init.normal_(module.virtual_token_embeddings, mean=0.0, std=self.config.text_config.initializer_range)

    @classmethod
    def from_encoder_pretrained(cls, name_or_path, dataset="meld", **config_overrides):
        r"""
        A stage model (teacher or student) whose encoder starts from a pretrained checkpoint (e.g. `"roberta-large"`
        for [`TelMETextTeacher`]), with [`TelMEConfig.for_dataset`]`(dataset, **config_overrides)` for the rest; the
        head is freshly initialised. See [`TelMEForEmotionRecognition.from_encoders_pretrained`].
        """
        modality = getattr(cls, "modality", None)
        if modality is None:
            raise TypeError(f"{cls.__name__} has no single encoder: use from_encoders_pretrained.")
        encoder = _load_pretrained_encoder(modality, name_or_path, config_overrides)
        config = cls.config_class.for_dataset(dataset, **{f"{modality}_config": encoder.config}, **config_overrides)
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    @staticmethod
    def _stage_config(config, config_class):
        # Duck-typed: with remote code the configuration module may be loaded twice, as two distinct classes.
        if not hasattr(config, "stage_config"):
            raise TypeError(f"{config_class.__name__} models need a TelMEConfig, got {type(config).__name__}.")
        return config.stage_config(config_class)


class TelMETextTeacher(TelMEPreTrainedModel):
    r"""
    The text teacher (stage 1): RoBERTa over the dialogue context and prompt, the last position's hidden state
    projected to `config.projection_size` and classified. Accepts any [`TelMEConfig`]; it is stored as a
    [`TelMETextTeacherConfig`] (sharing the sub-configs) so that `AutoModel` reloads a teacher checkpoint as a
    teacher.
    """

    config_class = TelMETextTeacherConfig
    modality = "text"

    def __init__(self, config: TelMEConfig):
        config = self._stage_config(config, TelMETextTeacherConfig)
        super().__init__(config)
        text_config = config.text_config
        self.encoder = AutoModel.from_config(text_config, **_without_pooler(text_config))
        if config.text_num_virtual_tokens > 0:
            self.virtual_token_embeddings = nn.Parameter(
                torch.empty(config.text_num_virtual_tokens, text_config.hidden_size)
            )
        else:
            self.virtual_token_embeddings = None
        self.projection = nn.Linear(text_config.hidden_size, config.projection_size)
        self.classifier = nn.Linear(config.projection_size, config.num_labels)
        self.post_init()

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.encoder.set_input_embeddings(value)

    def embed(self, input_ids, attention_mask=None, prompt_positions=None):
        """The projected utterance embeddings `(batch, projection_size)` of a batch of teacher inputs."""
        if input_ids is None:
            raise ValueError("The TelME text teacher needs input_ids (the tokenized dialogue context and prompt).")
        batch_size, length = input_ids.shape
        device = input_ids.device
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.to(device=device, dtype=torch.long)
        num_virtual = self.config.text_num_virtual_tokens
        if length + num_virtual > self.config.max_text_positions:
            raise ValueError(
                f"A text input has {length} tokens (+ {num_virtual} virtual tokens), more than the "
                f"{self.config.max_text_positions} positions of the text encoder: truncate the context (the "
                "processor keeps the last config.text_max_length - config.text_num_virtual_tokens tokens)."
            )

        encoder_inputs = {"input_ids": input_ids}
        if num_virtual > 0:
            word_embeddings = self.encoder.embeddings.word_embeddings(input_ids)
            virtual = self.virtual_token_embeddings.to(word_embeddings.dtype).expand(batch_size, -1, -1)
            encoder_inputs = {"inputs_embeds": torch.cat([virtual, word_embeddings], dim=1)}
            attention_mask = torch.cat(
                [attention_mask.new_ones(batch_size, num_virtual), attention_mask], dim=1
            )
        # Positions over the attended tokens only, so left padding never moves them: RoBERTa numbers them
        # padding_idx + 1, 2, ... (padding_idx on padding), BERT-family encoders 0, 1, ... (0 on padding).
        first_position = self.config.text_first_position
        padding_position = max(first_position - 1, 0)
        position_ids = (torch.cumsum(attention_mask, dim=1) - 1 + first_position - padding_position) * attention_mask
        position_ids = position_ids + padding_position

        hidden_states = self.encoder(
            **encoder_inputs, attention_mask=attention_mask, position_ids=position_ids
        ).last_hidden_state
        if prompt_positions is None:
            # The last attended position: the last one under left padding (the reference), the mask token otherwise.
            read_positions = attention_mask.shape[1] - 1 - attention_mask.flip(1).argmax(dim=1)
        else:
            read_positions = prompt_positions.to(device=device, dtype=torch.long) + num_virtual
        read = hidden_states[torch.arange(batch_size, device=device), read_positions]
        return self.projection(read)

    def forward(
        self, input_ids=None, attention_mask=None, prompt_positions=None, labels=None, return_dict=None, **kwargs
    ):
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
                Tokenized `"<s1> turn <s2> turn ... </s> Now <sK> feels<mask>"`, left-padded ([`TelMEProcessor`]
                or `hf_erc.data.collators.PromptCollator`).
            attention_mask (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
                1 for tokens, 0 for padding.
            prompt_positions (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Index of the token to read (the `<mask>`); defaults to the last attended position.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Emotion ids, -100 for unlabelled utterances.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        embeddings = self.embed(input_ids, attention_mask, prompt_positions)
        return _unimodal_output(self.classifier(embeddings), embeddings, labels, "text", return_dict)


class TelMEAudioStudent(TelMEPreTrainedModel):
    r"""
    The audio student (stage 2): data2vec-audio over the waveform, the first frame's hidden state classified by
    one linear layer. Stored as a [`TelMEAudioStudentConfig`].
    """

    config_class = TelMEAudioStudentConfig
    modality = "audio"
    main_input_name = "input_values"

    def __init__(self, config: TelMEConfig):
        config = self._stage_config(config, TelMEAudioStudentConfig)
        super().__init__(config)
        self.encoder = Data2VecAudioModel(config.audio_config)
        self.classifier = nn.Linear(config.audio_config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, input_values, attention_mask=None):
        """The first frame's hidden state `(batch, audio hidden size)` of a batch of normalised waveforms."""
        if input_values is None:
            raise ValueError("The TelME audio student needs input_values (normalised 16 kHz waveforms).")
        return self.encoder(input_values, attention_mask=attention_mask).last_hidden_state[:, 0]

    def forward(self, input_values=None, attention_mask=None, labels=None, return_dict=None, **kwargs):
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch_size, num_samples)`):
                Waveforms normalised by the feature extractor, right-padded with zeros.
            attention_mask (`torch.LongTensor` of shape `(batch_size, num_samples)`, *optional*):
                1 for samples, 0 for padding.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Emotion ids, -100 for unlabelled utterances.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        embeddings = self.embed(input_values, attention_mask)
        return _unimodal_output(self.classifier(embeddings), embeddings, labels, "audio", return_dict)


class TelMEVideoStudent(TelMEPreTrainedModel):
    r"""
    The video student (stage 2): TimeSformer over the clip's frames, the CLS token's final hidden state
    classified by one linear layer. Stored as a [`TelMEVideoStudentConfig`].
    """

    config_class = TelMEVideoStudentConfig
    modality = "video"
    main_input_name = "pixel_values"

    def __init__(self, config: TelMEConfig):
        config = self._stage_config(config, TelMEVideoStudentConfig)
        super().__init__(config)
        self.encoder = TimesformerModel(config.video_config)
        self.classifier = nn.Linear(config.video_config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, pixel_values):
        """The CLS token's final hidden state `(batch, video hidden size)` of a batch of clips."""
        if pixel_values is None:
            raise ValueError("The TelME video student needs pixel_values (batch, frames, 3, height, width).")
        return self.encoder(pixel_values).last_hidden_state[:, 0]

    def forward(self, pixel_values=None, labels=None, return_dict=None, **kwargs):
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`):
                The clip's frames, resized, cropped and normalised by the image processor.
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Emotion ids, -100 for unlabelled utterances.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        embeddings = self.embed(pixel_values)
        return _unimodal_output(self.classifier(embeddings), embeddings, labels, "video", return_dict)


def _unimodal_output(logits, embeddings, labels, modality, return_dict):
    loss = loss_components = None
    if labels is not None:
        loss = _cross_entropy(logits, labels)
        loss_components = {"ce": loss}
    output = TelMEUnimodalOutput(
        loss=loss,
        logits=logits,
        modality_logits={modality: logits},
        utterance_embeddings=embeddings,
        loss_components=loss_components,
    )
    return output if return_dict else output.to_tuple()


class TelMEFusionAttention(nn.Module):
    """Multi-head self-attention over the audio+video vectors, each utterance alone or across the batch."""

    def __init__(self, config: TelMEConfig):
        super().__init__()
        self.embed_dim = config.nonverbal_size
        self.num_heads = config.fusion_num_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scope = config.fusion_attention_scope
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(self, states):
        """`states` `(batch, embed_dim)` -> `(batch, embed_dim)`."""
        if self.scope == "utterance":
            # Softmax over a single key is 1: the output is the projected value.
            return self.out_proj(self.v_proj(states))
        # The reference: the batch is one sequence, heads over the feature dimension.
        batch_size = states.shape[0]
        query = self.q_proj(states).view(batch_size, self.num_heads, self.head_dim).transpose(0, 1)
        key = self.k_proj(states).view(batch_size, self.num_heads, self.head_dim).transpose(0, 1)
        value = self.v_proj(states).view(batch_size, self.num_heads, self.head_dim).transpose(0, 1)
        weights = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_dim)
        context = torch.matmul(weights.softmax(dim=-1), value)
        return self.out_proj(context.transpose(0, 1).reshape(batch_size, self.embed_dim))


class TelMEAttentionShiftingFusion(nn.Module):
    """ASF: shifts the teacher's text embedding by a norm-bounded, gated displacement from audio and video.

    Exactly the reference's ``ASF`` (see the module docstring for the formulas), generalised to the encoders'
    sizes (768 for all three in the paper) and with an optional per-utterance switch that skips the shift.
    """

    def __init__(self, config: TelMEConfig):
        super().__init__()
        text_size = config.projection_size
        nonverbal_size = config.nonverbal_size
        self.beta_shift = config.fusion_beta_shift
        self.attention = TelMEFusionAttention(config)
        self.nonverbal_layer_norm = nn.LayerNorm(nonverbal_size)
        self.gate = nn.Linear(nonverbal_size + text_size, text_size)
        self.nonverbal_projection = nn.Linear(nonverbal_size, text_size)
        self.layer_norm = nn.LayerNorm(config.fusion_hidden_size)
        self.dropout = nn.Dropout(config.fusion_dropout)
        self.classifier = nn.Linear(text_size, config.num_labels)

    def forward(self, text_embeddings, audio_embeddings, video_embeddings, shift_mask=None):
        """Returns the logits, the fused embeddings and the shift scale `alpha`; `shift_mask` (bool `(batch,)`)
        False skips the shift of that utterance."""
        nonverbal = torch.cat([audio_embeddings, video_embeddings], dim=-1)
        nonverbal = self.dropout(self.nonverbal_layer_norm(self.attention(nonverbal) + nonverbal))
        gate = F.relu(self.gate(torch.cat([nonverbal, text_embeddings], dim=-1)))
        displacement = gate * self.nonverbal_projection(nonverbal)

        text_norm = text_embeddings.norm(p=2, dim=-1)
        displacement_norm = displacement.norm(p=2, dim=-1)
        displacement_norm = torch.where(displacement_norm == 0, torch.ones_like(displacement_norm), displacement_norm)
        shift_scale = torch.clamp(text_norm / (displacement_norm + 1e-6) * self.beta_shift, max=1.0)
        if shift_mask is not None:
            shift_scale = shift_scale * shift_mask.to(shift_scale.dtype)

        fused = self.dropout(self.layer_norm(shift_scale.unsqueeze(-1) * displacement + text_embeddings))
        return self.classifier(fused), fused, shift_scale


class TelMEForEmotionRecognition(TelMEPreTrainedModel):
    r"""
    TelME: the text teacher, the audio and video students and the attention-based modality shifting fusion.
    One emotion per utterance from the fusion, plus each unimodal model's own prediction.

    Each modality's embedding comes either from raw inputs (the stage model runs) or from a cached embedding
    (`text_embeddings`, `audio_embeddings`, `video_embeddings`): the fusion stage trains on cached outputs of the
    frozen teacher and students instead of re-running them every epoch (the reference re-runs them).
    """

    config_class = TelMEConfig

    def __init__(self, config: TelMEConfig):
        super().__init__(config)
        self.text_teacher = TelMETextTeacher(config)
        self.audio_student = TelMEAudioStudent(config)
        self.video_student = TelMEVideoStudent(config)
        self.fusion = TelMEAttentionShiftingFusion(config)
        self._unimodal_models_frozen = False
        self.post_init()

    def unimodal_models(self):
        """The teacher and the two students, by modality."""
        return {"text": self.text_teacher, "audio": self.audio_student, "video": self.video_student}

    def freeze_unimodal_models(self):
        """Freeze the teacher and students and keep them in eval mode (the reference's fusion stage)."""
        for model in self.unimodal_models().values():
            model.requires_grad_(False)
            model.eval()
        self._unimodal_models_frozen = True
        return self

    def train(self, mode=True):
        super().train(mode)
        if self._unimodal_models_frozen:
            for model in self.unimodal_models().values():
                model.eval()
        return self

    def compute_utterance_embeddings(
        self,
        input_ids=None,
        attention_mask=None,
        prompt_positions=None,
        input_values=None,
        audio_attention_mask=None,
        pixel_values=None,
    ):
        """Embeddings of the configured modalities whose raw inputs are given (cached before the fusion stage)."""
        embeddings = {}
        if input_ids is not None:
            embeddings["text"] = self.text_teacher.embed(input_ids, attention_mask, prompt_positions)
        if input_values is not None and "audio" in self.config.modalities:
            embeddings["audio"] = self.audio_student.embed(input_values, audio_attention_mask)
        if pixel_values is not None and "video" in self.config.modalities:
            embeddings["video"] = self.video_student.embed(pixel_values)
        return embeddings

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        prompt_positions=None,
        input_values=None,
        audio_attention_mask=None,
        pixel_values=None,
        modality_mask=None,
        audio_mask=None,
        video_mask=None,
        text_embeddings=None,
        audio_embeddings=None,
        video_embeddings=None,
        labels=None,
        return_dict=None,
        **kwargs,
    ):
        r"""
        Args:
            input_ids, attention_mask, prompt_positions:
                The text teacher's inputs (see [`TelMETextTeacher.forward`]); not needed with `text_embeddings`.
            input_values (`torch.FloatTensor` of shape `(batch_size, num_samples)`, *optional*):
                Normalised, right-padded waveforms; rows of utterances without audio are never read.
            audio_attention_mask (`torch.LongTensor` of shape `(batch_size, num_samples)`, *optional*):
                1 for samples, 0 for padding.
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`, *optional*):
                Processed video frames; rows of utterances without video are never read.
            modality_mask (`torch.BoolTensor` of shape `(batch_size, 3)`, *optional*):
                Whether the text, audio and video of each utterance exist (text must). Defaults to all present.
            audio_mask, video_mask (`torch.BoolTensor` of shape `(batch_size,)`, *optional*):
                The same per modality; combined with `modality_mask` (a modality is present where all say so).
            text_embeddings (`torch.FloatTensor` of shape `(batch_size, projection_size)`, *optional*):
                Cached teacher embeddings, used instead of running the teacher.
            audio_embeddings, video_embeddings (`torch.FloatTensor` of shape `(batch_size, hidden)`, *optional*):
                Cached student embeddings, used instead of running the students. A modality with neither raw
                inputs nor embeddings, or not in `config.modalities`, is missing for the whole batch (whatever is
                passed for it is never read).
            labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Emotion ids, -100 for unlabelled utterances. When given, the loss is computed.
            return_dict (`bool`, *optional*):
                Return a [`TelMEOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if text_embeddings is None:
            text_embeddings = self.text_teacher.embed(input_ids, attention_mask, prompt_positions)
        batch_size = text_embeddings.shape[0]
        device = text_embeddings.device
        dtype = self.fusion.classifier.weight.dtype
        text_embeddings = text_embeddings.to(dtype)
        self._check_shape("text_embeddings", text_embeddings, (batch_size, self.config.projection_size))

        present = self._modality_presence(batch_size, device, modality_mask, audio_mask, video_mask)
        given = {
            "audio": (audio_embeddings, input_values, self.config.audio_config.hidden_size),
            "video": (video_embeddings, pixel_values, self.config.video_config.hidden_size),
        }
        # A modality outside `config.modalities` is missing everywhere: its inputs are never read.
        available = ["text"] + [
            m for m in ("audio", "video") if m in self.config.modalities and any(v is not None for v in given[m][:2])
        ]
        embeddings = {"text": text_embeddings}
        for modality, (cached, raw, size) in given.items():
            if modality not in available:
                present[modality] = torch.zeros_like(present[modality])
                embeddings[modality] = text_embeddings.new_zeros(batch_size, size)
                continue
            if cached is None:
                cached = self._run_student(modality, raw, audio_attention_mask, present[modality], size)
            cached = cached.to(device=device, dtype=dtype)
            self._check_shape(f"{modality}_embeddings", cached, (batch_size, size))
            embeddings[modality] = torch.where(present[modality].unsqueeze(-1), cached, torch.zeros_like(cached))

        logits, fused_embeddings, shift_scale = self.fusion(
            embeddings["text"],
            embeddings["audio"],
            embeddings["video"],
            shift_mask=present["audio"] | present["video"],
        )
        classifiers = {m: model.classifier for m, model in self.unimodal_models().items()}
        modality_logits = {m: classifiers[m](embeddings[m]) for m in available}

        loss = loss_components = None
        if labels is not None:
            loss = _cross_entropy(logits, labels)
            loss_components = {"fused_ce": loss}
        output = TelMEOutput(
            loss=loss,
            logits=logits,
            modality_logits=modality_logits,
            utterance_embeddings={m: embeddings[m] for m in available},
            loss_components=loss_components,
            fused_embeddings=fused_embeddings,
            shift_scale=shift_scale,
        )
        return output if return_dict else output.to_tuple()

    def _run_student(self, modality, raw, audio_attention_mask, present, size):
        """The student's embeddings of the utterances that have the modality, zeros for the others."""
        rows = present.nonzero(as_tuple=True)[0]
        embeddings = raw.new_zeros(present.shape[0], size, dtype=self.fusion.classifier.weight.dtype)
        if rows.numel() == 0:
            return embeddings
        if modality == "audio":
            mask = None if audio_attention_mask is None else audio_attention_mask[rows]
            computed = self.audio_student.embed(raw[rows], mask)
        else:
            computed = self.video_student.embed(raw[rows])
        return embeddings.index_copy(0, rows, computed.to(embeddings.dtype))

    @staticmethod
    def _modality_presence(batch_size, device, modality_mask, audio_mask, video_mask):
        present = {m: torch.ones(batch_size, dtype=torch.bool, device=device) for m in ("audio", "video")}
        if modality_mask is not None:
            if tuple(modality_mask.shape) != (batch_size, len(TELME_MODALITIES)):
                raise ValueError(
                    f"modality_mask has shape {tuple(modality_mask.shape)}, expected {(batch_size, 3)}: one flag per "
                    "utterance for text, audio and video, in that order."
                )
            modality_mask = modality_mask.to(device=device).bool()
            if not modality_mask[:, 0].all():
                raise ValueError(
                    "modality_mask says some utterances have no text: TelME's teacher needs every utterance's text."
                )
            present["audio"] = present["audio"] & modality_mask[:, 1]
            present["video"] = present["video"] & modality_mask[:, 2]
        for modality, mask in (("audio", audio_mask), ("video", video_mask)):
            if mask is not None:
                if tuple(mask.shape) != (batch_size,):
                    raise ValueError(f"{modality}_mask has shape {tuple(mask.shape)}, expected {(batch_size,)}.")
                present[modality] = present[modality] & mask.to(device=device).bool()
        return present

    @staticmethod
    def _check_shape(name, value, expected):
        if tuple(value.shape) != tuple(expected):
            raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {tuple(expected)}.")

    @classmethod
    def from_encoders_pretrained(
        cls,
        text="roberta-large",
        audio="facebook/data2vec-audio-base-960h",
        video="facebook/timesformer-base-finetuned-k400",
        dataset="meld",
        **config_overrides,
    ):
        r"""
        A TelME model whose teacher and students start from pretrained encoders (any checkpoint of a compatible
        RoBERTa, data2vec-audio and TimeSformer model; their task heads and RoBERTa's pooler are dropped), with
        [`TelMEConfig.for_dataset`]`(dataset, **config_overrides)` for everything else. The RoBERTa embedding
        matrix grows by `num_speaker_tokens` rows: the speaker tokens get the ids right after the pretrained
        vocabulary, as when they are added to the tokenizer. Heads and the fusion are freshly initialised.
        """
        paths = {"text": text, "audio": audio, "video": video}
        encoders = {m: _load_pretrained_encoder(m, path, config_overrides) for m, path in paths.items()}
        config = TelMEConfig.for_dataset(
            dataset, **{f"{m}_config": encoder.config for m, encoder in encoders.items()}, **config_overrides
        )
        model = cls(config)
        for modality, encoder in encoders.items():
            model.unimodal_models()[modality].encoder.load_state_dict(encoder.state_dict())
        return model

    @classmethod
    def from_stage_models(cls, text_teacher, audio_student=None, video_student=None, fusion=None, **config_overrides):
        r"""
        Assemble TelME from already-loaded stage models: a [`TelMETextTeacher`], a [`TelMEAudioStudent`] and a
        [`TelMEVideoStudent`], and optionally a [`TelMEForEmotionRecognition`] whose fusion weights and `fusion_*`
        settings are taken (e.g. a fusion-stage run); without it the fusion is freshly initialised (the start of the
        fusion stage). The other settings come from the teacher's configuration; `config_overrides` replace any field
        (e.g. `fusion_beta_shift`). A student left out (`None`), or one the given fusion does not read, drops its
        modality from `config.modalities`: that student keeps its fresh weights and is never run. All models must
        share the label set. The weights are copied; the given models are left unchanged.

        Load each checkpoint once and pass the models here (as the fusion stage does), rather than loading them
        again through [`~TelMEForEmotionRecognition.from_stage_checkpoints`].
        """
        stages = {"text": text_teacher, "audio": audio_student, "video": video_student}
        roles = {"text": "the teacher", "audio": "the audio student", "video": "the video student"}
        given = [(roles[m], model) for m, model in stages.items() if m != "text" and model is not None]
        if fusion is not None:
            given.append(("the fusion", fusion))
        labels = text_teacher.config.id2label
        for role, model in given:
            if model.config.id2label != labels:
                raise ValueError(
                    f"{_describe_source(model, role)} predicts {model.config.id2label} but "
                    f"{_describe_source(text_teacher, roles['text'])} predicts {labels}: stage checkpoints must be "
                    "trained on the same label set."
                )
        fields = text_teacher.config.to_dict()
        for name in ("model_type", "transformers_version", "architectures", "auto_map", "_name_or_path"):
            fields.pop(name, None)
        # Copies, so that building the model (which resets the attention implementation) leaves the stages alone.
        for modality in TELME_MODALITIES:
            owner = stages[modality] if stages[modality] is not None else text_teacher
            fields[f"{modality}_config"] = copy.deepcopy(getattr(owner.config, f"{modality}_config"))
        fields["modalities"] = [m for m in TELME_MODALITIES if stages[m] is not None]
        if fusion is not None:
            fields.update({name: getattr(fusion.config, name) for name in _FUSION_FIELDS})
            fields["modalities"] = [m for m in fields["modalities"] if m in fusion.config.modalities]
        fields.update(config_overrides)
        model = cls(TelMEConfig(**fields))
        for modality, stage in stages.items():
            if stage is not None:
                model.unimodal_models()[modality].load_state_dict(stage.state_dict())
        if fusion is not None:
            model.fusion.load_state_dict(fusion.fusion.state_dict())
        return model

    @classmethod
    def from_stage_checkpoints(cls, teacher, audio_student, video_student, fusion=None, **config_overrides):
        r"""
        Assemble TelME from trained stage checkpoints: a [`TelMETextTeacher`], a [`TelMEAudioStudent`] and a
        [`TelMEVideoStudent`] folder (or Hub id), and optionally the fusion weights of a
        [`TelMEForEmotionRecognition`] checkpoint (e.g. a fusion-stage run), with its `fusion_*` settings; without
        it the fusion is freshly initialised (the start of the fusion stage). The other settings come from the
        teacher's configuration; `config_overrides` replace any field (e.g. `fusion_beta_shift`). All checkpoints
        must share the label set. Loads each checkpoint, then [`~TelMEForEmotionRecognition.from_stage_models`].
        """
        return cls.from_stage_models(
            TelMETextTeacher.from_pretrained(teacher),
            None if audio_student is None else TelMEAudioStudent.from_pretrained(audio_student),
            None if video_student is None else TelMEVideoStudent.from_pretrained(video_student),
            fusion=None if fusion is None else cls.from_pretrained(fusion),
            **config_overrides,
        )


# Settings that belong to the fusion stage: taken from the fusion checkpoint when one is given.
_FUSION_FIELDS = (
    "fusion_hidden_size",
    "fusion_num_heads",
    "fusion_beta_shift",
    "fusion_dropout",
    "fusion_attention_scope",
)


def _describe_source(model, role):
    """`role` and, for a model loaded with `from_pretrained`, where it came from (for error messages)."""
    source = getattr(model, "name_or_path", "")
    return f"{role} {source}" if source else role


def _without_pooler(text_config):
    """`add_pooling_layer=False` for text encoders that have a pooler (RoBERTa, BERT): the teacher never uses it."""
    encoder_class = AutoModel._model_mapping[type(text_config)]
    if "add_pooling_layer" in inspect.signature(encoder_class.__init__).parameters:
        return {"add_pooling_layer": False}
    return {}


def _load_pretrained_encoder(modality, name_or_path, config_overrides):
    """A pretrained encoder without its task head; the text encoder (RoBERTa, or a BERT-family stand-in) loses its
    pooler and gains the speaker-token rows."""
    if modality == "audio":
        return Data2VecAudioModel.from_pretrained(name_or_path)
    if modality == "video":
        return TimesformerModel.from_pretrained(name_or_path)
    # Never the code an encoder's folder ships (auto_map): its architecture must be one transformers has.
    text_config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=False)
    encoder = AutoModel.from_pretrained(name_or_path, trust_remote_code=False, **_without_pooler(text_config))
    num_speaker_tokens = config_overrides.get("num_speaker_tokens", TELME_NUM_SPEAKER_TOKENS)
    encoder.resize_token_embeddings(encoder.config.vocab_size + num_speaker_tokens)
    return encoder


__all__ = [
    "TelMEAttentionShiftingFusion",
    "TelMEAudioStudent",
    "TelMEForEmotionRecognition",
    "TelMEOutput",
    "TelMEPreTrainedModel",
    "TelMETextTeacher",
    "TelMEUnimodalOutput",
    "TelMEVideoStudent",
]
