"""Snakemake script: every model against the reference model, per query set and category."""

import json

import pandas as pd

from ilias_knn.atomic import atomic_output
from ilias_knn.comparison import COLUMNS, add_holm, category_weights, changed_queries, compare, forest_plot, latex_table
from ilias_knn.evaluation import instance_of, read_taxonomy
from ilias_knn.logs import run_logged


def main(snakemake):
    reference = snakemake.params.reference
    taxonomy = read_taxonomy(snakemake.input.taxonomy) if snakemake.input.get("taxonomy") else {}
    reports = {}
    for (model, query_set), path in zip(snakemake.params.report_keys, snakemake.input.reports):
        with open(path) as fh:
            reports[model, query_set] = json.load(fh)
    rows, changes = [], []
    for (model, query_set), report in reports.items():
        if model == reference or (reference, query_set) not in reports:
            continue
        ref = reports[reference, query_set]
        groups = category_weights(list(ref["queries"]), taxonomy, instance_of)
        rows += compare(query_set, model, reference, report, ref, groups)
        categories = {list(ref["queries"])[i]: c for c, (indices, _) in groups.items() for i in indices}
        changes += changed_queries(query_set, model, reference, report, ref, categories)
    add_holm(rows)
    out = snakemake.output
    for path, table, columns in ((out.tsv, rows, COLUMNS), (out.queries, changes, None)):
        with atomic_output(path) as tmp:
            pd.DataFrame(table, columns=columns).to_csv(tmp, sep="\t", index=False)
    with atomic_output(out.tex) as tmp:
        tmp.write_text(latex_table(rows, reference))
    with atomic_output(out.png) as tmp:
        forest_plot(rows, tmp, reference)


run_logged(main, snakemake)  # noqa: F821
