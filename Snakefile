# Exact sharded k-nearest-neighbour search for ILIAS-style HDF5 embeddings.
# One job per (model, shard) -> merge per model -> ILIAS json/pickle.
from snakemake.utils import min_version

min_version("9.0")


# A user's --configfile replaces the demo configuration instead of being merged
# into it (Snakemake would otherwise add the demo models to every run).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/search.smk"
include: "rules/format.smk"
include: "rules/evaluate.smk"


exempt_loaded_objects_from_gc()


rule all:
    input:
        get_final_output(),
    localrule: True
    default_target: True


onstart:
    validate_inputs()


onsuccess:
    print_summary()
    stop_rescheduling_timers()


onerror:
    stop_rescheduling_timers()
