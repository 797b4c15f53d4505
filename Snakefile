# Exact sharded k-nearest-neighbour search for ILIAS-style HDF5 embeddings.
# One job per (model, shard) -> merge per model -> ILIAS json/pickle.
from snakemake.utils import min_version

min_version("9.0")


# the demo; a --configfile replaces it (profiles/default: replace-workflow-config)
configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/search.smk"
include: "rules/format.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
    localrule: True


onstart:
    validate_inputs()


onsuccess:
    print_summary()


onerror:
    print_failed_job_errors()
