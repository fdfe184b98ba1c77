# Long-context samples. The training split is the first data.train.questions questions of the train
# benchmark; evaluation samples of that benchmark skip them, so no evaluated question is trained on.


rule prepare_eval:
    input:
        lambda wildcards: source_files(wildcards, "eval"),
    output:
        samples="results/data/{benchmark}_{num_docs}.jsonl",
        stats="results/data/{benchmark}_{num_docs}_stats.json",
    params:
        cfg=lambda wildcards, output: prepare_config(wildcards, output, "eval"),
    log:
        "results/logs/prepare_eval/{benchmark}_{num_docs}.log",
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"


rule prepare_train:
    input:
        lambda wildcards: source_files(wildcards, "train"),
    output:
        samples="results/data/train/{benchmark}_{num_docs}.jsonl",
        stats="results/data/train/{benchmark}_{num_docs}_stats.json",
    params:
        cfg=lambda wildcards, output: prepare_config(wildcards, output, "train"),
    log:
        "results/logs/prepare_train/{benchmark}_{num_docs}.log",
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"
