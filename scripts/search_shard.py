"""Snakemake script: exact top-k of one model's queries (every query set, one
pass) in one database shard; the expanded queries in a query-expansion round."""

import logging

from ilias_knn import features
from ilias_knn.adapter import check_adapter_dim, load_adapter
from ilias_knn.engines import choose_scoring, make_scorer, prepare_queries, resolve_device
from ilias_knn.logs import run_logged
from ilias_knn.partials import file_digest, input_records, save_partial
from ilias_knn.queries import load_queries, read_model_queries
from ilias_knn.selection import load_selected_ids
from ilias_knn.shard_search import reads_ahead, search_shard


def load_model_queries(inp, adapter):
    """Queries ready to score: the expanded ones (adapted already), or the query files."""
    if inp.get("expanded"):
        return load_queries(inp.expanded)
    queries = read_model_queries(inp.queries, inp.get("text_queries"))
    if adapter is not None:
        check_adapter_dim(adapter, queries.feats.shape[1], inp.get("adapter"), inp.queries)
    return queries


def main(snakemake):
    inp, params, threads = snakemake.input, snakemake.params, snakemake.threads
    # device and scoring come from the config, not params: results are the same
    # either way, so switching them must not rerun finished searches
    device = resolve_device(snakemake.config["device"])
    adapter_path = inp.get("adapter")
    adapter = load_adapter(adapter_path) if adapter_path else None
    queries = load_model_queries(inp, adapter)
    selected = load_selected_ids(inp.selected_ids) if inp.get("selected_ids") else None
    prepared = prepare_queries(queries.feats, None if queries.adapted else adapter)
    work = (prepared.shape[0], features.describe(inp.shard).rows, prepared.shape[1], params.k)
    scoring, why = choose_scoring(snakemake.config["scoring"], device, threads, work)
    logging.getLogger("ilias_knn").info("scoring %s on %s (%s)", scoring, device, why)
    result = search_shard(
        prepared,
        inp.shard,
        params.k,
        make_scorer(scoring, device, prepared, adapter, threads),
        adapter=adapter,
        adapter_path=adapter_path,
        selected_ids=selected,
        decode_threads=threads,
        read_ahead=reads_ahead(device, threads),
    )
    meta = {
        "k": params.k,
        "shard": str(inp.shard),
        "num_queries": len(queries.ids),
        "query_sets": queries.sets,
        "adapter_sha256": file_digest(adapter_path),
        "selected_sha256": file_digest(inp.get("selected_ids")),
        "inputs": input_records(params.input_fingerprints),
    }
    save_partial(snakemake.output.partial, result, queries.ids, meta)


run_logged(main, snakemake)  # noqa: F821
