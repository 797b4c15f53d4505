"""Snakemake script: write a model's merged top-k in the ILIAS format (json or pickle)."""

import logging

from ilias_knn.formats import write_results
from ilias_knn.logs import run_logged
from ilias_knn.merge import load_merged


def main(snakemake):
    merged = load_merged(snakemake.input.merged)
    write_results(snakemake.output.results, merged, snakemake.params.save_as)
    logging.getLogger("ilias_knn").info(
        "%d queries x top-%d written to %s", *merged.sims.shape, snakemake.output.results
    )


run_logged(lambda: main(snakemake), snakemake.log[0])  # noqa: F821
