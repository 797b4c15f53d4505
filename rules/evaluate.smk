# Evaluation (when dataset_dir is set): ILIAS report per model and query set,
# a cross-model summary, and mAP versus database size from the partials.


rule evaluate:
    input:
        unpack(get_evaluate_input),
    output:
        report=f"{RESULTS}/{{model}}/evaluation{{query_set_suffix}}.json",
    log:
        f"{RESULTS}/{{model}}/logs/evaluation{{query_set_suffix}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/evaluation{{query_set_suffix}}.tsv"
    conda:
        "../envs/knn.yaml"
    resources:
        mem_mb=grown_with_attempt(4096),
        runtime=grown_with_attempt(30),
    params:
        dataset_dir=config.get("dataset_dir"),
        eval_k=get_eval_k,
        query_set=get_query_set,
        input_fingerprints=get_input_fingerprints(
            get_evaluate_input, "positive_ids", "taxonomy", "similarities"
        ),
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        reports=get_evaluation_reports(),
    output:
        tsv=report(
            f"{RESULTS}/summary.tsv",
            caption="report/summary.rst",
            category="Summary",
        ),
    log:
        f"{RESULTS}/logs/summarize.log",
    benchmark:
        f"{RESULTS}/benchmarks/summarize.tsv"
    localrule: True
    conda:
        "../envs/knn.yaml"
    params:
        report_keys=get_evaluation_keys(),
    script:
        "../scripts/summarize.py"


rule scale_curve:
    input:
        unpack(get_scale_curve_input),
    output:
        tsv=f"{RESULTS}/{{model}}/scale_curve{{query_set_suffix}}.tsv",
    log:
        f"{RESULTS}/{{model}}/logs/scale_curve{{query_set_suffix}}.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/scale_curve{{query_set_suffix}}.tsv"
    conda:
        "../envs/knn.yaml"
    resources:
        mem_mb=grown_with_attempt(4096),
        runtime=grown_with_attempt(60),
    params:
        dataset_dir=config.get("dataset_dir"),
        eval_k=get_eval_k,
        k=get_model_param("k"),
        scale_points=config["scale_points"],
        query_set=get_query_set,
        input_fingerprints=get_input_fingerprints(get_scale_curve_input, "positive_ids"),
    script:
        "../scripts/scale_curve.py"


rule plot_model_scale_curve:
    input:
        unpack(lambda wildcards: get_plot_input([wildcards.model])),
    output:
        png=report(
            f"{RESULTS}/{{model}}/scale_curve.png",
            caption="report/scale_curve.rst",
            category="Scale curves",
        ),
    log:
        f"{RESULTS}/{{model}}/logs/plot_scale_curve.log",
    benchmark:
        f"{RESULTS}/{{model}}/benchmarks/plot_scale_curve.tsv"
    localrule: True
    conda:
        "../envs/knn.yaml"
    params:
        curves=lambda wildcards: get_plot_params([wildcards.model]),
        title=lambda wildcards: get_curves_title(
            [wildcards.model], f"{wildcards.model}: "
        ),
    script:
        "../scripts/plot_scale_curves.py"


rule plot_all_scale_curves:
    input:
        **get_plot_input(SEARCHED),
    output:
        png=report(
            f"{RESULTS}/scale_curves.png",
            caption="report/scale_curves.rst",
            category="Scale curves",
        ),
    log:
        f"{RESULTS}/logs/plot_scale_curves.log",
    benchmark:
        f"{RESULTS}/benchmarks/plot_scale_curves.tsv"
    localrule: True
    conda:
        "../envs/knn.yaml"
    params:
        curves=get_plot_params(SEARCHED),
        title=get_curves_title(SEARCHED, ""),
    script:
        "../scripts/plot_scale_curves.py"


rule compare_models:
    input:
        **get_compare_input(),
    output:
        tsv=report(
            get_comparison_outputs()["tsv"],
            caption="report/comparison.rst",
            category="Comparison",
        ),
        queries=get_comparison_outputs()["queries"],
        tex=get_comparison_outputs()["tex"],
        png=report(
            get_comparison_outputs()["png"],
            caption="report/comparison_plot.rst",
            category="Comparison",
        ),
    log:
        f"{RESULTS}/logs/compare_models.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_models.tsv"
    localrule: True
    conda:
        "../envs/knn.yaml"
    params:
        reference=REFERENCE,
        report_keys=get_evaluation_keys(),
    script:
        "../scripts/compare_models.py"
