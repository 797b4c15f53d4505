"""Snakemake script: merge one model's shard partials into one top-k."""

from ilias_knn.logs import run_logged
from ilias_knn.merge import merge_partials, save_merged
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
    save_merged(snakemake.output.merged, merged)


run_logged(lambda: main(snakemake), snakemake.log[0])  # noqa: F821
