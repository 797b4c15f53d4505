"""Snakemake script: merge one model's shard partials into one top-k."""

import logging

from ilias_knn.logs import run_logged
from ilias_knn.merge import merge_partials
from ilias_knn.merged_result import save_merged
from ilias_knn.partials import file_digest


def main(snakemake):
    params = snakemake.params
    adapter = file_digest(params.adapter) if params.adapter else None
    selected = file_digest(params.selected_ids) if params.selected_ids else None
    # Positives are never filtered by the selected ids; distractor shards are.
    positives, distractors = snakemake.input.positives, list(snakemake.input.distractors)
    expected = {positives: {"k": params.k, "adapter_sha256": adapter, "selected_sha256": None}}
    for path in distractors:
        expected[path] = {"k": params.k, "adapter_sha256": adapter, "selected_sha256": selected}
    merged = merge_partials([positives, *distractors], params.k, expected)
    if params.selected_ids and distractors:
        report_selection(merged.meta["shards"][1:], params.selected_ids)
    save_merged(snakemake.output.merged, merged)


def report_selection(distractor_shards, selected_ids):
    kept = sum(s["rows_kept"] for s in distractor_shards)
    total = sum(s["rows_total"] for s in distractor_shards)
    log = logging.getLogger("ilias_knn")
    if kept == 0:
        log.warning("%s matched no distractor: 0 of %d distractors kept (positives only). "
                    "Check that its ids match the 'index' of the distractor files.", selected_ids, total)
    else:
        log.info("%s kept %d of %d distractors", selected_ids, kept, total)


run_logged(main, snakemake)  # noqa: F821
