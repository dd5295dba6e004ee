"""CMATH: cross-modality augmented transformer with hierarchical variational distillation for multimodal ERC.

Zhu, Cheng, Yang, Chen, Wang, Yao, "CMATH: Cross-Modality Augmented Transformer with Hierarchical Variational
Distillation for Multimodal Emotion Recognition in Conversation", arXiv 2411.10060 (Nov 2024). The authors
released no code; this is a first public implementation. This file ships inside checkpoints (loaded with
``trust_remote_code=True``), so it imports only ``torch``, ``transformers`` and its sibling
``configuration_cmath``.

Sources and their limits. What could be read of the paper: its abstract and a third-party summary of the method
(the stored copies of the paper's HTML end after the abstract). They fix the structure: (1) *modality
reconstruction*, a U-Net of 1-D convolutions that down-samples and up-samples each modality, giving a compressed
representation of each modality and trained with a Frobenius-norm reconstruction loss; (2) the *CMA-Transformer*,
an asymmetric fusion that treats one modality as central and the others as auxiliary; (3) a *variational fusion
network* that fuses the fine-grained representations of the CMA-Transformer into a coarse-grained one;
(4) *hierarchical distillation* keeping the representations of the two granularities consistent. The paper's
equations, their numbering and its hyperparameters could not be read, so the table below maps the paper's
*components* (not equation numbers) to the code, and every concrete formula is this implementation's reading,
listed under "Interpretations". Re-check them against the PDF before claiming paper parity.

| paper component                                       | code                                                     |
|-------------------------------------------------------|----------------------------------------------------------|
| modality reconstruction: 1-D conv U-Net per modality  | `CMATHModalityReconstruction` (down/up convs, skips)     |
| compressed representation of each modality            | `compressed_hidden_states` (the U-Net bottleneck)        |
| Frobenius-norm reconstruction loss                    | `masked_reconstruction_loss` -> `"reconstruction"`       |
| speaker / dialogue position information               | `speaker_embeddings` + `sinusoidal_position_encoding`    |
| CMA-Transformer: one central, auxiliary modalities    | `CMATHCrossModalityAugmentedLayer` x `num_hidden_layers` |
| central modality augmented by each auxiliary one      | `cross_attentions`/`augmentation_gates["<aux>_to_<c>"]`  |
| auxiliary modality guided by the central one          | `cross_attentions["<c>_to_<aux>"]`                       |
| fine-grained representations                          | `modality_hidden_states`                                 |
| variational fusion network (fine -> coarse)           | `CMATHVariationalFusion` (pooling, mean/log-var heads)   |
| reparameterised coarse-grained representation         | `fused_hidden_states` (sample in training, mean in eval) |
| KL term of the variational fusion                     | `gaussian_kl_divergence` -> `"kl"`                       |
| emotion classification (final prediction)             | `classifier` -> `logits`; `"classification"`             |
| fine-grained predictions                              | `modality_classifiers` -> `modality_logits`              |
|                                                       | and `"modality_classification"`                          |
| hierarchical distillation, prediction level           | `masked_kl_divergence` -> `"logit_distillation"`         |
| hierarchical distillation, representation level       | `masked_cosine_distance` -> `"feature_distillation"`     |
| overall objective                                     | `compute_loss`: `Σ_k config.loss_weights()[k] · comp_k`  |

(`"name"` = `loss_components["name"]`.)

Forward pass for a batch of padded dialogues (`B` dialogues, `T` turns, `H = hidden_size`):

1. Missing features (``modality_mask`` False) and padding are replaced by zeros. For each modality `m` the U-Net
   maps `X_m` `[B, T, D_m]` to the compressed `Z_m` `[B, T, H]` (bottleneck) and back to the reconstruction
   `X̂_m` `[B, T, D_m]`.
2. `E_m = dropout(Z_m) + speaker embedding + sinusoidal position encoding` (over turns).
3. CMA-Transformer (pre-norm layers; `c` = central, `a` = each auxiliary; all attention is over turns, with keys
   restricted to utterances where the source modality exists):
   central:   `h_c ← h_c + SelfAttn(h_c)`; `x_a = CrossAttn(q = h_c, kv = h_a)`;
              `g_a = sigmoid(W_a [h_c; x_a] + b_a)`; `h_c ← h_c + Σ_a g_a ⊙ x_a`; `h_c ← h_c + FFN(h_c)`
   auxiliary: `h_a ← h_a + SelfAttn(h_a)`; `h_a ← h_a + CrossAttn(q = h_a, kv = h_c)`; `h_a ← h_a + FFN(h_a)`
   Both streams are updated from the same layer input; a final layer norm per modality gives the fine-grained
   `F_m`.
4. Variational fusion: `u = Σ_m α_m F_m` with `α = softmax_m(v^T tanh(W F_m))` over the modalities present for
   the utterance; `μ = W_μ u + b_μ`, `log σ² = clamp(W_σ u + b_σ)`; coarse `C = μ + σ ⊙ ε`, `ε ~ N(0, I)`, in
   training and `C = μ` in eval (deterministic predictions).
5. `logits = classifier(C)`; `modality_logits[m] = classifier_m(dropout(F_m))`.

Objective (`loss_components`, each unweighted; `loss` = Σ config weight × component):

- ``classification``: cross-entropy of `logits` over labelled utterances (class-weighted mean with
  `class_weights`).
- ``modality_classification``: Σ_m cross-entropy of `modality_logits[m]` over labelled utterances where `m` exists.
- ``reconstruction``: Σ_m ‖(X̂_m − X_m) ⊙ mask‖²_F / (#valid utterances · D_m), i.e. the squared Frobenius norm
  of the residual over the utterances where `m` exists, per feature element.
- ``kl``: mean over utterances of KL(N(μ, σ²) ‖ N(0, I)), summed over latent dimensions.
- ``logit_distillation``: Σ_m mean over utterances where `m` exists of KL(softmax(logits/τ) ‖
  softmax(modality_logits[m]/τ)), summed over classes (coarse teaches fine).
- ``feature_distillation``: Σ_m mean over utterances where `m` exists of 1 − cos(F_m, μ).

Interpretations (where the accessible text is silent; each the reading judged most faithful, with why):

- U-Net axis. Utterance features are vectors without spatial structure, so the 1-D convolutions run along the
  turns of the dialogue with the feature vector as channels; "down-sampling" reduces the channel (feature) width
  level by level to `hidden_size` and "up-sampling" restores it. The alternative, striding along turns, would
  leave no per-utterance compressed vector for the transformer. Level widths interpolate geometrically from
  `D_m` to `hidden_size`; the encoder's intermediate levels are concatenated into the decoder (U-Net skips); the
  raw input is *not* skipped to the output, which would make reconstruction the identity. Hidden levels use GELU;
  the bottleneck and the output are linear (features are real-valued). Padding positions are zeroed after every
  convolution, so a dialogue gives the same result alone or padded in a batch.
- Reconstruction target and norm: the model's own input features; the squared Frobenius norm is normalised by
  the number of valid entries so the term does not grow with batch size or feature width.
- Speaker and position information, as in the feature-level ERC models the paper compares with (SDT): a learned
  speaker embedding and a sinusoidal turn encoding are added to the compressed representations.
- CMA-Transformer: asymmetry means the central modality receives every auxiliary one (through a sigmoid gate per
  auxiliary, so a weak modality can be suppressed, the paper's motivation), while an auxiliary modality receives
  only the central one. Auxiliary modalities do not attend to each other.
- Variational fusion: the posterior is a diagonal Gaussian over a `hidden_size` latent with a standard normal
  prior; its input is an attention pooling over the modalities present for the utterance (so missing modalities
  and any modality subset work). The KL is summed over latent dimensions (the standard definition), with a small
  default weight.
- Hierarchical distillation: two levels, predictions (temperature-scaled KL, teacher = coarse prediction) and
  representations (cosine distance to the coarse mean μ, which is what eval uses). The teacher side is not
  detached: "consistency" trains both granularities, as SDT's self-distillation does; no τ² factor.
- Per-modality classifiers on the fine-grained representations supply the fine-grained predictions that the
  distillation needs; their cross-entropy is a separate component (`modality_classification`).

Degenerate settings:

- Text only (or any single modality): no auxiliary modality, so each CMA layer is self-attention + feed-forward
  (no cross-attention, no gates); the fusion pools over one modality (weight 1), so the coarse representation is
  a variational bottleneck on the fine one; distillation then ties the single fine prediction to the coarse one.
- Two modalities: the central one has one auxiliary.
- A modality missing for an utterance: its features are ignored (zeros), it is no key of any attention, it is left
  out of the fusion pooling, and its reconstruction, classification and distillation terms skip that utterance.
  A query with no valid key gets a zero attention output (no NaN); an utterance with no modality at all gets
  zero fusion weights and is left out of every loss term. Each term is averaged over its valid positions and is 0
  when there are none.

The attention uses ``torch.nn.functional.scaled_dot_product_attention`` (``attn_implementation="sdpa"``) or an
explicit softmax (``"eager"``); both mask padded keys. No Python loop runs over utterances or dialogues.

Online (causal) ERC (``config.causal``, an addition to the paper): each turn is labelled from the turns up to it
only. Turns are mixed in two places, and both become causal: every attention of the CMA-Transformer (self-attention
of each modality, central <-> auxiliary cross-attention) masks key turns after the query turn, combined with the
padding/missing-modality mask (a query with no valid past key gets a zero output); the reconstruction U-Net's
convolutions over turns (down, up and skip-merge) are left-padded by ``kernel_size - 1`` instead of centred, so turn
``t`` reads turns ``t - kernel_size + 1 .. t``. Everything else acts on one turn at a time: speaker and position
embeddings, feed-forward blocks, layer norms, the augmentation gates, the variational fusion (a pooling over the
modalities of one turn, not over turns) and the classifiers. The loss terms average over the batch's utterances,
which affects training only, not any turn's output.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_cmath import CMATH_MODALITIES, CMATHConfig


@dataclass
class CMATHOutput(ModelOutput):
    r"""
    Output of [`CMATHForEmotionRecognition`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Σ over `loss_components` of `config.loss_weights()[name] * component`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_turns, num_labels)`):
            Scores of the classifier on the coarse-grained (fused) representation: the model's prediction.
        modality_logits (`dict[str, torch.FloatTensor]`):
            Scores of each modality's classifier on its fine-grained representation.
        loss_components (`dict[str, torch.FloatTensor]`, *optional*, returned when `labels` is given):
            The unweighted loss terms: `"classification"`, `"modality_classification"`, `"reconstruction"`, `"kl"`,
            `"logit_distillation"`, `"feature_distillation"` (definitions in the module docstring).
        compressed_hidden_states (`dict[str, torch.FloatTensor]`):
            Each modality's compressed representation (the U-Net bottleneck), `(batch_size, num_turns, hidden_size)`.
        reconstructed_features (`dict[str, torch.FloatTensor]`):
            Each modality's reconstruction of its input features, `(batch_size, num_turns, <modality>_dim)`.
        modality_hidden_states (`dict[str, torch.FloatTensor]`):
            Fine-grained representations from the CMA-Transformer, `(batch_size, num_turns, hidden_size)`.
        fused_hidden_states (`torch.FloatTensor` of shape `(batch_size, num_turns, hidden_size)`):
            Coarse-grained representation fed to the classifier: a reparameterised sample in training, the mean in
            eval.
        fused_mean (`torch.FloatTensor` of shape `(batch_size, num_turns, hidden_size)`):
            Mean of the variational fusion's Gaussian.
        fused_log_variance (`torch.FloatTensor` of shape `(batch_size, num_turns, hidden_size)`):
            Log-variance of the variational fusion's Gaussian.
        fusion_weights (`torch.FloatTensor` of shape `(batch_size, num_turns, num_modalities)`):
            Attention weights of the fusion pooling over the modalities (in `config.modalities` order); zero for
            missing modalities.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    modality_logits: dict[str, torch.FloatTensor] | None = None
    loss_components: dict[str, torch.FloatTensor] | None = None
    compressed_hidden_states: dict[str, torch.FloatTensor] | None = None
    reconstructed_features: dict[str, torch.FloatTensor] | None = None
    modality_hidden_states: dict[str, torch.FloatTensor] | None = None
    fused_hidden_states: torch.FloatTensor | None = None
    fused_mean: torch.FloatTensor | None = None
    fused_log_variance: torch.FloatTensor | None = None
    fusion_weights: torch.FloatTensor | None = None


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


# Copied from hf_erc.models.sdt.modeling_sdt.SDTAttention with SDT->CMATH
class CMATHAttention(nn.Module):
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


def reconstruction_widths(input_dim, hidden_size, num_layers):
    """Channel widths of the U-Net levels, from `input_dim` (level 0) down to `hidden_size` (the bottleneck)."""
    ratio = hidden_size / input_dim
    inner = [max(1, round(input_dim * ratio ** (level / num_layers))) for level in range(1, num_layers)]
    return [input_dim, *inner, hidden_size]


class CMATHModalityReconstruction(nn.Module):
    """
    The 1-D convolutional U-Net of one modality, along the turns of a dialogue with features as channels: the
    encoder narrows the channels to the compressed representation (`hidden_size`), the decoder widens them back to
    the input size, concatenating the encoder's intermediate levels (U-Net skips; not the raw input).
    """

    def __init__(self, config, input_dim):
        super().__init__()
        self.widths = reconstruction_widths(input_dim, config.hidden_size, config.reconstruction_num_layers)
        kernel_size = config.reconstruction_kernel_size
        self.kernel_size = kernel_size
        self.causal = config.causal
        padding = kernel_size // 2
        levels = config.reconstruction_num_layers
        self.down_convs = nn.ModuleList(
            [nn.Conv1d(self.widths[i], self.widths[i + 1], kernel_size, padding=padding) for i in range(levels)]
        )
        # up_convs[i] maps level i + 1 to level i; skip_merges[i - 1] fuses level i's up-sampled and encoder states.
        self.up_convs = nn.ModuleList(
            [nn.Conv1d(self.widths[i + 1], self.widths[i], kernel_size, padding=padding) for i in range(levels)]
        )
        self.skip_merges = nn.ModuleList(
            [nn.Conv1d(2 * self.widths[i], self.widths[i], kernel_size, padding=padding) for i in range(1, levels)]
        )

    def _convolve(self, conv, hidden):
        """`conv` over the turns; with `config.causal` left-padded by `kernel_size - 1` zeros instead of centred, so
        turn `t` reads turns `t - kernel_size + 1 .. t` only (same weights, shifted window)."""
        if not self.causal:
            return conv(hidden)
        return F.conv1d(F.pad(hidden, (self.kernel_size - 1, 0)), conv.weight, conv.bias)

    def forward(self, features, utterance_mask):
        """`features` `[B, T, D]` (zeros where absent), `utterance_mask` bool `[B, T]` -> compressed, rebuilt."""
        keep = utterance_mask.unsqueeze(1).to(features.dtype)
        hidden = features.transpose(1, 2)
        encoder_states = []
        for level, conv in enumerate(self.down_convs):
            hidden = self._convolve(conv, hidden)
            if level < len(self.down_convs) - 1:
                hidden = F.gelu(hidden)
            hidden = hidden * keep
            encoder_states.append(hidden)
        compressed = hidden
        for level in range(len(self.up_convs) - 1, -1, -1):
            hidden = self._convolve(self.up_convs[level], hidden)
            if level > 0:
                hidden = F.gelu(hidden) * keep
                merged = torch.cat([hidden, encoder_states[level - 1]], dim=1)
                hidden = F.gelu(self._convolve(self.skip_merges[level - 1], merged))
            hidden = hidden * keep
        return compressed.transpose(1, 2), hidden.transpose(1, 2)


class CMATHFeedForward(nn.Module):
    """Pre-norm position-wise feed-forward block with a residual connection."""

    def __init__(self, config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states):
        intermediate = self.dropout(F.gelu(self.fc1(self.layer_norm(hidden_states))))
        return self.dropout(self.fc2(intermediate)) + hidden_states


class CMATHCrossModalityAugmentedLayer(nn.Module):
    """
    One CMA-Transformer layer: every modality attends to its own turns; the central modality is augmented by each
    auxiliary one through gated cross-attention; each auxiliary modality attends to the central one.
    """

    def __init__(self, config):
        super().__init__()
        self.central = config.central_modality
        self.auxiliaries = list(config.auxiliary_modalities)
        hidden_size = config.hidden_size
        self.dropout = nn.Dropout(config.dropout)
        self.self_attention_norms = nn.ModuleDict(
            {m: nn.LayerNorm(hidden_size, eps=config.layer_norm_eps) for m in config.modalities}
        )
        self.self_attentions = nn.ModuleDict({m: CMATHAttention(config) for m in config.modalities})
        self.feed_forwards = nn.ModuleDict({m: CMATHFeedForward(config) for m in config.modalities})
        self.cross_attention_norms = nn.ModuleDict()
        self.cross_attentions = nn.ModuleDict()
        self.augmentation_gates = nn.ModuleDict()
        if self.auxiliaries:
            for modality in config.modalities:
                self.cross_attention_norms[modality] = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
            for auxiliary in self.auxiliaries:
                self.cross_attentions[f"{auxiliary}_to_{self.central}"] = CMATHAttention(config)
                self.augmentation_gates[f"{auxiliary}_to_{self.central}"] = nn.Linear(2 * hidden_size, hidden_size)
                self.cross_attentions[f"{self.central}_to_{auxiliary}"] = CMATHAttention(config)

    def forward(self, states, present):
        """`states`: modality -> `[B, T, H]`; `present`: modality -> bool `[B, T]` (which turns are valid keys)."""
        normed = {m: self.self_attention_norms[m](value) for m, value in states.items()}
        attended = {
            m: states[m] + self.dropout(self.self_attentions[m](normed[m], normed[m], present[m])) for m in states
        }
        if not self.auxiliaries:
            return {m: self.feed_forwards[m](value) for m, value in attended.items()}

        central = self.central
        central_query = self.cross_attention_norms[central](attended[central])
        augmentation = torch.zeros_like(central_query)
        updated = {}
        for auxiliary in self.auxiliaries:
            name = f"{auxiliary}_to_{central}"
            context = self.cross_attentions[name](central_query, normed[auxiliary], present[auxiliary])
            gate = torch.sigmoid(self.augmentation_gates[name](torch.cat([central_query, context], dim=-1)))
            augmentation = augmentation + gate * context

            auxiliary_query = self.cross_attention_norms[auxiliary](attended[auxiliary])
            guidance = self.cross_attentions[f"{central}_to_{auxiliary}"](
                auxiliary_query, normed[central], present[central]
            )
            updated[auxiliary] = attended[auxiliary] + self.dropout(guidance)
        updated[central] = attended[central] + self.dropout(augmentation)
        return {m: self.feed_forwards[m](updated[m]) for m in states}


class CMATHVariationalFusion(nn.Module):
    """Fine-grained modality representations -> a diagonal Gaussian over the coarse-grained representation."""

    def __init__(self, config):
        super().__init__()
        self.log_variance_clamp = config.log_variance_clamp
        self.score_projection = nn.Linear(config.hidden_size, config.hidden_size)
        self.score_vector = nn.Linear(config.hidden_size, 1, bias=False)
        self.mean = nn.Linear(config.hidden_size, config.hidden_size)
        self.log_variance = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, modality_states, modality_present):
        """`modality_states` `[B, T, M, H]`, `modality_present` bool `[B, T, M]` -> sample, mean, log-var, weights."""
        scores = self.score_vector(torch.tanh(self.score_projection(modality_states))).squeeze(-1)
        scores = scores.masked_fill(~modality_present, torch.finfo(scores.dtype).min)
        # Utterances with no modality (padding) get all-zero weights instead of a uniform softmax.
        weights = scores.softmax(dim=-1) * modality_present.to(scores.dtype)
        pooled = (weights.unsqueeze(-1) * modality_states).sum(dim=-2)
        mean = self.mean(pooled)
        log_variance = self.log_variance(pooled).clamp(-self.log_variance_clamp, self.log_variance_clamp)
        if self.training:
            sample = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        else:
            sample = mean
        return sample, mean, log_variance, weights


class CMATHPreTrainedModel(PreTrainedModel):
    config_class = CMATHConfig
    config: CMATHConfig
    base_model_prefix = "cmath"
    main_input_name = "text_features"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _no_split_modules = ["CMATHCrossModalityAugmentedLayer"]

    def _init_weights(self, module):
        """PyTorch's default initialisation of each module type (the paper states no other)."""
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=1.0)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class CMATHForEmotionRecognition(CMATHPreTrainedModel):
    r"""
    CMATH over a batch of padded dialogues of pre-extracted utterance features: one emotion prediction per utterance
    from the coarse-grained (variationally fused) representation, one per modality from its fine-grained
    representation, trained with the objective described in this module's docstring.
    """

    def __init__(self, config: CMATHConfig):
        super().__init__(config)
        self.modalities = list(config.modalities)
        self.reconstructions = nn.ModuleDict(
            {m: CMATHModalityReconstruction(config, config.feature_dim(m)) for m in self.modalities}
        )
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.speaker_embeddings = nn.Embedding(
            config.num_speakers + 1, config.hidden_size, padding_idx=config.num_speakers
        )
        self.layers = nn.ModuleList(
            [CMATHCrossModalityAugmentedLayer(config) for _ in range(config.num_hidden_layers)]
        )
        self.final_norms = nn.ModuleDict(
            {m: nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) for m in self.modalities}
        )
        self.fusion = CMATHVariationalFusion(config)
        self.classifier_dropout = nn.Dropout(config.dropout)
        self.modality_classifiers = nn.ModuleDict(
            {m: nn.Linear(config.hidden_size, config.num_labels) for m in self.modalities}
        )
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

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
                Speaker of each utterance in `[0, config.num_speakers)`; padding positions are ignored. Without it
                no speaker embedding is added.
            modality_mask (`torch.BoolTensor` of shape `(batch_size, num_turns, 3)`, *optional*):
                Whether the text, audio and video feature (in that order) exists for each utterance. Defaults to
                all present.
            labels (`torch.LongTensor` of shape `(batch_size, num_turns)`, *optional*):
                Emotion ids, -100 for padding and unlabelled utterances. When given, the loss is computed.
            return_dict (`bool`, *optional*):
                Return a [`CMATHOutput`] (default) or a tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        given = {"text": text_features, "audio": audio_features, "video": video_features}
        features = {m: given[m] for m in self.modalities}
        missing = [m for m, value in features.items() if value is None]
        if missing:
            raise ValueError(
                f"CMATHForEmotionRecognition is configured for modalities {self.modalities} but got no "
                f"{', '.join(f'{m}_features' for m in missing)}: pass them (zeros with modality_mask False where a "
                "feature is missing) or build the model with a config restricted to the available modalities."
            )
        reference = features[self.modalities[0]]
        batch_size, num_turns = reference.shape[:2]
        device = reference.device
        for modality, value in features.items():
            expected = (batch_size, num_turns, config.feature_dim(modality))
            if tuple(value.shape) != expected:
                raise ValueError(
                    f"{modality}_features has shape {tuple(value.shape)}, expected {expected} "
                    f"([batch, turns, config.{modality}_dim])."
                )
        if num_turns > config.max_position_embeddings:
            raise ValueError(
                f"A dialogue has {num_turns} turns but config.max_position_embeddings is "
                f"{config.max_position_embeddings}: raise it in the config."
            )

        if attention_mask is None:
            utterance_mask = torch.ones(batch_size, num_turns, dtype=torch.bool, device=device)
        else:
            utterance_mask = attention_mask.to(device=device).bool()
        if modality_mask is None:
            modality_mask = torch.ones(batch_size, num_turns, len(CMATH_MODALITIES), dtype=torch.bool, device=device)
        elif tuple(modality_mask.shape) != (batch_size, num_turns, len(CMATH_MODALITIES)):
            raise ValueError(
                f"modality_mask has shape {tuple(modality_mask.shape)}, expected {(batch_size, num_turns, 3)}: one "
                "flag per utterance for text, audio and video, in that order."
            )
        modality_mask = modality_mask.to(device=device).bool()
        present = {m: modality_mask[..., CMATH_MODALITIES.index(m)] & utterance_mask for m in self.modalities}

        padding_speaker = config.num_speakers
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
        # 1. Modality reconstruction: compressed representations and reconstructions.
        inputs, compressed, reconstructed = {}, {}, {}
        for modality in self.modalities:
            values = features[modality].to(dtype)
            inputs[modality] = torch.where(present[modality].unsqueeze(-1), values, torch.zeros_like(values))
            compressed[modality], reconstructed[modality] = self.reconstructions[modality](
                inputs[modality], utterance_mask
            )

        # 2. Speaker and turn position information.
        context = self.speaker_embeddings(speaker_ids) + sinusoidal_position_encoding(
            num_turns, config.hidden_size, device=device, dtype=dtype
        )
        states = {m: self.embedding_dropout(compressed[m]) + context for m in self.modalities}

        # 3. CMA-Transformer: fine-grained representations.
        for layer in self.layers:
            states = layer(states, present)
        modality_hidden_states = {m: self.final_norms[m](states[m]) for m in self.modalities}

        # 4. Variational fusion: coarse-grained representation.
        modality_present = torch.stack([present[m] for m in self.modalities], dim=-1)
        fused, fused_mean, fused_log_variance, fusion_weights = self.fusion(
            torch.stack([modality_hidden_states[m] for m in self.modalities], dim=-2), modality_present
        )

        # 5. Predictions at both granularities.
        logits = self.classifier(fused)
        modality_logits = {
            m: self.modality_classifiers[m](self.classifier_dropout(modality_hidden_states[m]))
            for m in self.modalities
        }

        loss = loss_components = None
        if labels is not None:
            loss, loss_components = self.compute_loss(
                labels=labels.to(device),
                logits=logits,
                modality_logits=modality_logits,
                inputs=inputs,
                reconstructed=reconstructed,
                modality_hidden_states=modality_hidden_states,
                fused_mean=fused_mean,
                fused_log_variance=fused_log_variance,
                fused_mask=modality_present.any(dim=-1),
                present=present,
            )

        output = CMATHOutput(
            loss=loss,
            logits=logits,
            modality_logits=modality_logits,
            loss_components=loss_components,
            compressed_hidden_states=compressed,
            reconstructed_features=reconstructed,
            modality_hidden_states=modality_hidden_states,
            fused_hidden_states=fused,
            fused_mean=fused_mean,
            fused_log_variance=fused_log_variance,
            fusion_weights=fusion_weights,
        )
        return output if return_dict else output.to_tuple()

    def compute_loss(
        self,
        labels,
        logits,
        modality_logits,
        inputs,
        reconstructed,
        modality_hidden_states,
        fused_mean,
        fused_log_variance,
        fused_mask,
        present,
    ):
        """The CMATH objective; returns the weighted loss and its unweighted components (see module docstring)."""
        config = self.config
        class_weights = None
        if config.class_weights is not None:
            class_weights = torch.tensor(config.class_weights, dtype=torch.float32, device=logits.device)
        labelled = labels != -100
        zero = logits.new_zeros((), dtype=torch.float32)
        temperature = config.distillation_temperature

        classification = masked_nll_loss(logits, labels, labelled & fused_mask, class_weights)
        kl = gaussian_kl_divergence(fused_mean, fused_log_variance, fused_mask)
        teacher_log_probs = F.log_softmax(logits.float() / temperature, dim=-1)
        modality_classification = reconstruction = logit_distillation = feature_distillation = zero
        for modality in self.modalities:
            valid = present[modality]
            modality_classification = modality_classification + masked_nll_loss(
                modality_logits[modality], labels, labelled & valid, class_weights
            )
            reconstruction = reconstruction + masked_reconstruction_loss(
                reconstructed[modality], inputs[modality], valid
            )
            student_log_probs = F.log_softmax(modality_logits[modality].float() / temperature, dim=-1)
            logit_distillation = logit_distillation + masked_kl_divergence(teacher_log_probs, student_log_probs, valid)
            feature_distillation = feature_distillation + masked_cosine_distance(
                modality_hidden_states[modality], fused_mean, valid
            )
        components = {
            "classification": classification,
            "modality_classification": modality_classification,
            "reconstruction": reconstruction,
            "kl": kl,
            "logit_distillation": logit_distillation,
            "feature_distillation": feature_distillation,
        }
        weights = config.loss_weights()
        loss = sum(weights[name] * value for name, value in components.items())
        return loss, components


# Copied from hf_erc.models.sdt.modeling_sdt.masked_nll_loss
def masked_nll_loss(logits, labels, mask, class_weights=None):
    """Mean negative log-likelihood over positions where `mask` is True, weighted by `class_weights[label]`."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    targets = labels.clamp(min=0)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    weights = mask.to(log_probs.dtype) if class_weights is None else class_weights[targets] * mask
    return torch.where(mask, nll * weights, torch.zeros_like(nll)).sum() / weights.sum().clamp(min=1e-12)


# Copied from hf_erc.models.sdt.modeling_sdt.masked_kl_divergence
def masked_kl_divergence(teacher_log_probs, student_log_probs, mask):
    """Mean over positions where `mask` is True of KL(teacher ‖ student), summed over classes."""
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)
    return torch.where(mask, kl, torch.zeros_like(kl)).sum() / mask.sum().clamp(min=1)


def masked_reconstruction_loss(reconstruction, target, mask):
    """Squared Frobenius norm of the residual over the rows where `mask` is True, per element of those rows."""
    residual = (reconstruction.float() - target.float()).pow(2).sum(dim=-1)
    residual = torch.where(mask, residual, torch.zeros_like(residual))
    return residual.sum() / (mask.sum().clamp(min=1) * target.shape[-1])


def gaussian_kl_divergence(mean, log_variance, mask):
    """Mean over positions where `mask` is True of KL(N(mean, exp(log_variance)) ‖ N(0, I)), summed over dims."""
    mean, log_variance = mean.float(), log_variance.float()
    kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).sum(dim=-1)
    return torch.where(mask, kl, torch.zeros_like(kl)).sum() / mask.sum().clamp(min=1)


def masked_cosine_distance(student, teacher, mask):
    """Mean over positions where `mask` is True of 1 - cos(student, teacher)."""
    distance = 1.0 - F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=1e-6)
    return torch.where(mask, distance, torch.zeros_like(distance)).sum() / mask.sum().clamp(min=1)


__all__ = ["CMATHForEmotionRecognition", "CMATHOutput", "CMATHPreTrainedModel"]
