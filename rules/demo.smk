DEMO = config["demo"]


rule make_demo_data:
    output:
        queries=f"{DEMO['out_dir']}/features_image_queries.hdf5",
        text_queries=f"{DEMO['out_dir']}/features_text_queries.hdf5",
        positives=f"{DEMO['out_dir']}/features_positives.hdf5",
        distractors=[
            f"{DEMO['out_dir']}/features_distractors_{i:05d}.hdf5"
            for i in range(len(DEMO["distractor_rows"]))
        ],
        adapter=f"{DEMO['out_dir']}/lin_adapt.pth",
        selected_ids=f"{DEMO['out_dir']}/selected_ids.txt",
        ground_truth=[
            f"{DEMO['out_dir']}/image_ids/{name}"
            for name in ("image_query_ids.txt", "text_query_ids.txt", "positive_ids.txt")
        ],
        taxonomy=f"{DEMO['out_dir']}/taxonomy.json",
    params:
        distractor_rows=DEMO["distractor_rows"],
        dim=DEMO["dim"],
        adapter_out_dim=DEMO["adapter_out_dim"],
        seed=DEMO["seed"],
    log:
        f"{DEMO['out_dir']}/make_demo_data.log",
    benchmark:
        f"{DEMO['out_dir']}/make_demo_data.benchmark.tsv"
    conda:
        "../envs/knn.yaml"
    script:
        "../scripts/make_demo_data.py"
