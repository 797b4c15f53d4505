"""Snakemake script: write one query set of a model's merged top-k in the ILIAS
format (json or pickle)."""

import logging

from ilias_knn.formats import write_results
from ilias_knn.logs import run_logged
from ilias_knn.merged_result import load_merged


def main(snakemake):
    merged = load_merged(snakemake.input.merged).query_set(snakemake.params.query_set)
    write_results(snakemake.output.results, merged, snakemake.params.save_as)
    logging.getLogger("ilias_knn").info(
        "%d %s queries x top-%d written to %s",
        merged.sims.shape[0],
        snakemake.params.query_set,
        merged.sims.shape[1],
        snakemake.output.results,
    )


run_logged(main, snakemake)  # noqa: F821
