"""The scorers: the bf16 bound holds, its filter keeps every entry that could
enter, every scorer's top-k equals the float64 brute force (adversarial
near-ties and exact ties included), and scoring: auto follows measured rates."""

import json

import numpy as np
import pytest
import torch

from ilias_knn import engines
from ilias_knn.bf16 import REL, Bf16Scorer, bf16_floor_bits, order_keys
from ilias_knn.path_choice import FILTERED, PathChooser
from ilias_knn.scoring import Fp32Scorer, TorchFp32Scorer
from ilias_knn.topk import TopK


class AlwaysFiltered(PathChooser):
    """Every prepared block gets its bf16 copy (tests of the copy, bound and filter)."""

    def plan(self):
        return FILTERED, False


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def anisotropic(rng, n, d, shared):
    """Embedding-like rows: unrelated pairs score about 0.4, not 0."""
    return unit(unit(rng.standard_normal((n, d))) + 0.8 * shared).astype(np.float32)


def small_anisotropic_case(seed):
    """20 queries and 20,000 rows of 64 dimensions, embedding-like."""
    rng = np.random.default_rng(seed)
    shared = unit(rng.standard_normal((1, 64)))[0]
    return anisotropic(rng, 20, 64, shared), anisotropic(rng, 20000, 64, shared)


def run(scorer, db, k, block):
    topk = TopK(scorer.queries.shape[0], k)
    for start in range(0, db.shape[0], block):
        x = db[start : start + block]
        scorer.score(scorer.prepare(x, None), np.arange(start, start + x.shape[0]), topk)
    return topk.result()


def reference(queries, db, k):
    s = np.asarray(queries, np.float64) @ np.asarray(db, np.float64).T
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, 1), order


@pytest.mark.parametrize("scale", [1.0, 0.05, 30.0])
@pytest.mark.parametrize("centred_far", [False, True])
def test_bound_holds_for_every_entry(scale, centred_far):
    """|s - (a + q.mu)| <= REL |a| + eps_q for the float32 score s of every
    entry: any norms, rows far from the centring vector too."""
    rng = np.random.default_rng(0)
    shared = unit(rng.standard_normal((1, 256)))[0]
    q = anisotropic(rng, 64, 256, shared) * np.float32(scale)
    first = anisotropic(rng, 300, 256, shared)
    x = rng.standard_normal((512, 256)).astype(np.float32) if centred_far else anisotropic(rng, 512, 256, shared)
    x[:10] *= 100  # uneven row norms
    scorer = Bf16Scorer(q, chooser=AlwaysFiltered())
    scorer.prepare(first, None)  # fixes the centring vector mu
    block = scorer.prepare(x, None)
    approx = scorer._gemm(block.y_bf16).float().numpy().astype(np.float64)
    exact32 = (torch.from_numpy(q) @ torch.from_numpy(x).T).numpy().astype(np.float64)
    width = REL * np.abs(approx) + scorer._eps(block)[:, None]
    assert np.all(np.abs(exact32 - (approx + scorer.q_mu[:, None])) <= width)


@pytest.mark.parametrize("largest_at", [0, 1500, 2599])
def test_bf16_copy_and_its_norms_over_several_tiles(largest_at):
    """The copy is made tile by tile (1,024 rows of 256 dimensions): every tile,
    the partial last one too, is rounded as torch rounds the whole block, and
    the largest norms are found in whichever tile holds them."""
    rng = np.random.default_rng(1)
    shared = unit(rng.standard_normal((1, 256)))[0]
    scorer = Bf16Scorer(anisotropic(rng, 8, 256, shared), chooser=AlwaysFiltered())
    scorer.prepare(anisotropic(rng, 100, 256, shared), None)
    x = anisotropic(rng, 2600, 256, shared)
    x[largest_at] *= 3
    block = scorer.prepare(x, None)
    y = torch.from_numpy(x) - torch.from_numpy(scorer.mu)
    y_bf16 = y.to(torch.bfloat16)
    assert torch.equal(block.y_bf16.view(torch.int16), y_bf16.view(torch.int16))
    y_norms = np.linalg.norm(y.double().numpy(), axis=1)
    f_norms = np.linalg.norm((y_bf16.double() - y.double()).numpy(), axis=1)
    assert np.argmax(y_norms) == largest_at
    np.testing.assert_allclose([block.y_max, block.f_max], [y_norms.max(), f_norms.max()], rtol=1e-5)


@pytest.mark.parametrize("block_rows", [700, 70000])  # row numbers within 16 bits, and beyond
def test_rescoring_returns_each_entry_its_float32_score_in_the_given_order(block_rows):
    """Entries come query by query, their rows in any order and repeated across
    queries; rescoring goes row by row and must put each score back in place."""
    rng = np.random.default_rng(2)
    shared = unit(rng.standard_normal((1, 64)))[0]
    q, x = anisotropic(rng, 30, 64, shared), anisotropic(rng, block_rows, 64, shared)
    scorer = Bf16Scorer(q)
    rows = np.repeat(np.arange(30), rng.integers(0, 40, size=30))
    cols = rng.integers(0, block_rows, size=rows.size)
    exact = scorer._rescore(rows, cols, torch.from_numpy(x))
    expected = np.einsum("ij,ij->i", q[rows].astype(np.float64), x[cols].astype(np.float64))
    np.testing.assert_allclose(exact, expected, rtol=0, atol=1e-6)


def bf16_device_paths(q, **kwargs):
    """A bf16 scorer taking the code paths of a GPU (the filter's compare and
    nonzero in torch, the dense GEMM in torch), run on CPU tensors."""
    scorer = Bf16Scorer(q, **kwargs)
    scorer.on_cpu = False
    return scorer


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("paths", ["cpu", "device"])
def test_filter_keeps_every_entry_at_or_above_the_threshold(seed, paths):
    rng = np.random.default_rng(seed)
    shared = unit(rng.standard_normal((1, 128)))[0]
    q, db = anisotropic(rng, 50, 128, shared), anisotropic(rng, 2000, 128, shared)
    scorer = (
        Bf16Scorer(q, chooser=AlwaysFiltered()) if paths == "cpu" else bf16_device_paths(q, chooser=AlwaysFiltered())
    )
    scorer.prepare(db[:500], None)
    block = scorer.prepare(db[500:], None)
    exact = q @ block.x.T
    # thresholds anywhere: above, inside and below the scores, negative and zero too
    thresholds = np.quantile(exact, rng.uniform(0, 1, size=50), axis=1).diagonal().astype(np.float64)
    thresholds[:5] = [-0.5, 0.0, -1e-30, 1e-30, 2.0]
    approx, floor_bits = scorer._gemm(block.y_bf16), scorer._floor_bits(thresholds, block)
    rows, cols = scorer._candidates(approx, floor_bits)
    passed = set(zip(rows.tolist(), cols.tolist()))
    must = set(zip(*[a.tolist() for a in np.nonzero(exact >= thresholds[:, None])]))
    assert must <= passed
    assert len(passed) < len(must) + 0.1 * exact.size  # and it does filter
    if paths == "device":  # the same entries, in the same order, as the numpy filter
        scorer.on_cpu = True
        for device_side, numpy_side in zip((rows, cols), scorer._candidates(approx, floor_bits)):
            np.testing.assert_array_equal(device_side, numpy_side)


def test_bf16_floor_is_the_largest_bf16_at_or_below():
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [
            rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 8, 2000),
            [0.0, -0.0, 1e-40, -1e-40, 1.0, -1.0, 0.5 + 2**-30],
        ]
    )
    floors = torch.from_numpy(bf16_floor_bits(values).view(np.uint16).astype(np.int32) << 16).view(torch.float32)
    floors = floors.double().numpy()
    assert np.all(floors <= values)
    bits = bf16_floor_bits(values).view(np.uint16).astype(np.int64)
    # the next bf16 value up (towards +inf) is above the value
    up = np.where(floors >= 0, bits + 1, bits - 1)
    up = np.where(bits == 0x8000, 0x0001, up)
    up = torch.from_numpy((up.astype(np.uint16).astype(np.int32) << 16)).view(torch.float32).double().numpy()
    assert np.all(up > values)


def test_order_keys_order_like_the_values():
    bits = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    values = torch.from_numpy(bits.view(np.uint16).astype(np.int32) << 16).view(torch.float32).numpy()
    finite = np.isfinite(values)
    bits, values = bits[finite], values[finite]
    keys = order_keys(bits).astype(np.int32)
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(values[order]) >= 0)


SCORERS = {
    "fp32": lambda q: Fp32Scorer(q),
    "bf16": lambda q: Bf16Scorer(q, measure_costs=False),  # the filter path, whatever this CPU's bf16 rate
    "bf16_adaptive": lambda q: Bf16Scorer(q),
    "bf16_device_paths": lambda q: bf16_device_paths(q, measure_costs=False),
    "torch_fp32": lambda q: TorchFp32Scorer(q, "cpu"),
}


@pytest.mark.parametrize("name", list(SCORERS))
@pytest.mark.parametrize("k,block", [(10, 64), (100, 256), (1, 32)])
@pytest.mark.parametrize("kind", ["isotropic", "anisotropic"])
def test_scorers_equal_brute_force(name, k, block, kind):
    rng = np.random.default_rng(k)
    shared = unit(rng.standard_normal((1, 128)))[0]
    if kind == "isotropic":
        q = unit(rng.standard_normal((40, 128))).astype(np.float32)
        x = unit(rng.standard_normal((3000, 128))).astype(np.float32)
    else:
        q, x = anisotropic(rng, 40, 128, shared), anisotropic(rng, 3000, 128, shared)
    vals, pos = run(SCORERS[name](q), x, k, block)
    ref_vals, ref_pos = reference(q, x, k)
    np.testing.assert_allclose(vals, ref_vals, atol=1e-5)
    np.testing.assert_array_equal(pos, ref_pos)


def test_bf16_filters_most_blocks_and_rescores_few_entries():
    """Guards against a filter that silently scores everything densely."""
    rng = np.random.default_rng(5)
    shared = unit(rng.standard_normal((1, 128)))[0]
    q, x = anisotropic(rng, 40, 128, shared), anisotropic(rng, 40000, 128, shared)
    scorer = Bf16Scorer(q, measure_costs=False)
    run(scorer, x, 20, 1000)
    assert scorer.blocks["filtered"] >= 30 and scorer.blocks["dense"] <= 10, scorer.blocks
    assert scorer.rescored < 0.05 * 40 * 40000


@pytest.mark.parametrize("bf16_cost", [10.0, 0.01])
def test_bf16_scores_densely_where_its_measured_costs_say_so(bf16_cost):
    """With the bf16 path costing 10x the dense cost per entry, blocks are
    dense and get no bf16 copy but for the chooser's probes; at 0.01x, blocks
    are filtered. The costs are injected: timings of blocks this small are
    noise, and a test must not depend on the machine's load."""
    from ilias_knn.path_choice import PathChooser

    class Injected(PathChooser):  # fixed costs in place of the measured ones
        def record_dense(self, seconds, share, probe=False):
            super().record_dense(1e-9, share, probe)

        def record_filtered(self, seconds, share, rescore=None, probe=False):
            super().record_filtered(bf16_cost * 1e-9, share, None if rescore is None else 0.0, probe)

    q, x = small_anisotropic_case(6)
    scorer = Bf16Scorer(q, chooser=Injected())
    topk = TopK(20, 10)
    copies = []
    for start in range(0, 20000, 500):
        block = scorer.prepare(x[start : start + 500], None)
        copies.append(block.y_bf16 is not None)
        scorer.score(block, np.arange(start, start + 500), topk)
    if bf16_cost > 1:
        # the first filtered tries (the first one's cost is dropped), then probes
        assert scorer.blocks["filtered"] <= 2 + scorer.chooser.probes, (scorer.blocks, copies)
        assert sum(copies) <= 3 + scorer.chooser.probes, copies
    else:
        assert scorer.blocks["filtered"] > 30 and sum(copies) >= 36, (scorer.blocks, copies)
    _, pos = topk.result()
    np.testing.assert_array_equal(pos, reference(q, x, 10)[1])


def test_bf16_counts_the_making_of_its_bf16_copy_as_a_cost_of_filtering():
    """The bf16 copy is made in prepare (in a reading thread or not), but it is
    CPU time spent only for filtering: when it alone costs more than dense scoring, blocks
    are scored densely and get no copy (but the chooser's probes)."""
    q, x = small_anisotropic_case(8)
    scorer = Bf16Scorer(q)
    topk = TopK(20, 10)
    kinds = []
    for start in range(0, 20000, 500):
        block = scorer.prepare(x[start : start + 500], None)
        if block.y_bf16 is not None:
            block.copy_seconds = 10.0  # as if measured so
        before = dict(scorer.blocks)
        scorer.score(block, np.arange(start, start + 500), topk)
        kinds.append("filtered" if scorer.blocks["filtered"] > before["filtered"] else "dense")
    assert scorer.chooser.cost("filtered") > scorer.chooser.cost("dense")
    assert kinds.count("filtered") <= 2 + scorer.chooser.probes and scorer.chooser.probes <= 3, kinds
    np.testing.assert_array_equal(topk.result()[1], reference(q, x, 10)[1])


@pytest.mark.parametrize("name", list(SCORERS))
def test_adversarial_near_ties_where_bf16_order_is_wrong(name):
    """Scores 1e-5 apart (far below bf16 resolution, far above float32 noise), in
    an order bf16 cannot see: the result must still be the exact order."""
    rng = np.random.default_rng(7)
    d = 256
    q = unit(rng.standard_normal((8, d)))
    base = unit(rng.standard_normal((1, d)))[0]
    rows = [base + ((j * 7919) % 2000) * 1e-5 * q[0] + 1e-3 * rng.standard_normal(d) / np.sqrt(d) for j in range(2000)]
    x = np.array(rows, dtype=np.float32)
    q = q.astype(np.float32)
    approx = (torch.from_numpy(q).bfloat16() @ torch.from_numpy(x).bfloat16().T).float()[0].numpy()
    exact = (q.astype(np.float64) @ x.astype(np.float64).T)[0]
    assert set(np.argsort(-exact, kind="stable")[:50]) != set(np.argsort(-approx, kind="stable")[:50])
    vals, pos = run(SCORERS[name](q), x, 50, 128)
    ref_vals, ref_pos = reference(q, x, 50)
    # query 0 is the adversarial one (gaps 1e-5); the random others see rows
    # within 1e-8 of each other, where only float32-level agreement is meaningful
    np.testing.assert_array_equal(pos[0], ref_pos[0])
    np.testing.assert_allclose(vals, ref_vals, atol=1e-6)


@pytest.mark.parametrize("name", list(SCORERS))
def test_exact_ties_are_ordered_by_position(name):
    """Duplicated rows: exact ties must be ordered by position on every scorer."""
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, size=(50, 16)).astype(np.float32)
    x = np.concatenate([x] * 40)  # every row repeated 40 times
    q = rng.integers(-3, 4, size=(5, 16)).astype(np.float32)
    vals, pos = run(SCORERS[name](q), x, 100, 64)
    ref_vals, ref_pos = reference(q, x, 100)
    np.testing.assert_array_equal(pos, ref_pos)
    np.testing.assert_array_equal(vals, ref_vals.astype(np.float32))


def test_configured_scoring_is_kept():
    assert engines.choose_scoring("fp32", "cpu")[0] == "fp32"
    assert engines.choose_scoring("bf16", "cpu")[0] == "bf16"
    assert engines.choose_scoring("auto", "cuda")[0] == "fp32"


def test_auto_follows_the_measured_rates(tmp_path, monkeypatch):
    """The rates are measured once per kind of machine and cached; auto picks
    bf16 only where its GEMM is at least BF16_MIN_SPEEDUP times as fast."""
    monkeypatch.setenv("ILIAS_KNN_CACHE", str(tmp_path))
    scoring, why = engines.choose_scoring("auto", "cpu", threads=1)
    rates = engines.measure_gemm_rates(1)  # this machine, measured again
    assert why.startswith("auto: bf16 GEMM") and "measured now" in why
    (cache,) = tmp_path.glob("gemm-rates-*.json")
    cached = json.loads(cache.read_text())
    assert cached["identity"] == engines.machine_identity(1)
    expected = "bf16" if rates["bf16"] >= 2 * engines.BF16_MIN_SPEEDUP * rates["fp32"] else None
    expected = "fp32" if rates["bf16"] <= rates["fp32"] else expected
    if expected:  # clearly one side of the margin: the measurement must agree
        assert scoring == expected, (why, rates)
    assert "cached in" in engines.choose_scoring("auto", "cpu", threads=1)[1]
    assert cached["rates"]["torch_start_seconds"] >= 0
    for fp32, bf16, want in ((100.0, 160.0, "bf16"), (100.0, 140.0, "fp32")):
        cached["rates"] = {"fp32": fp32, "bf16": bf16, "torch_start_seconds": 1.5}
        cache.write_text(json.dumps(cached))
        assert engines.choose_scoring("auto", "cpu", threads=1)[0] == want


def test_a_dense_blocks_estimate_of_the_next_filter_share_is_close():
    """Before any block has its bf16 copy, the share the filter will pass is
    estimated from the dense block's exact scores and the first block's norms;
    it decides when filtering starts, so it must be near the share the filter
    then passes (a pessimistic one kept 30 blocks of a real file dense)."""
    rng = np.random.default_rng(9)
    shared = unit(rng.standard_normal((1, 1024)))[0]
    q, x = anisotropic(rng, 40, 1024, shared), anisotropic(rng, 12000, 1024, shared)
    scorer, topk = Bf16Scorer(q), TopK(40, 100)
    for start in range(0, 10000, 2000):  # dense blocks, no bf16 copy
        block = scorer.prepare(x[start : start + 2000], None)
        assert block.y_bf16 is None or start > 0
        scorer._dense(block, np.arange(start, start + 2000), topk)
    estimate = scorer.chooser.expected_density
    filtering = Bf16Scorer(q, chooser=AlwaysFiltered())
    filtering.prepare(x[:2000], None)
    block = filtering.prepare(x[10000:], None)
    rows, _ = filtering._candidates(
        filtering._gemm(block.y_bf16), filtering._floor_bits(topk.thresholds.astype(np.float64), block)
    )
    actual = rows.size / (40 * 2000)
    assert actual > 0 and 0.5 * actual <= estimate <= 2 * actual, (estimate, actual)


# measured rates of CPUs seen (bench/README.md, shared/notes/bf16-cpus.md)
AVX2 = {"fp32": 95.0, "bf16": 10.0, "torch_start_seconds": 1.5}
ZEN4 = {"fp32": 106.0, "bf16": 203.0, "torch_start_seconds": 1.8}
AMX = {"fp32": 100.0, "bf16": 800.0, "torch_start_seconds": 1.5}


@pytest.mark.parametrize(
    "rates,rows,want",
    [
        (AVX2, 1_000_000, "fp32"),  # emulated bf16: never
        (ZEN4, 1_000_000, "bf16"),  # a real file: 18 s saved
        (ZEN4, 100_000, "fp32"),  # a small shard: torch's start costs more than the GEMM saves
        (ZEN4, 20_000, "fp32"),  # fewer rows than are scored densely anyway
        (AMX, 100_000, "bf16"),  # 4x faster bf16 repays its start on small shards too
    ],
)
def test_auto_weighs_what_bf16_saves_on_the_shard_against_its_start(rates, rows, want):
    scoring, why = engines.choose_cpu_scoring(rates, (2000, rows, 1024, 1000))
    assert scoring == want, why
    if rates is not AVX2:
        assert "bf16 would save" in why
