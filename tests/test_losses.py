"""Distillation losses against values worked out by hand (plain ``math`` on small
tensors, never the same torch formula again), plus the layer maps."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

import hub.losses
from hub.losses import (
    attention_mse_loss,
    hidden_mse_loss,
    kd_kl_loss,
    prediction_loss,
    uniform_layer_map,
    validate_layer_map,
)

LN3 = math.log(3.0)


def close(tensor: torch.Tensor, expected: float, tol: float = 1e-6) -> bool:
    return abs(float(tensor.detach()) - expected) < tol


# ---------------------------------------------------------------- kd_kl_loss


def test_kd_kl_known_value_T1():
    # teacher logits [0, ln 3] -> softmax [1/4, 3/4]; student [0, 0] -> [1/2, 1/2]
    # KL(p_T || p_S) = 1/4 ln((1/4)/(1/2)) + 3/4 ln((3/4)/(1/2))
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert expected == pytest.approx(0.130812, abs=1e-6)
    loss = kd_kl_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), temperature=1.0)
    assert close(loss, expected)


def test_kd_kl_known_value_T2_has_T_squared_factor():
    # at T = 2 the teacher logits become [0, ln(3)/2] -> softmax [1/(1+sqrt 3), sqrt 3/(1+sqrt 3)]
    s3 = math.sqrt(3.0)
    p = [1 / (1 + s3), s3 / (1 + s3)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    loss = kd_kl_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), temperature=2.0)
    assert close(loss, 4.0 * kl)
    # and T^2 really is applied: the loss is not the bare KL
    assert not close(loss, kl, tol=1e-3)


def test_kd_kl_is_a_batch_mean():
    # row 1: the known value; row 2: identical logits -> 0. Mean = known / 2
    known = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    s = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    t = torch.tensor([[0.0, LN3], [1.0, 2.0]])
    assert close(kd_kl_loss(s, t), known / 2)


def test_kd_kl_zero_when_logits_equal():
    logits = torch.tensor([[0.3, -1.2, 2.0], [5.0, 5.0, -5.0]])
    for t in (0.5, 1.0, 4.0):
        assert abs(float(kd_kl_loss(logits, logits.clone(), temperature=t))) < 1e-6


def test_kd_kl_shift_invariant():
    # softmax ignores a constant added to every logit
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[10.0, 10.0 + LN3]])
    assert close(kd_kl_loss(s, t), 0.25 * math.log(0.5) + 0.75 * math.log(1.5))


@pytest.mark.parametrize("t", [0.0, -1.0])
def test_kd_kl_bad_temperature(t):
    with pytest.raises(ValueError, match="temperature"):
        kd_kl_loss(torch.zeros(1, 2), torch.zeros(1, 2), temperature=t)


# ---------------------------------------------------------------- prediction_loss

# student [0, 0], label 1: CE = -ln(1/2) = ln 2
KL_KNOWN = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)


def test_prediction_loss_mixes_ce_and_kl():
    s, t, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), torch.tensor([1])
    loss = prediction_loss(s, t, y, temperature=1.0, alpha=0.3)
    assert close(loss, 0.3 * math.log(2) + 0.7 * KL_KNOWN)


def test_prediction_loss_temperature_applies_to_kl_only():
    s, t, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]]), torch.tensor([1])
    s3 = math.sqrt(3.0)
    kl_t2 = sum(p * math.log(p / 0.5) for p in (1 / (1 + s3), s3 / (1 + s3)))
    loss = prediction_loss(s, t, y, temperature=2.0, alpha=0.5)
    assert close(loss, 0.5 * math.log(2) + 0.5 * 4.0 * kl_t2)


def test_prediction_loss_alpha_one_is_pure_ce():
    # student [ln 3, 0] -> p = [3/4, 1/4]; labels [0, 1]: CE = (-ln 3/4 - ln 1/4) / 2
    s = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    t = torch.tensor([[-7.0, 9.0], [4.0, -2.0]])  # must not matter
    loss = prediction_loss(s, t, torch.tensor([0, 1]), alpha=1.0)
    assert close(loss, (-math.log(0.75) - math.log(0.25)) / 2)


def test_prediction_loss_without_labels_is_kl_only():
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]])
    assert close(prediction_loss(s, t, None, alpha=0.5), KL_KNOWN)
    assert close(prediction_loss(s, t, None, alpha=1.0), KL_KNOWN)


def test_prediction_loss_ignored_labels_drop_their_ce_only():
    """A label -100 (QA's made negatives under ``--negative-target teacher``) drops
    that example's CE, the mean over the others; the KD term keeps every example.
    Row 0: student [0, 0] -> CE(label 1) = ln 2, KL to [1/4, 3/4] = KL_KNOWN; row 1
    (ignored): student = teacher, KL 0."""
    s = torch.tensor([[0.0, 0.0], [0.0, LN3]])
    t = torch.tensor([[0.0, LN3], [0.0, LN3]])
    loss = prediction_loss(s, t, torch.tensor([1, -100]), alpha=0.3)
    assert close(loss, 0.3 * math.log(2) + 0.7 * KL_KNOWN / 2)
    # no label left in the batch: the KD term alone, weighed by 1 - alpha as beside a CE term (never NaN)
    assert close(prediction_loss(s, t, torch.tensor([-100, -100]), alpha=0.3), 0.7 * KL_KNOWN / 2)


def test_prediction_loss_alpha_zero_is_kl_only():
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, LN3]])
    assert close(prediction_loss(s, t, torch.tensor([0]), alpha=0.0), KL_KNOWN)


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_prediction_loss_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        prediction_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([0]), alpha=alpha)


def test_prediction_loss_gradients_flow():
    s = torch.tensor([[0.0, 0.0]], requires_grad=True)
    t = torch.tensor([[0.0, LN3]])
    loss = prediction_loss(s, t, torch.tensor([1]), alpha=0.5)
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    # d/ds [0.5 CE + 0.5 KL] = 0.5 (p_S - onehot) + 0.5 (p_S - p_T), p_S = [1/2, 1/2]
    expected = [0.5 * (0.5 - 0) + 0.5 * (0.5 - 0.25), 0.5 * (0.5 - 1) + 0.5 * (0.5 - 0.75)]
    assert s.grad[0].tolist() == pytest.approx(expected, abs=1e-6)


# ---------------------------------------------------------------- hidden_mse_loss


def test_hidden_mse_plain():
    # differences 1, 2, 3, 0 -> squares 1, 4, 9, 0 -> mean 14 / 4
    s = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    t = torch.tensor([[[0.0, 0.0], [0.0, 4.0]]])
    assert close(hidden_mse_loss(s, t), 14 / 4)


def test_hidden_mse_masks_padding():
    # B=1, L=3, D=2; position 2 is padding
    s = torch.tensor([[[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]]])
    t = torch.zeros(1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    # real squares: 1 + 1 + 0 + 4 = 6 over 2 tokens * 2 dims
    assert close(hidden_mse_loss(s, t, mask), 6 / 4)
    s_bad = s.clone()
    s_bad[0, 2] = 1e6  # a huge difference at the padded position changes nothing
    assert close(hidden_mse_loss(s_bad, t, mask), 6 / 4)
    # whereas without the mask it would count
    assert float(hidden_mse_loss(s_bad, t)) > 1e10


def test_hidden_mse_mask_over_batch():
    # row 0: both tokens real, squares 1,1 | 1,1; row 1: one real token, squares 4,4; padded token ignored
    s = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[2.0, 2.0], [50.0, 50.0]]])
    t = torch.zeros(2, 2, 2)
    mask = torch.tensor([[1, 1], [1, 0]])
    assert close(hidden_mse_loss(s, t, mask), (4 * 1 + 2 * 4) / (3 * 2))


def test_hidden_mse_with_projection():
    # D_S = 2 -> D_T = 3 via W = [[1, 0], [0, 1], [1, 1]], b = [0, 0, 1]
    proj = torch.nn.Linear(2, 3)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        proj.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    s = torch.tensor([[[1.0, 2.0]]])  # -> projected [1, 2, 4]
    t = torch.tensor([[[1.0, 0.0, 0.0]]])  # differences 0, 2, 4 -> squares 0, 4, 16
    assert close(hidden_mse_loss(s, t, projection=proj), 20 / 3)
    loss = hidden_mse_loss(s, t, torch.tensor([[1]]), projection=proj)
    assert close(loss, 20 / 3)
    loss.backward()  # the projection learns
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_hidden_mse_shape_mismatch_raises():
    with pytest.raises(ValueError, match="hidden shapes differ"):
        hidden_mse_loss(torch.zeros(1, 2, 4), torch.zeros(1, 2, 8))


# ---------------------------------------------------------------- attention_mse_loss


def test_attention_mse_plain():
    # B=1, H=1, L=2: differences [[0.5, -0.5], [0, 0]] -> squares .25 .25 0 0 -> mean 0.125
    s = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    t = torch.tensor([[[[0.5, 0.5], [0.5, 0.5]]]])
    assert close(attention_mse_loss(s, t), 0.125)


def test_attention_mse_masks_padded_queries_and_keys():
    # L=3, token 2 padded: only the top-left 2x2 block counts
    s = torch.zeros(1, 1, 3, 3)
    t = torch.zeros(1, 1, 3, 3)
    s[0, 0, :2, :2] = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # squares 1, 0, 0, 4
    mask = torch.tensor([[1, 1, 0]])
    assert close(attention_mse_loss(s, t, mask), 5 / 4)
    s_bad = s.clone()
    s_bad[0, 0, 2, :] = 100.0  # padded query row
    s_bad[0, 0, :, 2] = -100.0  # padded key column
    assert close(attention_mse_loss(s_bad, t, mask), 5 / 4)


def test_attention_mse_equal_heads_compared_head_by_head():
    # H=2, L=1: head squares 1 and 9 -> mean 5 (averaging heads first would give ((1+3)/2)^2 = 4)
    s = torch.tensor([[[[1.0]], [[3.0]]]])
    t = torch.zeros(1, 2, 1, 1)
    assert close(attention_mse_loss(s, t), 5.0)
    assert close(attention_mse_loss(s, t, torch.tensor([[1]])), 5.0)


def test_attention_mse_head_count_mismatch_averages_heads():
    # H_S = 1, H_T = 2, L = 2. Teacher heads [[1,0],[0,1]] and [[0,1],[1,0]] average to all 0.5
    t = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])
    s_same = torch.full((1, 1, 2, 2), 0.5)
    assert abs(float(attention_mse_loss(s_same, t))) < 1e-9
    # student [[1, 0], [1, 0]]: differences to 0.5 are +-0.5 everywhere -> 0.25
    s = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    assert close(attention_mse_loss(s, t), 0.25)
    # with the second token padded only pair (0, 0) counts: (1 - 0.5)^2
    assert close(attention_mse_loss(s, t, torch.tensor([[1, 0]])), 0.25)


# ---------------------------------------------------------------- layer maps


@pytest.mark.parametrize(
    "n_s, n_t, expected",
    [(3, 6, [2, 4, 6]), (4, 12, [3, 6, 9, 12]), (4, 6, [1, 3, 4, 6]), (2, 4, [2, 4]), (1, 5, [5]), (4, 4, [1, 2, 3, 4])],
)
def test_uniform_layer_map(n_s, n_t, expected):
    assert uniform_layer_map(n_s, n_t) == expected
    assert validate_layer_map(expected, n_s, n_t) == expected  # always a valid map


def test_uniform_layer_map_more_student_layers_raises():
    with pytest.raises(ValueError, match="more layers"):
        uniform_layer_map(6, 4)


@pytest.mark.parametrize("n_s, n_t", [(0, 4), (2, 0)])
def test_uniform_layer_map_nonpositive_raises(n_s, n_t):
    with pytest.raises(ValueError, match="positive"):
        uniform_layer_map(n_s, n_t)


def test_validate_layer_map_valid():
    assert validate_layer_map([1, 3], 2, 4) == [1, 3]
    assert validate_layer_map(["2", "4"], 2, 4) == [2, 4]  # CLI strings become ints


@pytest.mark.parametrize(
    "layer_map, match",
    [
        ([1, 2, 3], "3 entries for a 2-layer"),
        ([1], "1 entries for a 2-layer"),
        ([0, 2], "outside the teacher's layers 1..4"),
        ([2, 5], "outside the teacher's layers 1..4"),
        ([3, 2], "strictly increasing"),
        ([2, 2], "strictly increasing"),
    ],
)
def test_validate_layer_map_invalid(layer_map, match):
    with pytest.raises(ValueError, match=match):
        validate_layer_map(layer_map, 2, 4)


def test_losses_doctests():
    result = doctest.testmod(hub.losses)
    assert result.attempted >= 3 and result.failed == 0
