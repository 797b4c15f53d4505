"""The CUDA scorers against the float64 brute force; skipped where torch sees no GPU."""

import pytest
import torch

from conftest import assert_topk_matches, brute_force, model_config, retrieved_ids, run_library
from ilias_knn import features
from ilias_knn.adapter import load_adapter
from ilias_knn.bf16 import Bf16Scorer
from ilias_knn.engines import make_scorer, prepare_queries, resolve_device
from ilias_knn.shard_search import search_shard

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"
)


@pytest.mark.parametrize("scoring", ["fp32", "bf16"])
def test_cuda_shard_search_equals_brute_force(dataset, scoring):
    device = resolve_device("cuda")
    cfg = model_config(dataset, distractor_hdf5=None, lin_adapt_path=dataset["lin_adapt_path"], k=20)
    adapter = load_adapter(cfg["lin_adapt_path"])
    _, qf, qids = features.read_all(cfg["query_hdf5"])
    queries = prepare_queries(qf, adapter)
    result = search_shard(
        queries,
        cfg["positive_hdf5"],
        20,
        make_scorer(scoring, device, queries, adapter),
        adapter=adapter,
        block_rows=8,
        decode_threads=2,
    )
    ids = result.ids.astype(str)[[list(result.id_rows).index(r) for r in result.rows.ravel()]].reshape(
        result.rows.shape
    )
    assert_topk_matches(qids, ids, result.scores, brute_force(cfg))


@pytest.mark.parametrize("scoring", ["fp32", "bf16"])
def test_cuda_whole_database_with_adapter_and_selected_ids_equals_brute_force(dataset, tmp_path, scoring):
    """Positives and the gzip-chunked distractor files of unequal sizes, each
    decoded by two threads and read ahead as a GPU job does, merged: the
    float64 top-k. bf16 filters every block it can (the GPU's filter and
    rescoring, not only its dense float32 blocks)."""
    device = resolve_device("cuda")
    cfg = model_config(dataset, lin_adapt_path=dataset["lin_adapt_path"], selected_ids=dataset["selected_ids"], k=30)
    if scoring == "bf16":
        make = lambda queries, adapter: Bf16Scorer(queries, device, adapter, measure_costs=False)
    else:
        make = lambda queries, adapter: make_scorer(scoring, device, queries, adapter)
    merged = run_library(cfg, tmp_path, make, block_rows=64, decode_threads=2)
    assert_topk_matches(merged.query_ids, retrieved_ids(merged), merged.sims, brute_force(cfg))
