"""SDT: a Transformer-based model with self-distillation for multimodal ERC.

Ma et al., "A Transformer-Based Model With Self-Distillation for Multimodal Emotion Recognition in
Conversations", IEEE Transactions on Multimedia 26 (2024). Reference code:
https://github.com/butterfliesss/SDT (``model.py``, ``train.py``). This file ships inside checkpoints
(loaded with ``trust_remote_code=True``), so it imports only ``torch``, ``transformers`` and its sibling
``configuration_sdt``.

Architecture (from ``model.py``, ``Transformer_Based_Model``), for a dialogue of ``T`` utterances:

1. Each modality's utterance features are projected to ``hidden_size`` (a bias-free ``Conv1d`` with kernel
   1 in the reference, the same map as the bias-free ``Linear`` used here).
2. A fixed sinusoidal position encoding (over turns) and a learned speaker embedding (one row per speaker
   plus a zero padding row) are added to every projected modality.
3. For every ordered pair (source, target) of modalities, a transformer encoder whose queries come from the
   target modality and whose keys/values come from the source: intra-modal when source == target,
   inter-modal otherwise (nine encoders for three modalities, ``num_hidden_layers`` = 1 layer each). A layer
   is: attention, dropout, residual, then a pre-norm GELU feed-forward block with a residual. Layers after
   the first normalise their query stream first; keys/values of an inter-modal encoder always come from the
   source's embedded input.
4. Hierarchical gated fusion. Unimodal level: each encoder output ``h`` becomes ``sigmoid(W h) * h``; the
   outputs of the encoders that target one modality are concatenated (intra-modal first, then the other
   sources in text, audio, video order) and reduced by a linear layer to that modality's representation.
   Multimodal level: one shared bias-free linear map scores each modality's representation, a softmax over
   the modalities (per hidden dimension) gives the gate weights, and the fused representation is the
   weighted sum.
5. Classifiers: per modality ReLU -> dropout -> linear; on the fused representation a linear layer.

Objective (``train.py``, ``MaskedNLLLoss``, ``MaskedKLDivLoss``):
``loss = γ1 · NLL(fused) + γ2 · Σ_m NLL(m) + γ3 · Σ_m KL(softmax(fused / T) ‖ softmax(m / T))``.
Each NLL is the mean over labelled utterances (with class weights, the weighted mean: the sum of
``w[y] · nll`` over the sum of ``w[y]``, which is what the reference computes); each KL is summed over
classes and averaged over utterances. The fused distribution is the teacher and is *not* detached:
gradients of the KL terms reach the fused branch too, as in the reference. There is no ``T²`` factor.
``loss_components`` holds the unweighted parts: ``fused_ce`` = NLL(fused), ``modality_ce`` = Σ_m NLL(m),
``self_distillation`` = Σ_m KL(fused ‖ m); ``loss`` = γ1 · fused_ce + γ2 · modality_ce + γ3 ·
self_distillation. The γ's are ``fused_loss_weight``, ``modality_loss_weight`` and
``self_distillation_loss_weight``.

Choices where the reference is silent or where this implementation differs on purpose:

- Missing modalities. The reference features have every modality for every utterance. Here
  ``modality_mask`` says which exist: a missing feature is replaced by zeros before the projection; it is not
  a key of any attention over that source (a query with no valid key gets a zero attention output instead of
  NaN); it is left out of the multimodal softmax; its per-modality NLL and KL terms are dropped for that
  utterance. Each per-modality term is averaged over the utterances where the modality exists, and is 0 when
  there are none. With every modality present this is exactly the reference.
- The KL terms cover every real utterance (``attention_mask``) where the modality exists, labelled or not
  (the reference masks them with the utterance mask; all its utterances are labelled). The fused NLL skips
  utterances with no modality at all.
- On MELD the reference initialises the unimodal gate matrices to the identity and freezes them, so the gate
  is ``sigmoid(h) * h``; with ``trainable_unimodal_gates=False`` this model computes that without storing the
  frozen matrices.
- The reference creates a layer norm in every encoder layer but only uses it from the second layer on; here
  it only exists from the second layer on, so the one-layer paper setting has no unused parameters.
- Weights are initialised as PyTorch initialises the reference's modules (Kaiming-uniform linear layers,
  unit-normal speaker embeddings).
- Speaker ids are integers in ``[0, num_speakers)`` instead of the reference's one-hot vectors (the reference
  takes their argmax); padding positions use the zero padding row, as in the reference.
- The attention uses ``torch.nn.functional.scaled_dot_product_attention`` (``attn_implementation="sdpa"``,
  the default) or an explicit softmax (``"eager"``); both mask padded keys.
- Online (causal) ERC, not in the paper: with ``config.causal`` every intra- and inter-modal attention also
  masks future turns (query turn ``t`` sees key turns ``<= t``), so each turn is labelled from the turns up to
  it only. The attentions are the only place turns are mixed: the projections, speaker and position
  embeddings, gates, fusion (over modalities) and classifiers act on each turn alone. A query with no valid
  past key (e.g. a first turn whose source modality is missing) gets a zero attention output.
The full text of the paper was not available while writing this; where the paper and the code could differ,
the code was followed.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_sdt import SDT_MODALITIES, SDTConfig


@dataclass
class SDTOutput(ModelOutput):
    r"""
    Output of [`SDTForEmotionRecognition`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            γ1 · `fused_ce` + γ2 · `modality_ce` + γ3 · `self_distillation`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_turns, num_labels)`):
            Scores of the fused classifier (the model's prediction).
        modality_logits (`dict[str, torch.FloatTensor]`):
            Scores of each modality's classifier, `(batch_size, num_turns, num_labels)` per modality.
        loss_components (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            The unweighted parts of the loss: `"fused_ce"` (NLL of the fused prediction), `"modality_ce"` (sum
            over modalities of their NLL) and `"self_distillation"` (sum over modalities of the KL from the
            temperature-softened fused prediction to the modality's).
        fused_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_turns, hidden_size)`):
            The fused utterance representations fed to the fused classifier.
        modality_hidden_states (`dict[str, torch.FloatTensor]`):
            Each modality's utterance representations after the unimodal-level fusion,
            `(batch_size, num_turns, hidden_size)`.
        gate_weights (`torch.FloatTensor` of shape `(batch_size, num_turns, num_modalities, hidden_size)`):
            Multimodal-level gate: softmax over the present modalities (in `config.modalities` order), per
            hidden dimension; zero for missing modalities.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    modality_logits: dict[str, torch.FloatTensor] | None = None
    loss_components: dict[str, torch.FloatTensor] | None = None
    fused_hidden_states: torch.FloatTensor | None = None
    modality_hidden_states: dict[str, torch.FloatTensor] | None = None
    gate_weights: torch.FloatTensor | None = None


def sinusoidal_position_encoding(length, dim, device=None, dtype=torch.float32):
    """The fixed `[length, dim]` sine/cosine encoding of positions 0..length-1 (sines on even channels)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * frequencies
    encoding = torch.zeros(length, dim, device=device, dtype=torch.float32)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)[:, : dim // 2]
    return encoding.to(dtype)


class SDTAttention(nn.Module):
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


class SDTFeedForward(nn.Module):
    """Pre-norm position-wise feed-forward block with a residual connection."""

    def __init__(self, config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states):
        intermediate = self.dropout(F.gelu(self.fc1(self.layer_norm(hidden_states)), approximate="tanh"))
        return self.dropout(self.fc2(intermediate)) + hidden_states


class SDTEncoderLayer(nn.Module):
    """Attention from the target stream to the source, residual, then the feed-forward block."""

    def __init__(self, config, layer_index):
        super().__init__()
        # The reference normalises the query stream from the second layer on only.
        self.input_layer_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if layer_index > 0 else None
        )
        self.attention = SDTAttention(config)
        self.dropout = nn.Dropout(config.dropout)
        self.feed_forward = SDTFeedForward(config)

    def forward(self, hidden_states, source_states, key_mask):
        if self.input_layer_norm is not None:
            hidden_states = self.input_layer_norm(hidden_states)
        key_value_states = hidden_states if source_states is None else source_states
        context = self.attention(hidden_states, key_value_states, key_mask)
        return self.feed_forward(self.dropout(context) + hidden_states)


class SDTEncoder(nn.Module):
    """An intra-modal (no source) or inter-modal transformer encoder over the turns of a dialogue."""

    def __init__(self, config):
        super().__init__()
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList([SDTEncoderLayer(config, index) for index in range(config.num_hidden_layers)])

    def forward(self, target_embeddings, source_embeddings, key_mask):
        hidden_states = self.dropout(target_embeddings)
        source_states = None if source_embeddings is None else self.dropout(source_embeddings)
        for layer in self.layers:
            hidden_states = layer(hidden_states, source_states, key_mask)
        return hidden_states


class SDTUnimodalGate(nn.Module):
    """`sigmoid(W h) * h`; with a frozen identity `W` (the reference on MELD) simply `sigmoid(h) * h`."""

    def __init__(self, config):
        super().__init__()
        self.gate = None
        if config.trainable_unimodal_gates:
            self.gate = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, hidden_states):
        scores = hidden_states if self.gate is None else self.gate(hidden_states)
        return torch.sigmoid(scores) * hidden_states


class SDTMultimodalGate(nn.Module):
    """Softmax over the present modalities of a shared linear score, per hidden dimension; weighted sum."""

    def __init__(self, config):
        super().__init__()
        self.score = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, modality_states, modality_present):
        """`modality_states` `[B, T, M, H]`, `modality_present` bool `[B, T, M]` -> fused `[B, T, H]`, weights."""
        scores = self.score(modality_states)
        present = modality_present.unsqueeze(-1)
        scores = scores.masked_fill(~present, torch.finfo(scores.dtype).min)
        # Utterances with no modality (padding) get all-zero weights instead of a uniform softmax.
        weights = scores.softmax(dim=-2) * present.to(scores.dtype)
        return (weights * modality_states).sum(dim=-2), weights


class SDTPreTrainedModel(PreTrainedModel):
    config_class = SDTConfig
    config: SDTConfig
    base_model_prefix = "sdt"
    main_input_name = "text_features"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ["SDTEncoder"]

    def _init_weights(self, module):
        """PyTorch's default initialisation of each module type, as the reference model gets."""
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1.0 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class SDTForEmotionRecognition(SDTPreTrainedModel):
    r"""
    SDT over a batch of padded dialogues of pre-extracted utterance features: one emotion prediction per
    utterance from the fused representation, plus one per modality, trained with the self-distillation
    objective described in this module's docstring.
    """

    def __init__(self, config: SDTConfig):
        super().__init__(config)
        if config.class_weights is not None and len(config.class_weights) != config.num_labels:
            raise ValueError(
                f"config.class_weights has {len(config.class_weights)} entries for {config.num_labels} labels: "
                "give one weight per label."
            )
        self.modalities = list(config.modalities)
        self.input_projections = nn.ModuleDict(
            {m: nn.Linear(config.feature_dim(m), config.hidden_size, bias=False) for m in self.modalities}
        )
        self.speaker_embeddings = nn.Embedding(
            config.num_speakers + 1, config.hidden_size, padding_idx=config.num_speakers
        )
        self.encoders = nn.ModuleDict()
        self.unimodal_gates = nn.ModuleDict()
        for target, source in self._encoder_pairs():
            self.encoders[f"{source}_to_{target}"] = SDTEncoder(config)
            self.unimodal_gates[f"{source}_to_{target}"] = SDTUnimodalGate(config)
        self.modality_reductions = nn.ModuleDict(
            {m: nn.Linear(len(self.modalities) * config.hidden_size, config.hidden_size) for m in self.modalities}
        )
        self.multimodal_gate = SDTMultimodalGate(config)
        self.modality_classifiers = nn.ModuleDict(
            {
                m: nn.Sequential(
                    nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.hidden_size, config.num_labels)
                )
                for m in self.modalities
            }
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _encoder_pairs(self):
        """(target, source) pairs; for each target the intra-modal encoder first, then the other sources."""
        for target in self.modalities:
            yield target, target
            for source in self.modalities:
                if source != target:
                    yield target, source

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
            text_features, audio_features, video_features (`torch.FloatTensor` of shape `(batch, turns, dim)`):
                Utterance features of each modality in `config.modalities` (required for those; others are
                ignored). Rows of missing features may hold anything: they are replaced by zeros.
            attention_mask (`torch.LongTensor` or `torch.BoolTensor` of shape `(batch_size, num_turns)`, *optional*):
                1 for real utterances, 0 for padding. Defaults to all real.
            speaker_ids (`torch.LongTensor` of shape `(batch_size, num_turns)`, *optional*):
                Speaker of each utterance in `[0, config.num_speakers)`; padding positions are ignored. Without
                it no speaker embedding is added.
            modality_mask (`torch.BoolTensor` of shape `(batch_size, num_turns, 3)`, *optional*):
                Whether the text, audio and video feature (in that order) exists for each utterance. Defaults to
                all present.
            labels (`torch.LongTensor` of shape `(batch_size, num_turns)`, *optional*):
                Emotion ids, -100 for padding and unlabelled utterances. When given, the loss is computed.
            return_dict (`bool`, *optional*):
                Return an [`SDTOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        given = {"text": text_features, "audio": audio_features, "video": video_features}
        features = {m: given[m] for m in self.modalities}
        missing = [m for m, value in features.items() if value is None]
        if missing:
            raise ValueError(
                f"SDTForEmotionRecognition is configured for modalities {self.modalities} but got no "
                f"{', '.join(f'{m}_features' for m in missing)}: pass them (zeros with modality_mask False where a "
                "feature is missing) or build the model with a config restricted to the available modalities."
            )
        reference = features[self.modalities[0]]
        batch_size, num_turns = reference.shape[:2]
        device = reference.device
        for modality, value in features.items():
            expected = (batch_size, num_turns, self.config.feature_dim(modality))
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{modality}_features has shape {tuple(value.shape)}, expected {expected} "
                    f"([batch, turns, config.{modality}_dim])."
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
            modality_mask = torch.ones(batch_size, num_turns, len(SDT_MODALITIES), dtype=torch.bool, device=device)
        elif tuple(modality_mask.shape) != (batch_size, num_turns, len(SDT_MODALITIES)):
            raise ValueError(
                f"modality_mask has shape {tuple(modality_mask.shape)}, expected {(batch_size, num_turns, 3)}: one "
                "flag per utterance for text, audio and video, in that order."
            )
        modality_mask = modality_mask.to(device=device).bool()
        present = {m: modality_mask[..., SDT_MODALITIES.index(m)] & utterance_mask for m in self.modalities}

        padding_speaker = self.config.num_speakers
        if speaker_ids is None:
            speaker_ids = torch.full((batch_size, num_turns), padding_speaker, dtype=torch.long, device=device)
        else:
            speaker_ids = speaker_ids.to(device=device, dtype=torch.long)
            real_speakers = speaker_ids[utterance_mask]
            if real_speakers.numel() and (real_speakers.min() < 0 or real_speakers.max() >= padding_speaker):
                raise ValueError(
                    f"speaker_ids must lie in [0, {padding_speaker}) (config.num_speakers) on real utterances, got "
                    f"values from {int(real_speakers.min())} to {int(real_speakers.max())}: map speakers to ids first."
                )
            speaker_ids = speaker_ids.masked_fill(~utterance_mask, padding_speaker)

        dtype = self.classifier.weight.dtype
        context = self.speaker_embeddings(speaker_ids) + sinusoidal_position_encoding(
            num_turns, self.config.hidden_size, device=device, dtype=dtype
        )
        embeddings = {}
        for modality in self.modalities:
            values = features[modality].to(dtype)
            values = torch.where(present[modality].unsqueeze(-1), values, torch.zeros_like(values))
            embeddings[modality] = self.input_projections[modality](values) + context

        gated = {target: [] for target in self.modalities}
        for target, source in self._encoder_pairs():
            name = f"{source}_to_{target}"
            encoded = self.encoders[name](
                embeddings[target], None if source == target else embeddings[source], key_mask=present[source]
            )
            gated[target].append(self.unimodal_gates[name](encoded))
        modality_hidden_states = {m: self.modality_reductions[m](torch.cat(gated[m], dim=-1)) for m in self.modalities}

        modality_present = torch.stack([present[m] for m in self.modalities], dim=-1)
        fused_hidden_states, gate_weights = self.multimodal_gate(
            torch.stack([modality_hidden_states[m] for m in self.modalities], dim=-2), modality_present
        )
        logits = self.classifier(fused_hidden_states)
        modality_logits = {m: self.modality_classifiers[m](modality_hidden_states[m]) for m in self.modalities}

        loss = loss_components = None
        if labels is not None:
            loss, loss_components = self.compute_loss(
                logits, modality_logits, labels.to(device), utterance_mask & modality_present.any(dim=-1), present
            )

        output = SDTOutput(
            loss=loss,
            logits=logits,
            modality_logits=modality_logits,
            loss_components=loss_components,
            fused_hidden_states=fused_hidden_states,
            modality_hidden_states=modality_hidden_states,
            gate_weights=gate_weights,
        )
        return output if return_dict else output.to_tuple()

    def compute_loss(self, logits, modality_logits, labels, fused_mask, present):
        """The self-distillation objective; returns the loss and its unweighted components (see module doc)."""
        config = self.config
        class_weights = None
        if config.class_weights is not None:
            class_weights = torch.tensor(config.class_weights, dtype=torch.float32, device=logits.device)
        labelled = labels != -100

        fused_ce = masked_nll_loss(logits, labels, labelled & fused_mask, class_weights)
        teacher_log_probs = F.log_softmax(logits.float() / config.distillation_temperature, dim=-1)
        modality_ce = logits.new_zeros((), dtype=torch.float32)
        self_distillation = logits.new_zeros((), dtype=torch.float32)
        for modality, student_logits in modality_logits.items():
            modality_mask = labelled & present[modality]
            modality_ce = modality_ce + masked_nll_loss(student_logits, labels, modality_mask, class_weights)
            student_log_probs = F.log_softmax(student_logits.float() / config.distillation_temperature, dim=-1)
            self_distillation = self_distillation + masked_kl_divergence(
                teacher_log_probs, student_log_probs, present[modality]
            )
        loss = (
            config.fused_loss_weight * fused_ce
            + config.modality_loss_weight * modality_ce
            + config.self_distillation_loss_weight * self_distillation
        )
        components = {"fused_ce": fused_ce, "modality_ce": modality_ce, "self_distillation": self_distillation}
        return loss, components


def masked_nll_loss(logits, labels, mask, class_weights=None):
    """Mean negative log-likelihood over positions where `mask` is True, weighted by `class_weights[label]`."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    targets = labels.clamp(min=0)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    weights = mask.to(log_probs.dtype) if class_weights is None else class_weights[targets] * mask
    return torch.where(mask, nll * weights, torch.zeros_like(nll)).sum() / weights.sum().clamp(min=1e-12)


def masked_kl_divergence(teacher_log_probs, student_log_probs, mask):
    """Mean over positions where `mask` is True of KL(teacher ‖ student), summed over classes."""
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)
    return torch.where(mask, kl, torch.zeros_like(kl)).sum() / mask.sum().clamp(min=1)


__all__ = ["SDTForEmotionRecognition", "SDTOutput", "SDTPreTrainedModel"]
