"""Snakemake script: merge one model's shard partials into one top-k."""

import logging

import numpy as np

from ilias_knn.errors import InputError
from ilias_knn.logs import run_logged
from ilias_knn.merge import merge_partials
from ilias_knn.merged_result import save_merged
from ilias_knn.partials import check_partials, file_digest, load_partial, selected_matched
from ilias_knn.selection import load_selected_ids, unmatched_report


def main(snakemake):
    params = snakemake.params
    adapter = file_digest(params.adapter) if params.adapter else None
    selected = file_digest(params.selected_ids) if params.selected_ids else None
    # Positives are never filtered by the selected ids; distractor shards are.
    positives, distractors = snakemake.input.positives, list(snakemake.input.distractors)
    expected = {positives: {"k": params.k, "adapter_sha256": adapter, "selected_sha256": None}}
    for path in distractors:
        expected[path] = {"k": params.k, "adapter_sha256": adapter, "selected_sha256": selected}
    check_partials(expected, params.query_fingerprints)
    merged = merge_partials([positives, *distractors], params.k, expected)
    log = logging.getLogger("ilias_knn")
    if params.selected_ids and distractors:
        report_selection(distractors, merged.meta["shards"][1:], params.selected_ids, log)
    report_zero_norm_rows(merged.meta["shards"], log)
    save_merged(snakemake.output.merged, merged)


def report_selection(partials, distractor_shards, selected_ids, log):
    """How many selected ids matched no distractor (an error when none did)."""
    selected = load_selected_ids(selected_ids)
    matched = np.zeros(len(selected), bool)
    for path in partials:
        meta, arrays = load_partial(path, keys=("selected_matched",))
        matched |= selected_matched(path, meta, arrays)
    kept = sum(s["rows_kept"] for s in distractor_shards)
    total = sum(s["rows_total"] for s in distractor_shards)
    line, level = unmatched_report(selected_ids, selected, matched, kept, total)
    if level == "error":
        raise InputError(line)
    getattr(log, level)("%s", line)


def report_zero_norm_rows(shards, log):
    for shard in shards:
        if shard["zero_norm_rows"]:
            log.warning(
                "%s: %d database row(s) of zero norm (first at rows %s), failed extractions: "
                "they score 0 against every query",
                shard["shard"],
                shard["zero_norm_rows"],
                shard["first_zero_norm_rows"],
            )


run_logged(main, snakemake)  # noqa: F821
