"""Losses the trainer adds when a student learns from a separate, frozen teacher.

A model's own objective (cross entropy, self-distillation between its modality heads,
reconstruction...) is computed inside its ``forward``; what lives here is only what
couples two models, so it is never shipped with a checkpoint.

All losses accept utterance-level tensors (``[N, C]``/``[N, D]``) or dialogue-level ones
(``[B, T, C]``/``[B, T, D]``) with a ``mask`` (``[N]`` or ``[B, T]``, true at real,
labelled utterances); they are averaged over the valid positions only. Batch-structure
losses (:func:`dist_kd_loss`, :func:`similarity_kd_loss`) treat the valid utterances of
the whole batch as their "batch".

Their formulas live in small core functions (:func:`dist_loss`,
:func:`similarity_distillation_loss`) over already-selected ``[N, C]``/``[N, D]`` rows, with
no masking and no detaching. MAGTKD's fusion uses the same losses inside its ``forward``
(shipped code, which cannot import ``hf_erc``), so ``modeling_magtkd.py`` holds copies of
the cores marked ``# Copied from hf_erc.training.losses.<name>``;
``scripts/check_copies.py`` keeps them identical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _valid_rows(tensor: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Flatten ``[..., D]`` to ``[N, D]``, keeping the positions where ``mask`` is true (all when ``None``)."""
    if mask is None:
        return tensor.reshape(-1, tensor.shape[-1])
    mask = mask.to(torch.bool)
    if mask.shape != tensor.shape[:-1]:
        raise ValueError(f"Mask of shape {tuple(mask.shape)} does not match a tensor of shape {tuple(tensor.shape)}.")
    return tensor[mask]


def _zero_like_graph(tensor: torch.Tensor) -> torch.Tensor:
    """A zero loss that stays attached to ``tensor``'s graph (for a batch without any valid position)."""
    return tensor.sum() * 0.0


def masked_cross_entropy(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> torch.Tensor:
    """Cross entropy averaged over the positions whose label is not ``ignore_index``.

    With class ``weight``, the average is weighted (PyTorch's convention: divided by the sum of
    the weights of the valid targets). A batch without any labelled position gives 0, not NaN.
    """
    logits = logits.reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1)
    if not (labels != ignore_index).any():
        return _zero_like_graph(logits)
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Response-based distillation (Hinton et al., 2015).

    ``T² · mean_i KL(softmax(z_t,i / T) ‖ softmax(z_s,i / T))`` over the valid positions ``i``. The
    ``T²`` factor keeps the gradient scale independent of the temperature.
    """
    student = _valid_rows(student_logits, mask)
    teacher = _valid_rows(teacher_logits, mask).detach()
    if student.shape[0] == 0:
        return _zero_like_graph(student_logits)
    student_log_probs = F.log_softmax(student / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher / temperature, dim=-1)
    per_position = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True).sum(-1)
    return per_position.mean() * temperature**2


def _pearson_rows(a, b, eps=1e-8):
    """Pearson correlation between matching rows of `a` and `b` (cosine of the centred rows)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(student_logits, teacher_logits, temperature, inter_weight=1.0, intra_weight=1.0):
    """DIST between `[N, C]` logits (the reference's `Logit_Loss`); every row counts, the teacher is *not* detached."""
    if student_logits.shape[0] == 0:
        return student_logits.sum() * 0.0
    student = F.softmax(student_logits / temperature, dim=-1)
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    inter_class = 1.0 - _pearson_rows(student, teacher).mean()
    intra_class = 1.0 - _pearson_rows(student.t(), teacher.t()).mean()
    return temperature**2 * (inter_weight * inter_class + intra_weight * intra_class)


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


def dist_kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 4.0,
    mask: torch.Tensor | None = None,
    inter_weight: float = 1.0,
    intra_weight: float = 1.0,
) -> torch.Tensor:
    """Correlation-based response distillation, the logit loss TelME's students use (DIST, Huang et al., 2022).

    With ``Y_s = softmax(Z_s / T)`` and ``Y_t = softmax(Z_t / T)`` (``N`` valid utterances × ``C``
    classes) and ``ρ`` the Pearson correlation:

    ``T² · [inter_weight · (1 − mean_i ρ(Y_s[i, :], Y_t[i, :])) + intra_weight · (1 − mean_c ρ(Y_s[:, c], Y_t[:, c]))]``

    The inter-class term matches each utterance's class ranking, the intra-class term how each
    class's probability varies over the batch. TelME uses ``T = 4`` on MELD (weight 1 in the total
    loss) and ``T = 2`` on IEMOCAP (weight 0.1).
    """
    student = _valid_rows(student_logits, mask)
    teacher = _valid_rows(teacher_logits, mask).detach()
    if student.shape[0] == 0:
        return _zero_like_graph(student_logits)
    return dist_loss(student, teacher, temperature, inter_weight, intra_weight)


def similarity_kd_loss(
    student_embeddings: torch.Tensor,
    teacher_embeddings: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Feature-based distillation on the similarity structure of the batch (TelME's feature loss).

    With ``t_i`` and ``s_i`` the L2-normalised teacher and student embeddings of the ``N`` valid
    utterances (same dimension), the teacher's own similarities give the target distribution and
    the teacher-to-student similarities the prediction, each row a softmax over the batch:

    ``P = softmax_row(t tᵀ / τ)``, ``Q = softmax_row(t sᵀ / τ)``, loss ``= (1/N) Σ_i KL(P_i ‖ Q_i)``.

    It pulls student utterance ``j`` towards teacher utterance ``i`` as much as the teacher's
    utterances ``i`` and ``j`` are alike, transferring the relations rather than the raw features.
    TelME uses ``τ = 1``.
    """
    if student_embeddings.shape[-1] != teacher_embeddings.shape[-1]:
        raise ValueError(
            f"Student embeddings have {student_embeddings.shape[-1]} dimensions and teacher embeddings "
            f"{teacher_embeddings.shape[-1]}: feature distillation compares them directly, so the student must "
            "project to the teacher's size (TelME: 768)."
        )
    student = _valid_rows(student_embeddings, mask)
    teacher = _valid_rows(teacher_embeddings, mask).detach()
    if student.shape[0] == 0:
        return _zero_like_graph(student_embeddings)
    return similarity_distillation_loss(student, teacher, temperature)


RESPONSE_KD_LOSSES = {"kl": kd_kl_loss, "dist": dist_kd_loss}
