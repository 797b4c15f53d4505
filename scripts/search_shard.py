"""Snakemake script: exact top-k of one model's queries in one database shard."""

import torch

from ilias_knn import features
from ilias_knn.adapter import check_adapter_dim, load_adapter
from ilias_knn.logs import run_logged
from ilias_knn.partials import file_digest, save_partial
from ilias_knn.scoring import resolve_scoring
from ilias_knn.search import prepare_queries, resolve_device, search_shard
from ilias_knn.selection import load_selected_ids


def main(snakemake):
    inp, params = snakemake.input, snakemake.params
    torch.set_num_threads(snakemake.threads)
    # device and scoring come from the config, not params: results are the same
    # either way, so switching them must not rerun finished searches
    device = resolve_device(snakemake.config["device"])
    adapter_path = inp.get("adapter")
    adapter = load_adapter(adapter_path) if adapter_path else None
    _, query_feats, query_ids = features.read_all(inp.queries)
    if adapter is not None:
        check_adapter_dim(adapter, query_feats.shape[1], adapter_path, inp.queries)
    selected = load_selected_ids(inp.selected_ids) if inp.get("selected_ids") else None
    queries = prepare_queries(query_feats, adapter, device)
    result = search_shard(
        queries, inp.shard, params.k, adapter=adapter, adapter_path=adapter_path,
        selected_ids=selected, device=device,
        scoring=resolve_scoring(snakemake.config["scoring"], device),
    )
    meta = {
        "k": params.k,
        "shard": str(inp.shard),
        "num_queries": len(query_ids),
        "adapter_sha256": file_digest(adapter_path),
        "selected_sha256": file_digest(inp.get("selected_ids")),
    }
    save_partial(snakemake.output.partial, result, query_ids, meta)


run_logged(lambda: main(snakemake), snakemake.log[0])  # noqa: F821
