"""The bf16 filter + exact rescoring path: the bound holds, and the top-k equals
the fp32 path and the float64 brute force, also on adversarial near-ties."""

import numpy as np
import pytest
import torch

from ilias_knn.scoring import OUTPUT_ROUNDING, Bf16Bound, candidate_floor
from ilias_knn.search import resolve_scoring
from ilias_knn.topk import RunningTopK
from ilias_knn.scoring import score_block


def run(queries, db, k, block, bound):
    topk = RunningTopK(queries.shape[0], k)
    for start in range(0, db.shape[0], block):
        x = db[start : start + block]
        score_block(topk, queries, bound, x, torch.arange(start, start + x.shape[0]))
    topk.finish()
    return topk.values.numpy(), topk.positions.numpy()


def reference(queries, db, k):
    s = queries.double().numpy() @ db.double().numpy().T
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), order


@pytest.mark.parametrize("scale", [1.0, 0.05, 30.0])
def test_bound_holds(scale):
    """|fp32 score - bf16 score| <= eps + 2^-7 |bf16 score| for every entry, any norms."""
    rng = np.random.default_rng(0)
    q = torch.from_numpy(rng.standard_normal((64, 256)).astype(np.float32)) * scale
    x = torch.from_numpy(rng.standard_normal((512, 256)).astype(np.float32))
    x[:10] *= 100  # uneven row norms
    bound = Bf16Bound(q)
    approx, eps = bound.block(x)
    exact = (q.double() @ x.double().T).float()
    err = (exact - approx.float()).abs()
    assert torch.all(err <= eps[:, None] + OUTPUT_ROUNDING * approx.float().abs())


def test_candidate_floor_is_conservative():
    t = torch.tensor([0.5, -0.5, 0.0, 1e-3])
    eps = torch.tensor([0.01, 0.01, 0.01, 0.01])
    floor = candidate_floor(t, eps)
    # any a at the floor could still reach t: a + eps + 2^-7 |a| >= t
    assert torch.all(floor + eps + OUTPUT_ROUNDING * floor.abs() <= t + 1e-6)
    assert torch.all(floor + eps + OUTPUT_ROUNDING * floor.abs() >= t - 1e-6)


@pytest.mark.parametrize("k,block", [(10, 64), (100, 256), (1, 32)])
def test_bf16_path_equals_brute_force_on_random_unit_vectors(k, block):
    rng = np.random.default_rng(k)
    q = rng.standard_normal((40, 128)).astype(np.float32)
    x = rng.standard_normal((3000, 128)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q, x = torch.from_numpy(q), torch.from_numpy(x)
    vals, pos = run(q, x, k, block, Bf16Bound(q))
    ref_vals, ref_pos = reference(q, x, k)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-5)
    np.testing.assert_array_equal(pos, ref_pos)


def test_adversarial_near_ties_where_bf16_order_is_wrong():
    """Scores 1e-5 apart (far below bf16 resolution, far above float32 noise), in
    an order bf16 cannot see: the result must still be the exact order."""
    rng = np.random.default_rng(7)
    d = 256
    q = rng.standard_normal((8, d))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    base = rng.standard_normal(d)
    base /= np.linalg.norm(base)
    rows = []
    for j in range(2000):
        # each row: base plus a component along q[0] that moves its score by j * 1e-5,
        # shuffled so that positions and exact order disagree
        rows.append(base + ((j * 7919) % 2000) * 1e-5 * q[0] + 1e-3 * rng.standard_normal(d) / np.sqrt(d))
    x = torch.from_numpy(np.array(rows, dtype=np.float32))
    qt = torch.from_numpy(q.astype(np.float32))
    approx = (qt.bfloat16() @ x.bfloat16().T).float()[0].numpy()
    exact = (qt.double() @ x.double().T)[0].numpy()
    top_exact = np.argsort(-exact, kind="stable")[:50]
    top_approx = np.argsort(-approx, kind="stable")[:50]
    assert set(top_exact) != set(top_approx)  # bf16 alone would get it wrong
    vals, pos = run(qt, x, 50, 128, Bf16Bound(qt))
    _, plain_pos = run(qt, x, 50, 128, None)
    ref_vals, ref_pos = reference(qt, x, 50)
    # query 0 is the adversarial one (gaps 1e-5); the random others see rows
    # within 1e-8 of each other, where only float32-level agreement is meaningful
    np.testing.assert_array_equal(pos[0], ref_pos[0])
    np.testing.assert_array_equal(pos, plain_pos)


def test_bf16_and_fp32_paths_agree_with_exact_ties():
    """Duplicated rows: exact ties must be ordered by position on both paths."""
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(50, 16)).astype(np.float32)
    x = torch.from_numpy(np.concatenate([x] * 40))  # every row repeated 40 times
    q = torch.from_numpy(rng.integers(-3, 4, size=(5, 16)).astype(np.float32))
    fast = run(q, x, 100, 64, Bf16Bound(q))
    plain = run(q, x, 100, 64, None)
    ref_vals, ref_pos = reference(q, x, 100)
    for vals, pos in (fast, plain):
        np.testing.assert_array_equal(pos, ref_pos)
        np.testing.assert_array_equal(vals, ref_vals.astype(np.float32))


def test_scoring_choice():
    assert resolve_scoring("fp32", "cpu") == "fp32"
    assert resolve_scoring("bf16", "cpu") == "bf16"
    assert resolve_scoring("auto", "cuda") == "bf16"
