"""Running top-k against a numpy lexsort reference, including exact ties."""

import numpy as np
import pytest
import torch

from ilias_knn.topk import RunningTopK, merge_sorted, select_block


def reference_topk(scores, k):
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), order


def run_blocks(scores, k, block, flush_width=None):
    topk = RunningTopK(scores.shape[0], k, flush_width=flush_width)
    for start in range(0, scores.shape[1], block):
        stop = min(start + block, scores.shape[1])
        topk.add(torch.from_numpy(scores[:, start:stop]), torch.arange(start, stop))
    topk.finish()
    return topk.values.numpy(), topk.positions.numpy()


@pytest.mark.parametrize("k,block", [(1, 7), (5, 3), (10, 64), (37, 16), (200, 50), (500, 100)])
@pytest.mark.parametrize("levels", [None, 4, 50])
@pytest.mark.parametrize("flush_width", [1, None, 10**6])
def test_running_topk_equals_lexsort(k, block, levels, flush_width):
    """levels quantises scores so that many exact ties cross block and k boundaries;
    flush_width covers merging every block, the default buffer, and one merge at the end."""
    rng = np.random.default_rng(k * 1000 + block)
    scores = rng.standard_normal((13, 300)).astype(np.float32)
    if levels:
        scores = np.round(scores * levels / 4).astype(np.float32)
    vals, pos = run_blocks(scores, k, block, flush_width)
    ref_vals, ref_pos = reference_topk(scores, k)
    np.testing.assert_array_equal(vals, ref_vals)
    np.testing.assert_array_equal(pos, ref_pos)


def test_all_equal_scores_keep_first_positions():
    scores = np.zeros((3, 100), np.float32)
    vals, pos = run_blocks(scores, 10, 17)
    np.testing.assert_array_equal(pos, np.tile(np.arange(10), (3, 1)))


def test_k_larger_than_database_returns_everything_sorted():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((4, 30)).astype(np.float32)
    vals, pos = run_blocks(scores, 1000, 8)
    ref_vals, ref_pos = reference_topk(scores, 1000)
    assert vals.shape == (4, 30)
    np.testing.assert_array_equal(pos, ref_pos)


def test_select_block_respects_threshold_strictly():
    scores = torch.tensor([[0.5, 0.9, 0.7, 0.7, 0.1]])
    vals, cols = select_block(scores, 2, threshold=torch.tensor([0.7]))
    # 0.7 equals the threshold: a later equal score loses the tie
    assert cols[0, 0].item() == 1 and vals[0, 0].item() == pytest.approx(0.9)
    assert (cols[0, 1:] == -1).all()


def test_merge_sorted_is_stable_first_list_wins_ties():
    a_vals = torch.tensor([[3.0, 2.0, 2.0]])
    a_pos = torch.tensor([[0, 1, 2]])
    b_vals = torch.tensor([[2.0, 1.0]])
    b_pos = torch.tensor([[10, 11]])
    vals, pos = merge_sorted(a_vals, a_pos, b_vals, b_pos, 4)
    assert pos.tolist() == [[0, 1, 2, 10]]
    assert vals.tolist() == [[3.0, 2.0, 2.0, 2.0]]


def lexsort_topk(scores, positions, k):
    """Reference: per query, descending score, ties by ascending position."""
    positions = np.broadcast_to(positions, scores.shape)
    order = np.lexsort((positions, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(positions, order, 1)


@pytest.mark.parametrize("room", [None, 1, 7])
@pytest.mark.parametrize("k,block", [(5, 3), (7, 16), (40, 11), (200, 64), (40, 40), (39, 120), (1, 150), (110, 150)])
def test_reservoir_topk_equals_sorted_reference_with_many_ties(k, block, room):
    """The CPU float32 engine: exact order, ties by ascending position. block > k:
    the block's own k-th best raises the thresholds (ties at that score); a small
    room forces cuts and the one-query overflow path in nearly every block."""
    from ilias_knn.reservoir_topk import ReservoirTopK

    rng = np.random.default_rng(k)
    scores = rng.integers(-3, 4, size=(9, 150)).astype(np.float32)  # few values: ties everywhere
    keep = rng.random(150) < 0.8  # filtered positions, as with selected ids
    positions = np.flatnonzero(keep)
    topk = ReservoirTopK(9, k, room=room)
    for start in range(0, len(positions), block):
        pos = positions[start:start + block]
        topk.add(scores[:, pos], pos)
    values, found = topk.result()
    ref_values, ref_found = lexsort_topk(scores[:, positions], positions, k)
    np.testing.assert_array_equal(found, ref_found)
    np.testing.assert_array_equal(values, ref_values)


@pytest.mark.parametrize("seed", range(6))
def test_reservoir_topk_random_streams_against_reference(seed):
    """Random sizes, k, blocks and query groups; continuous scores (thresholds
    rise as in a real shard), signed zeros (-0.0 ties +0.0) and duplicated scores."""
    from ilias_knn.reservoir_topk import ReservoirTopK

    rng = np.random.default_rng(seed)
    nq, n, k = int(rng.integers(1, 20)), int(rng.integers(1, 3000)), int(rng.integers(1, 400))
    scores = rng.standard_normal((nq, n)).astype(np.float32)
    scores[:, rng.random(n) < 0.05] = 0.0
    scores[:, rng.random(n) < 0.05] = -0.0
    scores[:, 1::7] = scores[:, ::7][:, : scores[:, 1::7].shape[1]]  # exact duplicates
    topk = ReservoirTopK(nq, k, group_rows=int(rng.integers(1, 8)))
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
def test_reservoir_topk_per_query_positions_as_in_merge(k, width):
    """Per-query positions (the merge of sorted partials), ties everywhere."""
    from ilias_knn.reservoir_topk import ReservoirTopK

    rng = np.random.default_rng(width)
    topk, all_scores, all_pos = ReservoirTopK(6, k), [], []
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


@pytest.mark.parametrize("little_endian", [True, False])  # halves written in place, or shift-and-or
def test_score_keys_order_like_scores_then_positions_and_decode_exactly(monkeypatch, little_endian):
    from ilias_knn import reservoir_topk
    from ilias_knn.reservoir_topk import decode_keys, score_keys

    if not little_endian or reservoir_topk.LITTLE_ENDIAN:
        monkeypatch.setattr(reservoir_topk, "LITTLE_ENDIAN", little_endian)
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


def test_reservoir_topk_refuses_positions_beyond_32_bits():
    from ilias_knn.reservoir_topk import ReservoirTopK

    with pytest.raises(ValueError, match="positions"):
        ReservoirTopK(1, 3).add(np.zeros((1, 2), np.float32), np.array([0, 2**32]))


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
        f"id{i}".encode() * int(rng.integers(1, 5)) for i in range(300)]
    ids = np.array([pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(0, 400)))], dtype="S")
    expected = sorted(v for v, c in Counter(ids.tolist()).items() if c > 1)
    assert repeated_values(ids).tolist() == expected
    assert repeated_values(np.unique(ids)).tolist() == []
