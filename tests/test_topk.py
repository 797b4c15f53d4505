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


@pytest.mark.parametrize("k,block", [(5, 3), (7, 16), (40, 11), (200, 64), (40, 40), (39, 120), (1, 150), (110, 150)])
def test_heap_topk_equals_sorted_reference_with_many_ties(k, block):
    """The CPU float32 engine (faiss heaps): exact order, ties by ascending position.
    block >= k: the first block alone fills the heaps (ties at its k-th score)."""
    from ilias_knn.heap_topk import HeapTopK

    rng = np.random.default_rng(k)
    scores = rng.integers(-3, 4, size=(9, 150)).astype(np.float32)  # few values: ties everywhere
    keep = rng.random(150) < 0.8  # filtered positions, as with selected ids
    positions = np.flatnonzero(keep)
    heap = HeapTopK(9, k)
    for start in range(0, len(positions), block):
        pos = positions[start:start + block]
        heap.add(scores[:, pos], pos)
    values, found = heap.result()
    kept = scores[:, positions]
    order = np.lexsort((np.broadcast_to(positions, kept.shape), -kept), axis=1)[:, :k]
    np.testing.assert_array_equal(found, positions[order])
    np.testing.assert_array_equal(values, np.take_along_axis(kept, order, 1))


@pytest.mark.parametrize("k,width", [(30, 30), (30, 50), (64, 40)])
def test_heap_topk_per_query_positions_as_in_merge(k, width):
    """Per-query positions (the merge of sorted partials), ties everywhere."""
    from ilias_knn.heap_topk import HeapTopK

    rng = np.random.default_rng(width)
    heap, all_scores, all_pos = HeapTopK(6, k), [], []
    for part in range(4):
        scores = -np.sort(-rng.integers(0, 5, size=(6, width)).astype(np.float32), axis=1)
        pos = np.sort(rng.choice(1000, size=(6, width), replace=False), axis=1) + part * 1000
        heap.add(scores, pos)
        all_scores.append(scores)
        all_pos.append(pos)
    scores, pos = np.hstack(all_scores), np.hstack(all_pos)
    order = np.lexsort((pos, -scores), axis=1)[:, :k]
    values, found = heap.result()
    np.testing.assert_array_equal(found, np.take_along_axis(pos, order, 1))
    np.testing.assert_array_equal(values, np.take_along_axis(scores, order, 1))


@pytest.mark.parametrize("shape", [(0,), (1,), (7, 5), (300, 40)])
def test_sorted_unique_and_unique_inverse_equal_numpy_unique(shape):
    from ilias_knn.arrays import sorted_unique, unique_inverse

    values = np.random.default_rng(len(shape)).integers(0, 50, size=shape) << 33
    expected, inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(sorted_unique(values), expected)
    got, got_inverse = unique_inverse(values)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got_inverse, inverse.reshape(shape))
