"""The CUDA scorers against the float64 brute force; skipped where torch sees no GPU."""

import pytest
import torch

from conftest import assert_topk_matches, brute_force, model_config
from ilias_knn import features
from ilias_knn.adapter import load_adapter
from ilias_knn.engines import make_scorer, prepare_queries, resolve_device
from ilias_knn.shard_search import search_shard

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.mark.parametrize("scoring", ["fp32", "bf16"])
def test_cuda_shard_search_equals_brute_force(dataset, scoring):
    device = resolve_device("cuda")
    cfg = model_config(dataset, distractor_hdf5=None, lin_adapt_path=dataset["lin_adapt_path"], k=20)
    adapter = load_adapter(cfg["lin_adapt_path"])
    _, qf, qids = features.read_all(cfg["query_hdf5"])
    queries = prepare_queries(qf, adapter)
    result = search_shard(queries, cfg["positive_hdf5"], 20, make_scorer(scoring, device, queries, adapter),
                          adapter=adapter, block_rows=8, decode_threads=2)
    ids = result.ids.astype(str)[[list(result.id_rows).index(r) for r in result.rows.ravel()]].reshape(result.rows.shape)
    assert_topk_matches(qids, ids, result.scores, brute_force(cfg))
