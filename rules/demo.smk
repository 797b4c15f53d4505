rule make_demo_data:
    output:
        **get_demo_outputs(),
    log:
        f"{DEMO['out_dir']}/make_demo_data.log",
    benchmark:
        f"{DEMO['out_dir']}/make_demo_data.benchmark.tsv"
    conda:
        "../envs/knn.yaml"
    params:
        distractor_rows=DEMO["distractor_rows"],
        dim=DEMO["dim"],
        adapter_out_dim=DEMO["adapter_out_dim"],
        seed=DEMO["seed"],
    script:
        "../scripts/make_demo_data.py"
