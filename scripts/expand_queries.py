"""Snakemake script: query expansion from a model's first-round top-n."""

import logging

import numpy as np

from ilias_knn.adapter import load_adapter
from ilias_knn.engines import prepare_queries
from ilias_knn.errors import InputError
from ilias_knn.expansion import expand, neighbour_vectors
from ilias_knn.logs import run_logged
from ilias_knn.merged_result import load_merged
from ilias_knn.queries import Queries, read_model_queries, save_queries


def main(snakemake):
    inp, n = snakemake.input, snakemake.params.n
    adapter = load_adapter(inp.adapter) if inp.get("adapter") else None
    queries = read_model_queries(inp.queries, inp.get("text_queries"))
    adapted = prepare_queries(queries.feats, adapter)
    merged = load_merged(inp.merged)
    if not np.array_equal(merged.query_ids, queries.ids):
        raise InputError(
            f"{inp.merged}: made for other queries than {inp.queries}. "
            "Delete it and run again: Snakemake merges it again (checking its partials)."
        )
    neighbours, scores = neighbour_vectors(merged, n, adapter, inp.get("adapter"))
    expanded = Queries(expand(adapted, neighbours, scores), queries.ids, queries.sets, adapted=True)
    save_queries(snakemake.output.queries, expanded)
    used = scores.shape[1]  # fewer than n where the database is smaller
    logging.getLogger("ilias_knn").info(
        "%d queries expanded with their top-%d neighbours%s",
        len(queries.ids),
        used,
        "" if used == n else f" (the whole database; query_expansion is {n})",
    )


run_logged(main, snakemake)  # noqa: F821
