"""gecko_loss against a plain numpy transcription of paper Eq. 2 and Eq. 3."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gecko_jax.training.losses import gecko_logits, gecko_loss, positive_accuracy


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def eq3_numpy(q, p, n=None, tau=0.05, same_tower=True, dup_pos=None):
    """Eq. 3 written term by term, in float64. ``dup_pos[i]`` lists j whose p_j+ is masked."""
    q, p = np.asarray(q, np.float64), np.asarray(p, np.float64)
    batch = len(q)
    total = 0.0
    for i in range(batch):
        numerator = math.exp(_cos(q[i], p[i]) / tau)
        denominator = 0.0
        for j in range(batch):
            if dup_pos is None or j not in dup_pos[i]:
                denominator += math.exp(_cos(q[i], p[j]) / tau)
            if same_tower and j != i:
                denominator += math.exp(_cos(q[i], q[j]) / tau)
        if n is not None:
            denominator += math.exp(_cos(q[i], np.asarray(n[i], np.float64)) / tau)
        total += -math.log(numerator / denominator)
    return total / batch


def _random(batch=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(3)]


@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0])
def test_eq3_matches_numpy(tau):
    q, p, n = _random()
    got = float(gecko_loss(q, p, n, temperature=tau))
    assert got == pytest.approx(eq3_numpy(q, p, n, tau), rel=1e-5, abs=1e-5)


def test_eq2_prefinetuning_matches_numpy():
    q, p, _ = _random(seed=1)
    got = float(gecko_loss(q, p, None, temperature=0.1, same_tower=False))
    assert got == pytest.approx(eq3_numpy(q, p, None, 0.1, same_tower=False), rel=1e-5)


def test_only_own_hard_negative_is_a_candidate():
    q, p, n = _random(seed=2)
    # Make example 1's hard negative identical to query 0: if every p- were a candidate,
    # query 0's loss would rise sharply. Under Eq. 3 it must not change at all.
    n_other = n.copy()
    n_other[1] = q[0] * 3.0
    row0 = lambda neg: float(gecko_loss(q[:1], p[:1], neg[:1], temperature=0.05))
    assert row0(n) == row0(n_other)
    logits = gecko_logits(q, p, n_other, temperature=0.05)
    assert logits.shape == (6, 13)


def test_gradient_matches_finite_differences_of_numpy():
    q, p, n = _random(batch=4, dim=5, seed=3)
    tau = 0.3
    grads = jax.grad(lambda a, b, c: gecko_loss(a, b, c, temperature=tau), argnums=(0, 1, 2))(
        jnp.asarray(q), jnp.asarray(p), jnp.asarray(n)
    )
    eps = 1e-5
    for which, grad in enumerate(grads):
        arrays = [q.astype(np.float64), p.astype(np.float64), n.astype(np.float64)]
        numeric = np.zeros_like(arrays[which])
        for idx in np.ndindex(*numeric.shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[which][idx] += eps
            minus[which][idx] -= eps
            numeric[idx] = (eq3_numpy(*plus, tau) - eq3_numpy(*minus, tau)) / (2 * eps)
        np.testing.assert_allclose(np.asarray(grad), numeric, rtol=2e-3, atol=2e-4)


def test_hand_computed_two_by_two():
    # q1=(1,0) q2=(0,1); p1=(1,0) p2=(1,1)/sqrt2; n1=(-1,0) n2=(0,1); tau=1.
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    n = np.array([[-1.0, 0.0], [0.0, 1.0]], np.float32)
    c = 1 / math.sqrt(2)
    e = math.exp
    # row 1: positives cos 1 and c; other query cos 0; own negative cos -1.
    loss1 = -math.log(e(1) / (e(1) + e(c) + e(0) + e(-1)))
    # row 2: positives cos 0 and c; other query cos 0; own negative cos 1.
    loss2 = -math.log(e(c) / (e(0) + e(c) + e(0) + e(1)))
    expected = (loss1 + loss2) / 2
    assert float(gecko_loss(q, p, n, temperature=1.0)) == pytest.approx(expected, rel=1e-6)


def test_matryoshka_full_dim_equals_plain_and_prefix_sum():
    q, p, n = _random(dim=16, seed=4)
    plain = float(gecko_loss(q, p, n))
    assert float(gecko_loss(q, p, n, mrl_dims=[16])) == pytest.approx(plain, rel=1e-6)
    prefix = float(gecko_loss(q[:, :4], p[:, :4], n[:, :4]))
    both = float(gecko_loss(q, p, n, mrl_dims=[16, 4], mrl_weights=[1.0, 0.5]))
    assert both == pytest.approx(plain + 0.5 * prefix, rel=1e-5)
    assert float(gecko_loss(q, p, n, mrl_dims=[16, 4])) == pytest.approx(plain + prefix, rel=1e-5)
    with pytest.raises(ValueError, match="mrl_weights"):
        gecko_loss(q, p, n, mrl_dims=[16, 4], mrl_weights=[1.0])
    with pytest.raises(ValueError, match="outside"):
        gecko_loss(q, p, n, mrl_dims=[32])


def test_absent_negative_mask_equals_no_negative_for_that_row():
    q, p, n = _random(seed=5)
    mask = np.ones(6, bool)
    mask[2] = False
    masked = gecko_logits(q, p, n, negative_mask=mask, temperature=0.05)
    unmasked = gecko_logits(q, p, None, temperature=0.05)
    np.testing.assert_allclose(masked[2], unmasked[2], rtol=1e-6)
    assert not np.allclose(masked[3], unmasked[3])


def test_duplicate_positive_ids_are_not_negatives():
    q, p, n = _random(seed=6)
    ids = np.array([10, 11, 10, 12, 13, 11])
    got = float(gecko_loss(q, p, n, positive_ids=ids, temperature=0.1))
    dup = {i: {j for j in range(6) if j != i and ids[j] == ids[i]} for i in range(6)}
    assert got == pytest.approx(eq3_numpy(q, p, n, 0.1, dup_pos=dup), rel=1e-5)
    assert got != pytest.approx(float(gecko_loss(q, p, n, temperature=0.1)), rel=1e-3)


def test_example_mask_equals_dropping_padding_rows():
    q, p, n = _random(seed=7)
    keep = np.array([1, 1, 0, 1, 0, 1], bool)
    padded = float(gecko_loss(q, p, n, example_mask=keep))
    dropped = float(gecko_loss(q[keep], p[keep], n[keep]))
    assert padded == pytest.approx(dropped, rel=1e-5)


def test_positive_accuracy_counts_argmax_hits():
    q = np.eye(3, dtype=np.float32)
    p = np.array([[1, 0, 0], [0, 1, 0], [0, 0, -1]], np.float32)
    logits = gecko_logits(q, p, None, same_tower=False)
    assert float(positive_accuracy(logits)) == pytest.approx(2 / 3)
