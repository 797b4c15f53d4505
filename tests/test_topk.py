"""The top-k collector (topk.py) against a lexsort reference: dense blocks,
chosen candidates, per-query positions, exact ties, thresholds."""

import numpy as np
import pytest

from ilias_knn import topk as topk_module
from ilias_knn.topk import TopK, decode_keys, score_keys


def lexsort_topk(scores, positions, k):
    """Reference: per query, descending score, ties by ascending position."""
    positions = np.broadcast_to(positions, scores.shape)
    order = np.lexsort((positions, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(positions, order, 1)


@pytest.mark.parametrize("room", [None, 1, 7])
@pytest.mark.parametrize("k,block", [(5, 3), (7, 16), (40, 11), (200, 64), (40, 40), (39, 120), (1, 150), (110, 150)])
def test_topk_equals_sorted_reference_with_many_ties(k, block, room):
    """The CPU float32 engine: exact order, ties by ascending position. block > k:
    the block's own k-th best raises the thresholds (ties at that score); a small
    room forces cuts and the one-query overflow path in nearly every block."""
    rng = np.random.default_rng(k)
    scores = rng.integers(-3, 4, size=(9, 150)).astype(np.float32)  # few values: ties everywhere
    keep = rng.random(150) < 0.8  # filtered positions, as with selected ids
    positions = np.flatnonzero(keep)
    topk = TopK(9, k, room=room)
    for start in range(0, len(positions), block):
        pos = positions[start : start + block]
        topk.add(scores[:, pos], pos)
    values, found = topk.result()
    ref_values, ref_found = lexsort_topk(scores[:, positions], positions, k)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("seed", range(6))
def test_topk_random_streams_against_reference(seed):
    """Random sizes, k, blocks and query groups; continuous scores (thresholds
    rise as in a real shard), signed zeros (-0.0 ties +0.0) and duplicated scores."""
    rng = np.random.default_rng(seed)
    nq, n, k = int(rng.integers(1, 20)), int(rng.integers(1, 3000)), int(rng.integers(1, 400))
    scores = rng.standard_normal((nq, n)).astype(np.float32)
    scores[:, rng.random(n) < 0.05] = 0.0
    scores[:, rng.random(n) < 0.05] = -0.0
    scores[:, 1::7] = scores[:, ::7][:, : scores[:, 1::7].shape[1]]  # exact duplicates
    topk = TopK(nq, k, group_rows=int(rng.integers(1, 8)))
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, 700)))
        topk.add(scores[:, start:stop], np.arange(start, stop))
        start = stop
    values, found = topk.result()
    ref_values, ref_found = lexsort_topk(scores + np.float32(0), np.arange(n), k)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("k,width", [(30, 30), (30, 50), (64, 40)])
def test_topk_per_query_positions_as_in_merge(k, width):
    """Per-query positions (the merge of sorted partials), ties everywhere."""
    rng = np.random.default_rng(width)
    topk, all_scores, all_pos = TopK(6, k), [], []
    for part in range(4):
        scores = -np.sort(-rng.integers(0, 5, size=(6, width)).astype(np.float32), axis=1)
        pos = np.sort(rng.choice(1000, size=(6, width), replace=False), axis=1) + part * 1000
        topk.add(scores, pos)
        all_scores.append(scores)
        all_pos.append(pos)
    ref_values, ref_found = lexsort_topk(np.hstack(all_scores), np.hstack(all_pos), k)
    values, found = topk.result()
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(values, ref_values)


def candidates_above(scores, positions, thresholds, slack):
    """What a filtering scorer hands over: every entry at or above its query's
    threshold minus ``slack`` (a bound's width), as ascending (query, position, score)."""
    rows, cols = np.nonzero(scores >= (thresholds - slack)[:, None])
    return rows, positions[cols], scores[rows, cols]


@pytest.mark.parametrize("seed", range(8))
def test_candidates_and_dense_blocks_give_the_dense_result(seed):
    """The bf16 and GPU scorers hand over only entries near or above each query's
    threshold (dense blocks until it has k): the top-k is that of all scores."""
    rng = np.random.default_rng(seed)
    nq, n, k = int(rng.integers(1, 30)), int(rng.integers(50, 3000)), int(rng.integers(1, 300))
    levels = rng.choice([0, 4, 50])  # many exact ties, or none
    scores = rng.standard_normal((nq, n)).astype(np.float32)
    if levels:
        scores = np.round(scores * levels / 4).astype(np.float32)
    positions = np.arange(n) * 3 + 5  # not consecutive
    collector = TopK(nq, k, group_rows=int(rng.integers(1, 9)))
    start = 0
    while start < n:
        stop = min(n, start + int(rng.integers(1, 500)))
        block, pos = scores[:, start:stop], positions[start:stop]
        thresholds = collector.thresholds
        if not np.isfinite(thresholds).all():
            collector.add(block, pos)
        else:
            collector.add_candidates(*candidates_above(block, pos, thresholds, float(rng.choice([0, 0.5]))))
        start = stop
    ref_values, ref_found = lexsort_topk(scores, positions, k)
    values, found = collector.result()
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("seed", range(4))
def test_thresholds_bound_the_kth_best_from_below(seed):
    """Never above the k-th best so far (an entry they exclude cannot enter);
    exact once the reservoirs are cut (result() cuts)."""
    rng = np.random.default_rng(seed)
    nq, k = 7, 20
    collector = TopK(nq, k, room=int(rng.integers(1, 40)))
    seen = np.empty((nq, 0), np.float32)
    for _ in range(30):
        block = rng.standard_normal((nq, int(rng.integers(1, 60)))).astype(np.float32)
        collector.add(block, np.arange(seen.shape[1], seen.shape[1] + block.shape[1]))
        seen = np.hstack([seen, block])
        kth = np.sort(seen, axis=1)[:, -k] if seen.shape[1] >= k else np.full(nq, -np.inf)
        assert (collector.thresholds <= kth).all()
    collector.result()
    np.testing.assert_array_equal(collector.thresholds, np.sort(seen, axis=1)[:, -k])


@pytest.mark.parametrize("k", [10, 1000])
def test_thresholds_stay_fresh_between_cuts(k):
    """A stream of blocks that each bring a few entries per query (a shard's
    steady state): on average over the queries, at most max(64, k / 4) seen
    scores lie at or above a threshold beyond the k-th best, after every block."""
    rng = np.random.default_rng(k)
    nq = 64
    collector = TopK(nq, k)
    fresh = max(64, k // 4)
    seen = np.empty((nq, 0), np.float32)
    worst = 0.0
    for step in range(60):
        block = rng.standard_normal((nq, 2000)).astype(np.float32)
        collector.add(block, np.arange(seen.shape[1], seen.shape[1] + block.shape[1]))
        seen = np.hstack([seen, block])
        if seen.shape[1] >= 2 * k:
            above = (seen >= collector.thresholds[:, None]).sum(axis=1)
            worst = max(worst, above.mean() - k)
    assert worst <= fresh, worst
    assert worst > fresh / 4  # cuts are not made after every block either


def test_candidates_overflowing_one_query_are_cut_alone():
    """More candidates for one query than its reservoir holds (ties at the k-th)."""
    collector = TopK(3, 4, room=2)
    collector.add(np.zeros((3, 4), np.float32), np.arange(4))
    rows = np.array([1] * 9 + [2])
    collector.add_candidates(rows, np.arange(100, 110), np.array([0, 1, 1, 0, 2, 0, 1, 3, 0, 0], np.float32))
    values, found = collector.result()
    np.testing.assert_array_equal(values[1], [3, 2, 1, 1])
    np.testing.assert_array_equal(found[1], [107, 104, 101, 102])
    np.testing.assert_array_equal(found[0], [0, 1, 2, 3])
    np.testing.assert_array_equal(found[2], [0, 1, 2, 3])  # 0.0 at 109 ties, later position loses


@pytest.mark.parametrize("little_endian", [True, False])  # halves written in place, or shift-and-or
def test_score_keys_order_like_scores_then_positions_and_decode_exactly(monkeypatch, little_endian):
    if not little_endian or topk_module.LITTLE_ENDIAN:
        monkeypatch.setattr(topk_module, "LITTLE_ENDIAN", little_endian)
    else:
        pytest.skip("big-endian machine: the in-place halves path does not apply")

    special = np.array([np.inf, 3.4e38, 1.0, 1e-45, 0.0, -0.0, -1e-45, -1.0, -3.4e38, -np.inf], np.float32)
    scores = np.repeat(special, 2)
    positions = np.tile([7, 2**32 - 1], special.size)
    keys = score_keys(scores, positions)
    order = np.argsort(keys)
    expected = np.lexsort((positions, -(scores + np.float32(0))))
    np.testing.assert_array_equal(order, expected)
    values, found = decode_keys(keys)
    np.testing.assert_array_equal(values.view(np.uint32), (scores + np.float32(0)).view(np.uint32))
    np.testing.assert_array_equal(found, positions)


def test_topk_refuses_positions_beyond_32_bits():
    with pytest.raises(ValueError, match="positions"):
        TopK(1, 3).add(np.zeros((1, 2), np.float32), np.array([0, 2**32]))


@pytest.mark.parametrize("high", [50, 2**40, 2**62])  # one sort key, or the argsort fallback
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 5), (300, 40)])
def test_sorted_unique_and_unique_inverse_equal_numpy_unique(shape, high):
    from ilias_knn.arrays import sorted_unique, unique_inverse

    rng = np.random.default_rng(len(shape))
    values = rng.integers(0, 50, size=shape) * (high // 50)
    expected, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(sorted_unique(values), expected)
    got, got_inverse = unique_inverse(values)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_inverse, inverse.reshape(shape))
    if high == 50:  # small enough for the dense-mask paths
        np.testing.assert_array_equal(sorted_unique(values, bound=50), expected)
        got, got_inverse = unique_inverse(values, bound=50)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got_inverse, inverse.reshape(shape))


@pytest.mark.parametrize("seed", range(4))
def test_repeated_values_equal_a_counter(seed):
    """Hash prefilter + exact check: the same answer as counting, for ids of
    several widths (not multiples of 8) including empty and prefix-sharing ones."""
    from collections import Counter

    from ilias_knn.arrays import repeated_values

    rng = np.random.default_rng(seed)
    pool = [b"", b"a", b"ab", b"yfcc100m/0000001", b"yfcc100m/00000010", b"inst/q1/p"] + [
        f"id{i}".encode() * int(rng.integers(1, 5)) for i in range(300)
    ]
    ids = np.array([pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 400)))], dtype="S")
    expected = sorted(v for v, c in Counter(ids.tolist()).items() if c > 1)
    assert repeated_values(ids).tolist() == expected
    assert repeated_values(np.unique(ids)).tolist() == []
