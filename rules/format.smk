rule format_results:
    input:
        merged=get_final_merged,
    output:
        results=f"{RESULTS}/{{model}}/{{save_name}}{{query_set_suffix}}.{{ext}}",
    params:
        save_as=lambda wildcards: "json" if wildcards.ext == "json" else "pickle",
        query_set=get_query_set,
    log:
        f"{RESULTS}/{{model}}/logs/format_{{save_name}}{{query_set_suffix}}.{{ext}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/format_{{save_name}}{{query_set_suffix}}.{{ext}}.tsv"
    resources:
        mem_mb=4096,
        runtime=30,
    conda:
        "../envs/knn.yaml"
    script:
        "../scripts/format_results.py"
