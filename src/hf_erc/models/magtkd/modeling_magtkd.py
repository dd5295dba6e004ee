"""MAGTKD: the multi-modal anchor gated transformer with knowledge distillation for ERC.

Li et al., "Multi-modal Anchor Gated Transformer with Knowledge Distillation for Emotion Recognition in
Conversation", IJCAI 2025 (arXiv 2506.18716). Reference code: https://github.com/JieLi-dd/MAGTKD (``MELD/model.py``
``Text_model``, ``Audio_model``, ``Video_model``, ``Transformer_Based_Model``; ``MELD/multimodel_fusion.py``,
``MELD/KD.py``; ``IEMOCAP/`` differs only in settings). This file ships inside checkpoints (loaded with
``trust_remote_code=True``), so it imports only ``torch``, ``transformers`` and its sibling
``configuration_magtkd``.

Unimodal models (stages 1-2). The reference's ``Text_model``, ``Audio_model`` and ``Video_model`` are the same
networks as TelME's teacher and students (RoBERTa-large read at the last position, i.e. the ``<mask>`` of the
prompt ``... </s> Now<sK> feels<mask>``, projected 1024 -> 768 and classified; data2vec-audio and TimeSformer read
at their first position and classified by one linear layer), so [`MAGTKDTextModel`], [`MAGTKDAudioModel`] and
[`MAGTKDVideoModel`] are copies of TelME's classes (marked ``Copied from``; ``scripts/check_copies.py`` keeps them
identical). The paper's "prompt learning" is that hand-written cloze prompt with full fine-tuning; no learned prompt
vectors. The distillation losses (``dist_loss``, ``similarity_distillation_loss``) are copies of the cores in
``hf_erc.training.losses``, which the trainer's TelME student stage uses.

Fusion (stage 3), [`MAGTKDForEmotionRecognition`], for a dialogue of ``T`` utterances with 768-d text, audio and
video features (no input projection):

1. ``c = speaker_embedding(speaker) + sinusoidal_position(turn)`` is added to every transformer's inputs.
2. Audio and video are enhanced first. For a target ``m`` in (audio, video) and each source ``s`` (``m`` itself,
   then the other two in text, audio, video order) a one-layer transformer: intra-modal when ``s == m``
   (queries, keys and values ``x_m + c``, no input dropout), inter-modal otherwise (queries ``dropout(x_m + c)``,
   keys/values ``dropout(x_s + c)``). A layer is attention, dropout, residual, then a pre-norm exact-GELU
   feed-forward block with a residual (layers after the first normalise their query stream first). Each output
   ``h`` passes a gate ``sigmoid(ReLU(W h + b)) * h`` and the three are concatenated and reduced by a linear layer
   to the enhanced ``a`` and ``v``.
3. The text anchor. The same block with target text and sources ``x_t`` (intra), the enhanced ``a`` and the
   enhanced ``v`` (inter, ``c`` added to them again as to any source); reduced to the fused representation.
   With ``config.anchor_reads_aligned_features`` (not in the reference; set by default-preprocessing fusion runs)
   the anchor's reduction also reads the enhanced ``a`` and ``v`` of its own turn (zeros where missing): without
   it, the anchor sees audio and video only through attention over the turns.
   With ``config.normalize_features`` (not in the reference; set by default-preprocessing fusion runs) every input
   feature is first scaled to unit root-mean-square.
4. Classifiers: one linear layer on the fused (text-anchor) representation (the prediction, ``logits``), one on
   ``a`` and one on ``v`` (``modality_logits``). There is no separate text classifier.

Objective (``multimodel_fusion.py``, ``train_or_eval_model`` and ``CE_Loss``), over the real utterances:
``loss = fused_loss_weight · CE(fused) + Σ_{m ∈ audio, video} w_m · [CE(m) + logit_distillation_weight ·
DIST(m ← fused) + feature_distillation_weight · FKD(h_m ← h_fused)]`` with ``w_audio``, ``w_video`` =
``audio_loss_weight``, ``video_loss_weight`` (MELD 0.01, 0.08 and no FKD; IEMOCAP 0.7, 0.8 and FKD weight 1).

- ``DIST(s ← t)`` (the reference's ``Logit_Loss``, τ = ``distillation_temperature`` = 2, β = γ = 1): with ``P_s =
  softmax(z_s / τ)`` and ``P_t = softmax(z_t / τ)`` over the ``N`` utterances × ``C`` classes and ``ρ`` the Pearson
  correlation, ``τ² · [(1 − mean_i ρ(P_s[i,:], P_t[i,:])) + (1 − mean_c ρ(P_s[:,c], P_t[:,c]))]``.
- ``FKD(h_s ← h_t)`` (``Feature_Loss``, temperature ``feature_distillation_temperature`` = 1): with L2-normalised
  rows, ``mean_i KL(softmax(h_t h_tᵀ / T)_i ‖ softmax(h_t h_sᵀ / T)_i)``.
- Neither is detached: the fused (teacher) side gets gradients from both, as in the reference (``logit_t`` and
  ``hidden_t`` come from the model being trained).

``loss_components`` holds the unweighted parts: ``fused_ce``, and per modality ``<m>_ce``, ``<m>_logit_kd``,
``<m>_feature_kd`` (computed even when its weight is 0, as the reference does).

The paper's description mapped onto the code: the "anchor" is the text modality. Audio and video are first
enhanced by intra- and inter-modal transformers (step 2); the text anchor then attends to itself and to the
*enhanced* audio and video (step 3), and only the anchor's representation is classified for the prediction. The
"gates" are the per-branch sigmoid gates. Gaps between paper and released code, and where this implementation
differs on purpose:

- Anchor weight sharing. The reference declares separate text-anchor transformers and gates for the audio and video
  sources but calls the text-to-text ones for all three sources (and declares an unused ``fc``); this is the
  default (``share_anchor_encoder=True``, needed to load released weights). ``False`` gives each source its own.
- The gate is ``sigmoid(ReLU(·))``, so it lies in ``[0.5, 1)``: it can halve a feature, never close it.
- Speaker embedding. The reference builds ``n_speaker + 1`` rows with ``padding_idx=2`` (SDT's IEMOCAP value) and
  writes id 2 on padding; on MELD, id 2 is also Joey, whose row therefore never trains. Here the padding row is the
  extra row ``num_speakers`` (kept at zero); it only matters for padding positions, whose outputs are never used,
  so released weights give the same predictions. The reference initialises every row ``N(0, 0.1²)``.
- The reference's intra-modal check is ``torch.equal(x_a, x_b)`` on the tensors; here intra-modal is decided by
  the modality names.
- The fusion's ``temp`` argument (2.0, "temperature for contrastive learning") is stored but never read; the
  DIST temperature is ``Logit_Loss``'s default τ = 2, which ``distillation_temperature`` holds.
- Missing modalities. The reference has all three features for every utterance. Here ``modality_mask`` says which
  exist: a missing feature is replaced by zeros; it is never a key of an attention over that source (nor is the
  enhanced audio/video of such an utterance a key of the text anchor); a query with no valid key gets a zero
  attention output instead of NaN; its CE and distillation terms are dropped. CE terms average over labelled
  utterances; the distillation terms treat the real utterances where the modality exists as the batch (labelled or
  not; the reference's utterances are all labelled). With every modality present this is the reference.
- The attention uses ``torch.nn.functional.scaled_dot_product_attention`` (``attn_implementation="sdpa"``, the
  default) or an explicit softmax (``"eager"``); the reference fills masked scores with -1e9, the same result.
- Online (causal) ERC (``config.causal``, not in the paper or the reference): every intra- and inter-modal
  attention of the fusion (the audio/video enhancement and the text anchor) also masks future turns, combined with
  the padding/missing-modality mask (query turn ``t`` sees key turns ``<= t``; one with no valid past key gets a zero
  output). Those attentions are the only place the fusion mixes turns: speaker/position embeddings, gates,
  reductions and classifiers act on each turn alone. The enhanced audio/video the anchor attends to are themselves
  causal, so the whole prediction is. The distillation losses compare utterances across the batch (training only;
  no turn's output depends on them). The unimodal models read one utterance (text: with the turns before it).
- The full text of the paper was not available while writing this (only its abstract and introduction); the
  architecture and losses follow the released code.
"""

import inspect
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, Data2VecAudioModel, PreTrainedModel, TimesformerModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_magtkd import (
    MAGTKD_MODALITIES,
    MAGTKD_NUM_SPEAKER_TOKENS,
    MAGTKDAudioModelConfig,
    MAGTKDConfig,
    MAGTKDTextModelConfig,
    MAGTKDVideoModelConfig,
)


ANCHOR_MODALITY = "text"


@dataclass
class MAGTKDOutput(ModelOutput):
    r"""
    Output of [`MAGTKDForEmotionRecognition`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            The objective described in the module docstring.
        logits (`torch.FloatTensor` of shape `(batch_size, num_turns, num_labels)`):
            Scores of the classifier on the fused (text-anchor) representation: the model's prediction.
        modality_logits (`dict[str, torch.FloatTensor]`):
            Scores of the audio and video classifiers on the enhanced audio and video, `(batch_size, num_turns,
            num_labels)` each (only the configured modalities; the text anchor's scores are `logits`).
        loss_components (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            The unweighted parts of the loss: `"fused_ce"`, and for each of audio and video `"<m>_ce"`,
            `"<m>_logit_kd"` (DIST from the fused prediction) and `"<m>_feature_kd"` (similarity KD from the fused
            representation).
        fused_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_turns, hidden_size)`):
            The text anchor's representation after the fusion, fed to the classifier.
        modality_hidden_states (`dict[str, torch.FloatTensor]`):
            The enhanced audio and video representations, `(batch_size, num_turns, hidden_size)` each.
        gate_values (`dict[str, torch.FloatTensor]`):
            The sigmoid gate of each transformer branch, `"<source>_to_<target>"` -> `(batch_size, num_turns,
            hidden_size)`, in `[0.5, 1]`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    modality_logits: dict[str, torch.FloatTensor] | None = None
    loss_components: dict[str, torch.FloatTensor] | None = None
    fused_hidden_states: torch.FloatTensor | None = None
    modality_hidden_states: dict[str, torch.FloatTensor] | None = None
    gate_values: dict[str, torch.FloatTensor] | None = None


# Copied from hf_erc.models.telme.modeling_telme.TelMEUnimodalOutput with TelME->MAGTKD
@dataclass
class MAGTKDUnimodalOutput(ModelOutput):
    r"""
    Output of the stage models [`MAGTKDTextTeacher`], [`MAGTKDAudioStudent`] and [`MAGTKDVideoStudent`].

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


# Copied from hf_erc.training.losses._pearson_rows
def _pearson_rows(a, b, eps=1e-8):
    """Pearson correlation between matching rows of `a` and `b` (cosine of the centred rows)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


# Copied from hf_erc.training.losses.dist_loss
def dist_loss(student_logits, teacher_logits, temperature, inter_weight=1.0, intra_weight=1.0):
    """DIST between `[N, C]` logits (the reference's `Logit_Loss`); every row counts, the teacher is *not* detached."""
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    student = F.softmax(student_logits / temperature, dim=-1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    inter_class = 1.0 - _pearson_rows(student, teacher).mean()
    intra_class = 1.0 - _pearson_rows(student.t(), teacher.t()).mean()
    return temperature**2 * (inter_weight * inter_class + intra_weight * intra_class)


# Copied from hf_erc.training.losses.similarity_distillation_loss
def similarity_distillation_loss(student_states, teacher_states, temperature):
    """The reference's `Feature_Loss` between `[N, D]` representations; every row counts, the teacher is *not*
    detached."""
    if student_states.shape[0] == 0:
        return student_states.sum() * 0.0
    student = F.normalize(student_states, p=2, dim=-1)
    teacher = F.normalize(teacher_states, p=2, dim=-1)
    target_log_probs = F.log_softmax(teacher @ teacher.t() / temperature, dim=-1)
    predicted_log_probs = F.log_softmax(teacher @ student.t() / temperature, dim=-1)
    return F.kl_div(predicted_log_probs, target_log_probs, reduction="batchmean", log_target=True)


def masked_cross_entropy(logits, labels, mask):
    """Mean cross-entropy over positions where `mask` is True; 0 (attached to the graph) when there are none."""
    if not mask.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[mask].float(), labels[mask])


# Copied from hf_erc.models.sdt.modeling_sdt.sinusoidal_position_encoding
def sinusoidal_position_encoding(length, dim, device=None, dtype=torch.float32):
    """The fixed `[length, dim]` sine/cosine encoding of positions 0..length-1 (sines on even channels)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * frequencies
    encoding = torch.zeros(length, dim, device=device, dtype=torch.float32)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)[:, : dim // 2]
    return encoding.to(dtype)


# Copied from hf_erc.models.sdt.modeling_sdt.SDTAttention with SDT->MAGTKD
class MAGTKDAttention(nn.Module):
    """Multi-head attention of target-modality queries over source-modality keys/values, padded keys masked.

    With `config.causal`, queries and keys are the same turns of a dialogue and query turn `t` sees only key turns
    `<= t` (the causal mask combined with the padding mask)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.causal = config.causal
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _split_heads(self, states):
        batch_size, length, _ = states.shape
        return states.view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query_states, key_value_states, key_mask):
        """`key_mask` is bool `[batch, source_len]`, True for keys that may be attended to."""
        batch_size, query_length, hidden_size = query_states.shape
        query = self._split_heads(self.q_proj(query_states))
        key = self._split_heads(self.k_proj(key_value_states))
        value = self._split_heads(self.v_proj(key_value_states))

        # A dialogue with no valid key (e.g. the source modality is missing throughout) would get a softmax
        # over nothing, i.e. NaN: let it attend everywhere and zero its output below.
        if self.causal:
            # Per query turn: the valid keys among turns <= t; a query with none (e.g. a first turn whose source
            # modality is missing) attends to its past turns only, still causal, and its output is zeroed.
            past = torch.ones(query_length, key.shape[-2], dtype=torch.bool, device=key_mask.device).tril()
            allowed = key_mask[:, None, None, :] & past
            has_key = allowed.any(dim=-1, keepdim=True)
            attend = allowed | (past & ~has_key)
            keep = has_key[:, 0]
        else:
            has_key = key_mask.any(dim=-1)
            attend = (key_mask | ~has_key[:, None])[:, None, None, :]
            keep = has_key[:, None, None]
        dropout = self.dropout if self.training else 0.0
        if self.config._attn_implementation == "eager":
            scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.head_dim)
            scores = scores.masked_fill(~attend, torch.finfo(scores.dtype).min)
            probabilities = F.dropout(scores.softmax(dim=-1), p=dropout, training=self.training)
            context = torch.matmul(probabilities, value)
        else:
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attend, dropout_p=dropout)
        context = context.transpose(1, 2).reshape(batch_size, query_length, hidden_size)
        context = context * keep.to(context.dtype)
        return self.out_proj(context)


class MAGTKDFeedForward(nn.Module):
    """Pre-norm position-wise feed-forward block (exact GELU) with a residual connection."""

    def __init__(self, config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states):
        intermediate = self.dropout(F.gelu(self.fc1(self.layer_norm(hidden_states))))
        return self.dropout(self.fc2(intermediate)) + hidden_states


# Copied from hf_erc.models.sdt.modeling_sdt.SDTEncoderLayer with SDT->MAGTKD
class MAGTKDEncoderLayer(nn.Module):
    """Attention from the target stream to the source, residual, then the feed-forward block."""

    def __init__(self, config, layer_index):
        super().__init__()
        # The reference normalises the query stream from the second layer on only.
        self.input_layer_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if layer_index > 0 else None
        )
        self.attention = MAGTKDAttention(config)
        self.dropout = nn.Dropout(config.dropout)
        self.feed_forward = MAGTKDFeedForward(config)

    def forward(self, hidden_states, source_states, key_mask):
        if self.input_layer_norm is not None:
            hidden_states = self.input_layer_norm(hidden_states)
        key_value_states = hidden_states if source_states is None else source_states
        context = self.attention(hidden_states, key_value_states, key_mask)
        return self.feed_forward(self.dropout(context) + hidden_states)


class MAGTKDEncoder(nn.Module):
    """An intra-modal (no source) or inter-modal transformer over the turns of a dialogue.

    `context` (speaker + position embeddings) is added to the target and to the source; the inputs of an
    inter-modal transformer are dropped out, those of an intra-modal one are not (as in the reference).
    """

    def __init__(self, config):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([MAGTKDEncoderLayer(config, index) for index in range(config.num_hidden_layers)])

    def forward(self, target_states, source_states, context, key_mask):
        hidden_states = target_states + context
        if source_states is not None:
            hidden_states = self.dropout(hidden_states)
            source_states = self.dropout(source_states + context)
        for layer in self.layers:
            hidden_states = layer(hidden_states, source_states, key_mask)
        return hidden_states


class MAGTKDGate(nn.Module):
    """`sigmoid(ReLU(W h + b)) * h`: a per-feature gate in `[0.5, 1)`."""

    def __init__(self, config):
        super().__init__()
        self.linear = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states):
        gate = torch.sigmoid(F.relu(self.linear(hidden_states)))
        return gate * hidden_states, gate


class MAGTKDPreTrainedModel(PreTrainedModel):
    config_class = MAGTKDConfig
    config: MAGTKDConfig
    base_model_prefix = "magtkd"
    main_input_name = "text_features"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ["MAGTKDEncoder", "RobertaLayer", "Data2VecAudioEncoderLayer", "TimesformerLayer"]

    def _init_weights(self, module):
        """PyTorch's default initialisation of the reference's modules and the reference's own choices (Xavier
        query/key/value projections with zero biases, `N(0, 0.1²)` speaker embeddings); encoders initialise
        themselves."""
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=0.1)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, MAGTKDAttention):
            for projection in (module.q_proj, module.k_proj, module.v_proj):
                init.xavier_uniform_(projection.weight)
                init.zeros_(projection.bias)
        elif isinstance(module, MAGTKDTextModel) and module.virtual_token_embeddings is not None:
            init.normal_(module.virtual_token_embeddings, mean=0.0, std=self.config.text_config.initializer_range)

    # Copied from hf_erc.models.telme.modeling_telme.TelMEPreTrainedModel.from_encoder_pretrained with TelME->MAGTKD, TextTeacher->TextModel
    @classmethod
    def from_encoder_pretrained(cls, name_or_path, dataset="meld", **config_overrides):
        r"""
        A stage model (teacher or student) whose encoder starts from a pretrained checkpoint (e.g. `"roberta-large"`
        for [`MAGTKDTextModel`]), with [`MAGTKDConfig.for_dataset`]`(dataset, **config_overrides)` for the rest; the
        head is freshly initialised. See [`MAGTKDForEmotionRecognition.from_encoders_pretrained`].
        """
        modality = getattr(cls, "modality", None)
        if modality is None:
            raise TypeError(f"{cls.__name__} has no single encoder: use from_encoders_pretrained.")
        encoder = _load_pretrained_encoder(modality, name_or_path, config_overrides)
        config = cls.config_class.for_dataset(dataset, **{f"{modality}_config": encoder.config}, **config_overrides)
        model = cls(config)
        model.encoder.load_state_dict(encoder.state_dict())
        return model

    # Copied from hf_erc.models.telme.modeling_telme.TelMEPreTrainedModel._stage_config with TelME->MAGTKD
    @staticmethod
    def _stage_config(config, config_class):
        # Duck-typed: with remote code the configuration module may be loaded twice, as two distinct classes.
        if not hasattr(config, "stage_config"):
            raise TypeError(f"{config_class.__name__} models need a MAGTKDConfig, got {type(config).__name__}.")
        return config.stage_config(config_class)


# Copied from hf_erc.models.telme.modeling_telme.TelMETextTeacher with TelME->MAGTKD, TextTeacher->TextModel
class MAGTKDTextModel(MAGTKDPreTrainedModel):
    r"""
    The text teacher (stage 1): RoBERTa over the dialogue context and prompt, the last position's hidden state
    projected to `config.projection_size` and classified. Accepts any [`MAGTKDConfig`]; it is stored as a
    [`MAGTKDTextModelConfig`] (sharing the sub-configs) so that `AutoModel` reloads a teacher checkpoint as a
    teacher.
    """

    config_class = MAGTKDTextModelConfig
    modality = "text"

    def __init__(self, config: MAGTKDConfig):
        config = self._stage_config(config, MAGTKDTextModelConfig)
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
            raise ValueError("The MAGTKD text teacher needs input_ids (the tokenized dialogue context and prompt).")
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
                Tokenized `"<s1> turn <s2> turn ... </s> Now <sK> feels<mask>"`, left-padded ([`MAGTKDProcessor`]
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


# Copied from hf_erc.models.telme.modeling_telme.TelMEAudioStudent with TelME->MAGTKD, AudioStudent->AudioModel
class MAGTKDAudioModel(MAGTKDPreTrainedModel):
    r"""
    The audio student (stage 2): data2vec-audio over the waveform, the first frame's hidden state classified by
    one linear layer. Stored as a [`MAGTKDAudioModelConfig`].
    """

    config_class = MAGTKDAudioModelConfig
    modality = "audio"
    main_input_name = "input_values"

    def __init__(self, config: MAGTKDConfig):
        config = self._stage_config(config, MAGTKDAudioModelConfig)
        super().__init__(config)
        self.encoder = Data2VecAudioModel(config.audio_config)
        self.classifier = nn.Linear(config.audio_config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, input_values, attention_mask=None):
        """The first frame's hidden state `(batch, audio hidden size)` of a batch of normalised waveforms."""
        if input_values is None:
            raise ValueError("The MAGTKD audio student needs input_values (normalised 16 kHz waveforms).")
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


# Copied from hf_erc.models.telme.modeling_telme.TelMEVideoStudent with TelME->MAGTKD, VideoStudent->VideoModel
class MAGTKDVideoModel(MAGTKDPreTrainedModel):
    r"""
    The video student (stage 2): TimeSformer over the clip's frames, the CLS token's final hidden state
    classified by one linear layer. Stored as a [`MAGTKDVideoModelConfig`].
    """

    config_class = MAGTKDVideoModelConfig
    modality = "video"
    main_input_name = "pixel_values"

    def __init__(self, config: MAGTKDConfig):
        config = self._stage_config(config, MAGTKDVideoModelConfig)
        super().__init__(config)
        self.encoder = TimesformerModel(config.video_config)
        self.classifier = nn.Linear(config.video_config.hidden_size, config.num_labels)
        self.post_init()

    def embed(self, pixel_values):
        """The CLS token's final hidden state `(batch, video hidden size)` of a batch of clips."""
        if pixel_values is None:
            raise ValueError("The MAGTKD video student needs pixel_values (batch, frames, 3, height, width).")
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


# Copied from hf_erc.models.telme.modeling_telme._unimodal_output with TelME->MAGTKD
def _unimodal_output(logits, embeddings, labels, modality, return_dict):
    loss = loss_components = None
    if labels is not None:
        loss = _cross_entropy(logits, labels)
        loss_components = {"ce": loss}
    output = MAGTKDUnimodalOutput(
        loss=loss,
        logits=logits,
        modality_logits={modality: logits},
        utterance_embeddings=embeddings,
        loss_components=loss_components,
    )
    return output if return_dict else output.to_tuple()


# Copied from hf_erc.models.telme.modeling_telme._cross_entropy
def _cross_entropy(logits, labels):
    """Mean cross-entropy over labels that are not -100; 0 (still attached to the graph) when there are none."""
    labels = labels.to(logits.device)
    if not (labels != -100).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, ignore_index=-100)


class MAGTKDForEmotionRecognition(MAGTKDPreTrainedModel):
    r"""
    MAGTKD's fusion stage, the multi-modal anchor gated transformer, over a batch of padded dialogues of cached
    utterance features (the outputs of the text model and the distilled audio and video models): one emotion per
    utterance from the text anchor, plus the enhanced audio's and video's own predictions, trained with the
    objective described in this module's docstring.
    """

    config_class = MAGTKDConfig

    def __init__(self, config: MAGTKDConfig):
        super().__init__(config)
        self.modalities = list(config.modalities)
        self.enhanced_modalities = [m for m in self.modalities if m != ANCHOR_MODALITY]
        self.speaker_embeddings = nn.Embedding(
            config.num_speakers + 1, config.hidden_size, padding_idx=config.num_speakers
        )
        self.encoders = nn.ModuleDict()
        self.gates = nn.ModuleDict()
        for target, source in self._branches():
            name = self._module_name(target, source)
            if name not in self.encoders:
                self.encoders[name] = MAGTKDEncoder(config)
                self.gates[name] = MAGTKDGate(config)
        # With `anchor_reads_aligned_features` the anchor's reduction also reads its turn's enhanced audio/video.
        aligned = len(self.enhanced_modalities) if config.anchor_reads_aligned_features else 0
        self.modality_reductions = nn.ModuleDict(
            {
                m: nn.Linear(
                    (len(self.modalities) + (aligned if m == ANCHOR_MODALITY else 0)) * config.hidden_size,
                    config.hidden_size,
                )
                for m in self.modalities
            }
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.modality_classifiers = nn.ModuleDict(
            {m: nn.Linear(config.hidden_size, config.num_labels) for m in self.enhanced_modalities}
        )
        self.post_init()

    def _branches(self):
        """(target, source) pairs in computation order: audio, video, then the text anchor; for each target the
        intra-modal branch first, then the other sources in text, audio, video order."""
        for target in self.enhanced_modalities + [ANCHOR_MODALITY]:
            yield target, target
            for source in self.modalities:
                if source != target:
                    yield target, source

    def _module_name(self, target, source):
        if target == ANCHOR_MODALITY and self.config.share_anchor_encoder:
            return f"{ANCHOR_MODALITY}_to_{ANCHOR_MODALITY}"
        return f"{source}_to_{target}"

    def forward(
        self,
        text_features=None,
        audio_features=None,
        video_features=None,
        attention_mask=None,
        speaker_ids=None,
        modality_mask=None,
        labels=None,
        return_dict=None,
        **kwargs,
    ):
        r"""
        Args:
            text_features, audio_features, video_features (`torch.FloatTensor` of shape `(batch, turns, hidden_size)`):
                Utterance features of each modality in `config.modalities` (required for those; others are ignored):
                the text model's projection and the (distilled) audio and video models' first hidden states. Rows
                of missing features may hold anything: they are replaced by zeros.
            attention_mask (`torch.LongTensor` or `torch.BoolTensor` of shape `(batch_size, num_turns)`, *optional*):
                1 for real utterances, 0 for padding. Defaults to all real.
            speaker_ids (`torch.LongTensor` of shape `(batch_size, num_turns)`, *optional*):
                Speaker of each utterance in `[0, config.num_speakers)` (`config.speaker_vocab` maps names); padding
                positions are ignored. Without it no speaker embedding is added.
            modality_mask (`torch.BoolTensor` of shape `(batch_size, num_turns, 3)`, *optional*):
                Whether the text, audio and video feature (in that order) exists for each utterance. Defaults to all
                present.
            labels (`torch.LongTensor` of shape `(batch_size, num_turns)`, *optional*):
                Emotion ids, -100 for padding and unlabelled utterances. When given, the loss is computed.
            return_dict (`bool`, *optional*):
                Return a [`MAGTKDOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        given = {"text": text_features, "audio": audio_features, "video": video_features}
        features = {m: given[m] for m in self.modalities}
        missing = [m for m, value in features.items() if value is None]
        if missing:
            raise ValueError(
                f"MAGTKDForEmotionRecognition is configured for modalities {self.modalities} but got no "
                f"{', '.join(f'{m}_features' for m in missing)}: pass them (zeros with modality_mask False where a "
                "feature is missing) or build the model with a config restricted to the available modalities."
            )
        batch_size, num_turns = features[ANCHOR_MODALITY].shape[:2]
        device = features[ANCHOR_MODALITY].device
        for modality, value in features.items():
            expected = (batch_size, num_turns, self.config.hidden_size)
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{modality}_features has shape {tuple(value.shape)}, expected {expected} ([batch, turns, "
                    "config.hidden_size]: MAGTKD's fusion reads the unimodal models' features without projecting them)."
                )
        if num_turns > self.config.max_position_embeddings:
            raise ValueError(
                f"A dialogue has {num_turns} turns but config.max_position_embeddings is "
                f"{self.config.max_position_embeddings}: raise it in the config."
            )

        if attention_mask is None:
            utterance_mask = torch.ones(batch_size, num_turns, dtype=torch.bool, device=device)
        else:
            utterance_mask = attention_mask.to(device=device).bool()
        if modality_mask is None:
            modality_mask = torch.ones(batch_size, num_turns, len(MAGTKD_MODALITIES), dtype=torch.bool, device=device)
        elif tuple(modality_mask.shape) != (batch_size, num_turns, len(MAGTKD_MODALITIES)):
            raise ValueError(
                f"modality_mask has shape {tuple(modality_mask.shape)}, expected {(batch_size, num_turns, 3)}: one "
                "flag per utterance for text, audio and video, in that order."
            )
        modality_mask = modality_mask.to(device=device).bool()
        present = {m: modality_mask[..., MAGTKD_MODALITIES.index(m)] & utterance_mask for m in self.modalities}

        padding_speaker = self.config.num_speakers
        if speaker_ids is None:
            speaker_ids = torch.full((batch_size, num_turns), padding_speaker, dtype=torch.long, device=device)
        else:
            speaker_ids = speaker_ids.to(device=device, dtype=torch.long)
            real_speakers = speaker_ids[utterance_mask]
            if real_speakers.numel() and (real_speakers.min() < 0 or real_speakers.max() >= padding_speaker):
                raise ValueError(
                    f"speaker_ids must lie in [0, {padding_speaker}) (config.num_speakers) on real utterances, got "
                    f"values from {int(real_speakers.min())} to {int(real_speakers.max())}: map speakers to ids with "
                    "config.speaker_vocab first."
                )
            speaker_ids = speaker_ids.masked_fill(~utterance_mask, padding_speaker)

        dtype = self.classifier.weight.dtype
        context = self.speaker_embeddings(speaker_ids) + sinusoidal_position_encoding(
            num_turns, self.config.hidden_size, device=device, dtype=dtype
        )
        sources = {}
        for modality in self.modalities:
            values = features[modality].to(dtype)
            if self.config.normalize_features:
                # Unit root-mean-square per utterance: no modality dominates by the scale of its stage model.
                values = values * torch.rsqrt(values.pow(2).mean(dim=-1, keepdim=True) + self.config.layer_norm_eps)
            sources[modality] = torch.where(present[modality].unsqueeze(-1), values, torch.zeros_like(values))

        hidden_states = {}
        gate_values = {}
        for target in self.enhanced_modalities + [ANCHOR_MODALITY]:
            branches = []
            for branch_target, source in self._branches():
                if branch_target != target:
                    continue
                name = self._module_name(target, source)
                # The anchor attends to the enhanced audio and video, which exist where their features do.
                source_states = None
                if source != target:
                    source_states = hidden_states[source] if target == ANCHOR_MODALITY else sources[source]
                encoded = self.encoders[name](sources[target], source_states, context, key_mask=present[source])
                gated, gate_values[f"{source}_to_{target}"] = self.gates[name](encoded)
                branches.append(gated)
            if target == ANCHOR_MODALITY and self.config.anchor_reads_aligned_features:
                # The turn's own enhanced audio/video, zeros where that modality is missing.
                branches.extend(
                    torch.where(present[m].unsqueeze(-1), hidden_states[m], torch.zeros_like(hidden_states[m]))
                    for m in self.enhanced_modalities
                )
            hidden_states[target] = self.modality_reductions[target](torch.cat(branches, dim=-1))

        fused_hidden_states = hidden_states[ANCHOR_MODALITY]
        logits = self.classifier(fused_hidden_states)
        modality_hidden_states = {m: hidden_states[m] for m in self.enhanced_modalities}
        modality_logits = {m: self.modality_classifiers[m](modality_hidden_states[m]) for m in self.enhanced_modalities}

        loss = loss_components = None
        if labels is not None:
            any_present = torch.stack([present[m] for m in self.modalities], dim=-1).any(dim=-1)
            loss, loss_components = self.compute_loss(
                logits, fused_hidden_states, modality_logits, modality_hidden_states, labels.to(device), any_present, present
            )

        output = MAGTKDOutput(
            loss=loss,
            logits=logits,
            modality_logits=modality_logits,
            loss_components=loss_components,
            fused_hidden_states=fused_hidden_states,
            modality_hidden_states=modality_hidden_states,
            gate_values=gate_values,
        )
        return output if return_dict else output.to_tuple()

    def compute_loss(self, logits, fused_hidden_states, modality_logits, modality_hidden_states, labels, fused_mask, present):
        """The fusion objective; returns the loss and its unweighted components (see the module docstring)."""
        config = self.config
        labelled = labels != -100
        fused_ce = masked_cross_entropy(logits, labels, labelled & fused_mask)
        loss = config.fused_loss_weight * fused_ce
        components = {"fused_ce": fused_ce}
        for modality in self.enhanced_modalities:
            rows = present[modality]
            modality_ce = masked_cross_entropy(modality_logits[modality], labels, labelled & rows)
            # The distillation terms are computed in float32.
            student_logits, teacher_logits = modality_logits[modality][rows].float(), logits[rows].float()
            logit_kd = dist_loss(student_logits, teacher_logits, config.distillation_temperature)
            student_states = modality_hidden_states[modality][rows].float()
            teacher_states = fused_hidden_states[rows].float()
            feature_kd = similarity_distillation_loss(
                student_states, teacher_states, config.feature_distillation_temperature
            )
            weight = getattr(config, f"{modality}_loss_weight")
            loss = loss + weight * (
                modality_ce
                + config.logit_distillation_weight * logit_kd
                + config.feature_distillation_weight * feature_kd
            )
            components.update(
                {f"{modality}_ce": modality_ce, f"{modality}_logit_kd": logit_kd, f"{modality}_feature_kd": feature_kd}
            )
        return loss, components

    @classmethod
    def from_encoders_pretrained(
        cls,
        text="FacebookAI/roberta-large",
        audio="facebook/data2vec-audio-base-960h",
        video="facebook/timesformer-base-finetuned-k400",
        dataset="meld",
        **config_overrides,
    ):
        r"""
        The unimodal models of stages 1-2, their encoders loaded from pretrained checkpoints (the authors' defaults;
        any compatible RoBERTa, data2vec-audio and TimeSformer checkpoint; task heads and RoBERTa's pooler are
        dropped), with [`MAGTKDConfig.for_dataset`]`(dataset, **config_overrides)` for everything else. The RoBERTa
        embedding matrix grows by `num_speaker_tokens` rows (the speaker tokens get the ids right after the
        pretrained vocabulary). Heads are freshly initialised.

        Returns a dict `{"text": MAGTKDTextModel, "audio": MAGTKDAudioModel, "video": MAGTKDVideoModel}`. The
        distilled audio model of stage 2 starts from the trained stage-1 audio model, the distilled video model from
        the pretrained TimeSformer (the `"video"` entry of a fresh call), as in the reference. The fusion model
        itself has no encoders: build it with `MAGTKDForEmotionRecognition(MAGTKDConfig.for_dataset(dataset))`.
        """
        paths = {"text": text, "audio": audio, "video": video}
        encoders = {m: _load_pretrained_encoder(m, path, config_overrides) for m, path in paths.items()}
        config = MAGTKDConfig.for_dataset(
            dataset, **{f"{m}_config": encoder.config for m, encoder in encoders.items()}, **config_overrides
        )
        models = {"text": MAGTKDTextModel(config), "audio": MAGTKDAudioModel(config), "video": MAGTKDVideoModel(config)}
        for modality, encoder in encoders.items():
            models[modality].encoder.load_state_dict(encoder.state_dict())
        return models


# Copied from hf_erc.models.telme.modeling_telme._without_pooler
def _without_pooler(text_config):
    """`add_pooling_layer=False` for text encoders that have a pooler (RoBERTa, BERT): the teacher never uses it."""
    encoder_class = AutoModel._model_mapping[type(text_config)]
    if "add_pooling_layer" in inspect.signature(encoder_class.__init__).parameters:
        return {"add_pooling_layer": False}
    return {}


# Copied from hf_erc.models.telme.modeling_telme._load_pretrained_encoder with TELME->MAGTKD
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
    num_speaker_tokens = config_overrides.get("num_speaker_tokens", MAGTKD_NUM_SPEAKER_TOKENS)
    encoder.resize_token_embeddings(encoder.config.vocab_size + num_speaker_tokens)
    return encoder


__all__ = [
    "MAGTKDAudioModel",
    "MAGTKDForEmotionRecognition",
    "MAGTKDOutput",
    "MAGTKDPreTrainedModel",
    "MAGTKDTextModel",
    "MAGTKDUnimodalOutput",
    "MAGTKDVideoModel",
]
