"""Distillation losses: pure functions on tensors, plus the layer map.

Shapes: B batch, L sequence length, C classes (V: a vocabulary), D hidden width,
H heads, k tokens kept per position by a top-k teacher-logit cache, N positions.
``_S`` is the student, ``_T`` the teacher (TextBrewer's convention).

Attention maps: transformers returns attention *probabilities* (after the
softmax) with ``output_attentions=True``; TinyBERT's official code patched BERT
to return the pre-softmax *scores*. We match probabilities, because we never
re-implement BERT, and we mask padding explicitly: rows of padded queries and
columns of padded keys are excluded from the mean (TinyBERT instead replaced the
-10000 mask values by 0). When student and teacher have different head counts
we compare the head-averaged maps (B, 1, L, L); with equal counts, head by head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-distribution values (B,) or (B, L) over the positions that count."""
    if values.numel() == 0:  # no position counts: zero, not the NaN of an empty mean
        return values.sum()
    if mask is None or values.dim() == 1:
        return values.mean()
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def _positions(mask: torch.Tensor, *logits: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The rows of (B, L, C) logits at the positions where ``mask`` (B, L) is
    nonzero, as (N, C): token-level losses then softmax only the N positions that
    count (an MLM's ~15% of a (B, L, 30522) batch), not every position."""
    keep = mask.bool()
    return tuple(x[keep] for x in logits)


def kd_kl_loss(
    logits_S: torch.Tensor,
    logits_T: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
    divergence: str = "forward",
    beta: float = 0.5,
) -> torch.Tensor:
    """Divergence between temperature-softened teacher and student distributions, times T^2.

    logits_S, logits_T: (B, C) — one distribution per example — or (B, L, C) —
    one per position, averaged over the positions where ``mask`` (B, L) is 1.
    ``divergence``: ``forward`` KL(p_T || p_S) (Hinton; the default), ``reverse``
    KL(p_S || p_T) (mode-seeking, as in GKD/MiniLLM), or ``jsd``: the generalised
    Jensen-Shannon divergence of GKD with ``beta`` (beta * KL(p_T || m) +
    (1 - beta) * KL(p_S || m), m = beta * p_T + (1 - beta) * p_S). The temperature
    applies to this loss only, never to sampling. The T^2 factor keeps gradient
    magnitudes comparable across temperatures (Hinton et al., 2015).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if mask is not None and logits_S.dim() == 3:
        logits_S, logits_T, mask = *_positions(mask, logits_S, logits_T), None  # (N, C)
    log_p_S = F.log_softmax(logits_S.float() / temperature, dim=-1)
    log_p_T = F.log_softmax(logits_T.float() / temperature, dim=-1)
    if divergence == "forward":
        div = (log_p_T.exp() * (log_p_T - log_p_S)).sum(dim=-1)
    elif divergence == "reverse":
        div = (log_p_S.exp() * (log_p_S - log_p_T)).sum(dim=-1)
    elif divergence == "jsd":
        if not 0.0 < beta < 1.0:
            raise ValueError(f"jsd needs 0 < beta < 1, got {beta}")
        log_m = torch.logsumexp(torch.stack([log_p_T + math.log(beta), log_p_S + math.log(1 - beta)]), dim=0)
        div = beta * (log_p_T.exp() * (log_p_T - log_m)).sum(-1) + (1 - beta) * (log_p_S.exp() * (log_p_S - log_m)).sum(-1)
    else:
        raise ValueError(f"unknown divergence {divergence!r}; choose forward, reverse or jsd")
    return _masked_mean(div, mask) * temperature**2


def prediction_loss(
    logits_S: torch.Tensor,
    logits_T: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float = 1.0,
    alpha: float = 0.5,
    mask: torch.Tensor | None = None,
    divergence: str = "forward",
    beta: float = 0.5,
) -> torch.Tensor:
    """Loss = alpha * CE(student, hard labels) + (1 - alpha) * T^2 * D(teacher, student).

    logits (B, C) with labels (B,), or token-level logits (B, L, C) with labels
    (B, L) (-100 = ignore) and ``mask`` (B, L) of the positions that count.
    Labels None: the KD term alone. A label -100 drops that example's CE (the
    mean is over the others), as for token-level labels; when the batch has none
    left, the KD term alone is weighed by 1 - alpha, as beside a CE term.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if mask is not None and logits_S.dim() == 3:
        keep = mask.bool()
        logits_S, logits_T = _positions(keep, logits_S, logits_T)  # (N, C) with labels (N,): same loss, less memory
        labels, mask = (labels[keep] if labels is not None else None), None
    if labels is not None and not (labels != -100).any():  # no target left: no CE term, the KD term weighed as beside one
        return (1.0 - alpha) * kd_kl_loss(logits_S, logits_T, temperature, mask, divergence, beta)
    if labels is None or alpha == 0.0:
        return kd_kl_loss(logits_S, logits_T, temperature, mask, divergence, beta)
    kd = kd_kl_loss(logits_S, logits_T, temperature, mask, divergence, beta) if alpha < 1.0 else None
    if logits_S.dim() == 3:
        if mask is not None:
            labels = labels.masked_fill(mask == 0, -100)
        ce = F.cross_entropy(logits_S.float().flatten(0, 1), labels.flatten(), ignore_index=-100)
    else:
        ce = F.cross_entropy(logits_S.float(), labels)
    return ce if kd is None else alpha * ce + (1.0 - alpha) * kd


def topk_logits(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's k largest logits per position, for a compact logit cache.

    logits (B, L, V) -> (values (B, L, k), indices (B, L, k)), values sorted in
    descending order. Raw logits are kept (not probabilities), so any
    temperature can be applied when the cache is used (:func:`sparse_kl`).
    """
    if not 1 <= k <= logits.shape[-1]:
        raise ValueError(f"k must be in [1, V={logits.shape[-1]}], got {k}")
    values, indices = torch.topk(logits, k, dim=-1)
    return values, indices


def sparse_kl(student_logits: torch.Tensor, topk_values: torch.Tensor, topk_indices: torch.Tensor,
              mask: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
    """KD loss from a top-k teacher-logit cache, times T² (like :func:`kd_kl_loss`).

    student_logits (B, L, V) or (N, V); topk_values, topk_indices (B, L, k) or
    (N, k) from :func:`topk_logits` on the teacher; mask (B, L), 1 where the
    position counts (averaged over those), None for all.

    The approximation, exactly: with S the teacher's top-k token set at a
    position, p̃_T = softmax(topk_values / T) is the teacher *renormalised over S*
    (its tail mass 1 − P_T(S) is dropped), and log q_S = log_softmax(student_logits
    / T) over the *full* vocabulary, gathered at S (not renormalised). The loss
    per position is

        Σ_{i∈S} p̃_T(i) · (log p̃_T(i) − log q_S(i))
          = KL(p̃_T ‖ q̃_S) − log q_S(S),

    where q̃_S is the student renormalised over S and q_S(S) its mass on S. It is
    ≥ 0, and 0 only when the student puts all its mass on S in the teacher's
    proportions: it fits the teacher's top-k shape and pushes the student's mass
    off every other token, ignoring how the teacher spreads its tail. It equals
    the full forward KL(p_T ‖ q_S) when k = V.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if topk_values.shape != topk_indices.shape or topk_values.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(f"shapes disagree: student {tuple(student_logits.shape)}, "
                         f"values {tuple(topk_values.shape)}, indices {tuple(topk_indices.shape)}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1).gather(-1, topk_indices.long())  # (B, L, k)
    log_p = F.log_softmax(topk_values.float() / temperature, dim=-1)  # (B, L, k), renormalised over S
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, L) or (N,)
    return _masked_mean(per_position, mask) * temperature**2


def sparse_prediction_loss(
    logits_S: torch.Tensor,
    topk_values_T: torch.Tensor,
    topk_indices_T: torch.Tensor,
    labels: torch.Tensor | None,
    temperature: float = 1.0,
    alpha: float = 0.5,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`prediction_loss` with the teacher given as a top-k cache:
    alpha * CE(student, hard labels) + (1 - alpha) * :func:`sparse_kl`.

    logits_S (B, L, V); topk_values_T, topk_indices_T (B, L, k); labels (B, L)
    (-100 = ignore) or None; ``mask`` (B, L) of the positions that count. Only the
    forward divergence has a top-k form: the reverse KL and the JSD weigh every
    token by the teacher's probability, which the cache does not hold outside its k.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if mask is not None:
        keep = mask.bool()
        logits_S, topk_values_T, topk_indices_T = _positions(keep, logits_S, topk_values_T, topk_indices_T)  # (N, .)
        labels = labels[keep] if labels is not None else None
    if labels is None or alpha == 0.0:
        return sparse_kl(logits_S, topk_values_T, topk_indices_T, None, temperature)
    kd = sparse_kl(logits_S, topk_values_T, topk_indices_T, None, temperature) if alpha < 1.0 else None
    ce = F.cross_entropy(logits_S.float().flatten(0, -2), labels.flatten(), ignore_index=-100)
    return ce if kd is None else alpha * ce + (1.0 - alpha) * kd


def hidden_mse_loss(
    hidden_S: torch.Tensor,
    hidden_T: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    projection: torch.nn.Module | None = None,
) -> torch.Tensor:
    """MSE between student states (through a learned projection D_S -> D_T when
    widths differ) and teacher states, over non-padding tokens.

    hidden_S (B, L, D_S), hidden_T (B, L, D_T), attention_mask (B, L) of 0/1.
    Used for the embedding output (layer 0) and every mapped transformer layer.
    """
    if projection is not None:
        hidden_S = projection(hidden_S)
    hidden_S, hidden_T = hidden_S.float(), hidden_T.float()  # bf16 autocast: the loss in fp32
    if hidden_S.shape != hidden_T.shape:
        raise ValueError(
            f"hidden shapes differ after projection: {tuple(hidden_S.shape)} vs {tuple(hidden_T.shape)}"
        )
    sq = (hidden_S - hidden_T).pow(2)  # (B, L, D)
    if attention_mask is None:
        return sq.mean()
    mask = attention_mask.to(sq.dtype).unsqueeze(-1)  # (B, L, 1)
    return (sq * mask).sum() / (mask.sum() * sq.shape[-1]).clamp_min(1.0)


def attention_mse_loss(
    attention_S: torch.Tensor,
    attention_T: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between attention maps over real (query, key) pairs.

    attention_S (B, H_S, L, L), attention_T (B, H_T, L, L), attention_mask (B, L).
    With H_S != H_T both maps are averaged over heads first (see module doc).
    """
    attention_S, attention_T = attention_S.float(), attention_T.float()  # bf16 autocast: the loss in fp32
    if attention_S.shape[1] != attention_T.shape[1]:
        attention_S = attention_S.mean(dim=1, keepdim=True)
        attention_T = attention_T.mean(dim=1, keepdim=True)
    sq = (attention_S - attention_T).pow(2)  # (B, H, L, L)
    if attention_mask is None:
        return sq.mean()
    m = attention_mask.to(sq.dtype)
    pair = (m.unsqueeze(2) * m.unsqueeze(1)).unsqueeze(1)  # (B, 1, L, L): query and key both real
    return (sq * pair).sum() / (pair.sum() * sq.shape[1]).clamp_min(1.0)


def uniform_layer_map(n_student: int, n_teacher: int) -> list[int]:
    """TinyBERT's g(m) = m * N / M: for student layers m = 1..M, the teacher layer
    (1-based; 0 is the embedding output) it learns from. Non-integer ratios are
    floored, so the last student layer always maps to the last teacher layer.

    >>> uniform_layer_map(3, 6)
    [2, 4, 6]
    >>> uniform_layer_map(4, 12)
    [3, 6, 9, 12]
    >>> uniform_layer_map(4, 6)
    [1, 3, 4, 6]
    """
    if n_student < 1 or n_teacher < 1:
        raise ValueError("layer counts must be positive")
    if n_student > n_teacher:
        raise ValueError(f"student has more layers ({n_student}) than the teacher ({n_teacher})")
    return [(m * n_teacher) // n_student for m in range(1, n_student + 1)]


def validate_layer_map(layer_map: list[int], n_student: int, n_teacher: int) -> list[int]:
    """Check a custom map (one 1-based teacher layer per student layer, increasing)."""
    layer_map = [int(x) for x in layer_map]
    if len(layer_map) != n_student:
        raise ValueError(f"layer map has {len(layer_map)} entries for a {n_student}-layer student")
    for t in layer_map:
        if not 1 <= t <= n_teacher:
            raise ValueError(f"layer map entry {t} is outside the teacher's layers 1..{n_teacher}")
    if any(b <= a for a, b in zip(layer_map, layer_map[1:])):
        raise ValueError(f"layer map must be strictly increasing, got {layer_map}")
    return layer_map
