"""Cross-model summary of the evaluation reports (pandas)."""

import json

import pandas as pd

from .atomic import atomic_output


def summary_table(keys, report_paths):
    """``keys``: (model, query set) per report. Columns: model, query_set, k (of
    mAP@k), map, oracle, then one column per category."""
    rows = []
    for (model, query_set), path in zip(keys, report_paths):
        with open(path) as fh:
            report = json.load(fh)
        rows.append(
            {
                "model": model,
                "query_set": query_set,
                "k": report["k"],
                "map": report["map"],
                "oracle": report["oracle"],
                **report["categories"],
            }
        )
    return pd.DataFrame(rows)


def write_summary(table, path):
    with atomic_output(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
