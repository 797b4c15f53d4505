# Search: one job per (model, shard), then one merge per model. With query
# expansion, the same two steps run again ({stage} = "qe<n>/") on the queries
# that expand_queries made from the first search's top-n.


rule search_shard:
    input:
        unpack(get_search_input),
    output:
        partial=f"{RESULTS}/{{model}}/{{stage}}shards/{{shard}}.npz",
    log:
        f"{RESULTS}/{{model}}/logs/{{stage}}search_{{shard}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/{{stage}}search_{{shard}}.tsv"
    conda:
        "../envs/knn.yaml"
    threads: get_search_threads()
    resources:
        **get_search_gpu(),
        mem_mb=get_search_mem_mb,
        runtime=get_search_runtime,
    params:
        k=get_model_param("k"),
        # a new partial format reruns the shard searches (and what reads them)
        format_version=PARTIAL_FORMAT_VERSION,
        # content, not only times: a file replaced under an old time reruns it
        input_fingerprints=get_input_fingerprints(
            get_search_input,
            "queries",
            "text_queries",
            "shard",
            "adapter",
            "selected_ids",
        ),
    script:
        "../scripts/search_shard.py"


rule merge_shards:
    input:
        unpack(get_merge_input),
    output:
        merged=f"{RESULTS}/{{model}}/{{stage}}merged.npz",
    log:
        f"{RESULTS}/{{model}}/logs/{{stage}}merge.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/{{stage}}merge.tsv"
    conda:
        "../envs/knn.yaml"
    resources:
        mem_mb=grown_with_attempt(2048),
        runtime=grown_with_attempt(30),
    params:
        k=get_model_param("k"),
        adapter=get_model_param("lin_adapt_path", ""),
        selected_ids=get_model_param("selected_ids", ""),
        # a new merged-file format reruns the merges (and what reads them)
        format_version=MERGED_FORMAT_VERSION,
        # partials of other query files' content are refused (their ids may match)
        query_fingerprints=get_input_fingerprints(
            get_merge_query_input, "queries", "text_queries"
        ),
    script:
        "../scripts/merge_shards.py"


rule expand_queries:
    input:
        unpack(get_expand_input),
    output:
        queries=f"{RESULTS}/{{model}}/qe{{n}}/expanded_queries.npz",
    log:
        f"{RESULTS}/{{model}}/logs/qe{{n}}/expand_queries.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/qe{{n}}/expand_queries.tsv"
    wildcard_constraints:
        n=r"[1-9]\d*",
    conda:
        "../envs/knn.yaml"
    resources:
        mem_mb=grown_with_attempt(4096),
        runtime=grown_with_attempt(30),
    params:
        n=lambda wildcards: int(wildcards.n),
    script:
        "../scripts/expand_queries.py"
