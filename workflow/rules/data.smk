# Long-context samples. The training split is the first data.train.questions questions of the train
# benchmark; evaluation samples of that benchmark skip them, so no evaluated question is trained on.


rule prepare_eval:
    input:
        lambda wildcards: source_files(wildcards, "eval"),
    output:
        **PREPARED["eval"],
    params:
        cfg=lambda wildcards: prepare_config(wildcards, "eval"),
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
        **PREPARED["train"],
    params:
        cfg=lambda wildcards: prepare_config(wildcards, "train"),
    log:
        "results/logs/prepare_train/{benchmark}_{num_docs}.log",
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"
