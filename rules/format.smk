rule format_results:
    input:
        merged=f"{RESULTS}/{{model}}/merged.npz",
    output:
        results=f"{RESULTS}/{{model}}/{{save_name}}.{{ext}}",
    params:
        save_as=lambda wildcards: "json" if wildcards.ext == "json" else "pickle",
    log:
        f"{RESULTS}/{{model}}/logs/format_{{save_name}}.{{ext}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/format_{{save_name}}.{{ext}}.tsv"
    resources:
        mem_mb=4096,
        runtime=30,
    conda:
        "../envs/knn.yaml"
    script:
        "../scripts/format_results.py"
