"""The bf16 scorer's choice between dense float32 and bf16-filtered blocks
(path_choice.py): fed made-up costs, never this machine's speed, it
converges whatever the first calls cost, follows costs that change, and
probes the path not taken at a bounded rate; the scorer's results stay
those of float32 whatever it chooses."""

import numpy as np
import pytest
from test_scoring import anisotropic, reference, unit

from ilias_knn.bf16 import Bf16Scorer
from ilias_knn.path_choice import DENSE, FILTERED, PathChooser
from ilias_knn.topk import TopK

BLOCKS = 128
DENSE_COST = 1e-9  # seconds per entry


def first_filtered_slow(path, block, first_filtered):
    """Filtering 3x cheaper than dense, its first block 10x as slow as the rest."""
    if path == DENSE:
        return DENSE_COST
    return DENSE_COST / 3 * (10 if block == first_filtered else 1)


def filtering_twice_as_expensive(path, block, first_filtered):
    return DENSE_COST * (2 if path == FILTERED else 1)


def flip_at_64(cheaper_first):
    def cost(path, block, first_filtered):
        cheap = cheaper_first if block < 64 else (DENSE if cheaper_first == FILTERED else FILTERED)
        return DENSE_COST * (0.5 if path == cheap else 1.5)

    return cost


def simulate(cost, blocks=BLOCKS, share=0.01):
    """(path, probe) of each block, the chooser fed ``cost(path, block, first
    filtered block)``; the first block is dense, as no query has k entries yet."""
    chooser, plan, first_filtered = PathChooser(), [], None
    for block in range(blocks):
        path, probe = chooser.plan() if block else (DENSE, False)
        if path == FILTERED and first_filtered is None:
            first_filtered = block
        seconds = cost(path, block, first_filtered)
        if path == DENSE:
            chooser.record_dense(seconds, share, probe)
        else:
            chooser.record_filtered(seconds, share, 0.0, probe)
        plan.append((path, probe))
    return plan, chooser


def test_a_slow_first_filtered_block_does_not_decide():
    plan, _ = simulate(lambda path, block, first: first_filtered_slow(path, block, first))
    assert sum(path == FILTERED for path, _ in plan) >= 0.9 * BLOCKS, plan


def test_filtering_that_truly_costs_more_is_left_with_few_probes():
    plan, chooser = simulate(filtering_twice_as_expensive)
    assert sum(path == DENSE for path, _ in plan) >= 0.9 * BLOCKS, plan
    probes = sum(probe for _, probe in plan)
    assert probes == chooser.probes and probes <= 0.1 * BLOCKS, plan


@pytest.mark.parametrize("cheaper_first", [FILTERED, DENSE])
def test_the_choice_follows_costs_that_flip_within_16_blocks(cheaper_first):
    plan, _ = simulate(flip_at_64(cheaper_first))
    new = DENSE if cheaper_first == FILTERED else FILTERED
    chosen = [(block, path) for block, (path, probe) in enumerate(plan) if not probe]
    assert all(path == cheaper_first for block, path in chosen if 16 <= block < 64), plan
    settled = min(block for block, path in chosen if block >= 64 and path == new)
    assert settled - 64 <= 16, plan
    assert all(path == new for block, path in chosen if block >= settled), plan


def test_probes_cost_about_7_percent_of_blocks_when_the_choice_is_right():
    plan, _ = simulate(lambda path, block, first: DENSE_COST * (0.4 if path == FILTERED else 1))
    probes = [block for block, (path, probe) in enumerate(plan) if probe]
    assert probes and all(plan[b][0] == DENSE for b in probes)
    assert len(probes) <= 0.075 * BLOCKS, probes


def test_too_many_candidates_mean_dense_blocks_without_probes():
    plan, chooser = simulate(lambda path, block, first: DENSE_COST * (0.1 if path == FILTERED else 1), share=0.2)
    assert all(path == DENSE and not probe for path, probe in plan) and chooser.probes == 0


class ScriptedChooser(PathChooser):
    """A PathChooser fed made-up costs instead of the scorer's measured ones."""

    def __init__(self, cost):
        super().__init__()
        self.cost_of, self.block, self.first_filtered, self.plans = cost, 0, None, []

    def plan(self):
        planned = super().plan()
        self.plans.append(planned)
        return planned

    def record_dense(self, seconds, share, probe=False):
        super().record_dense(self.cost_of(DENSE, self.block, self.first_filtered), share, probe)
        self.block += 1

    def record_filtered(self, seconds, share, rescore=None, probe=False):
        if self.first_filtered is None:
            self.first_filtered = self.block
        super().record_filtered(
            self.cost_of(FILTERED, self.block, self.first_filtered), share, None if rescore is None else 0.0, probe
        )
        self.block += 1


CASES = {
    "first_filtered_slow": (first_filtered_slow, lambda blocks: blocks["filtered"] >= 0.85 * BLOCKS),
    "filtering_expensive": (filtering_twice_as_expensive, lambda blocks: blocks["dense"] >= 0.85 * BLOCKS),
    "flip_to_dense": (flip_at_64(FILTERED), lambda blocks: 0.3 * BLOCKS <= blocks["filtered"] <= 0.7 * BLOCKS),
    "flip_to_filtered": (flip_at_64(DENSE), lambda blocks: 0.3 * BLOCKS <= blocks["filtered"] <= 0.7 * BLOCKS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_scorer_follows_its_chooser_and_returns_the_float32_top_k(case):
    """128 blocks of anisotropic rows, each way of choosing: the top-k is the
    float32 one (positions exact), and the blocks were scored as planned."""
    cost, expected = CASES[case]
    rng = np.random.default_rng(11)
    shared = unit(rng.standard_normal((1, 64)))[0]
    q, x = anisotropic(rng, 24, 64, shared), anisotropic(rng, BLOCKS * 200, 64, shared)
    scorer = Bf16Scorer(q, chooser=ScriptedChooser(cost))
    topk = TopK(24, 8)
    for start in range(0, x.shape[0], 200):
        block = scorer.prepare(x[start : start + 200], None)
        scorer.score(block, np.arange(start, start + 200), topk)
    vals, pos = topk.result()
    ref_vals, ref_pos = reference(q, x, 8)
    np.testing.assert_array_equal(pos, ref_pos)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-5)
    assert sum(scorer.blocks.values()) == BLOCKS
    assert expected(scorer.blocks), (scorer.blocks, scorer.chooser.plans)
    assert "probe blocks" in scorer.describe() and "blocks filtered" in scorer.describe()
