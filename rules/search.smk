rule search_shard:
    input:
        unpack(get_search_input),
    output:
        partial=f"{RESULTS}/{{model}}/shards/{{shard}}.npz",
    params:
        k=get_model_param("k"),
    log:
        f"{RESULTS}/{{model}}/logs/search_{{shard}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/search_{{shard}}.tsv"
    threads: config["search_threads"]
    resources:
        mem_mb=get_search_mem_mb,
        runtime=get_search_runtime,
        **get_search_gpu(),
    conda:
        "../envs/knn.yaml"
    script:
        "../scripts/search_shard.py"


rule merge_shards:
    input:
        unpack(get_merge_input),
    output:
        merged=f"{RESULTS}/{{model}}/merged.npz",
    params:
        k=get_model_param("k"),
        adapter=get_model_param("lin_adapt_path", ""),
        selected_ids=get_model_param("selected_ids", ""),
    log:
        f"{RESULTS}/{{model}}/logs/merge.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/merge.tsv"
    resources:
        mem_mb=2048,
        runtime=30,
    conda:
        "../envs/knn.yaml"
    script:
        "../scripts/merge_shards.py"
