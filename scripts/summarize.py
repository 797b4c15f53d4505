"""Snakemake script: one summary row per model and query set (mAP, oracle, categories)."""

from ilias_knn.logs import run_logged
from ilias_knn.summary import summary_table, write_summary


def main(snakemake):
    table = summary_table(snakemake.params.report_keys, snakemake.input.reports)
    write_summary(table, snakemake.output.tsv)
    print(table.to_markdown(index=False, floatfmt=".2f"))


run_logged(main, snakemake)  # noqa: F821
