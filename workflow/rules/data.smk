# Long-context samples. The training split is the first data.train.questions questions of the train
# benchmark; evaluation samples of that benchmark skip them, so no evaluated question is trained on.


rule prepare_eval:
    input:
        eval_source_files,
    output:
        **PREPARED["eval"],
    log:
        "results/logs/prepare_eval/{benchmark}_{num_docs}.log",
    conda:
        CONDA_ENV
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    params:
        cfg=eval_prepare_config,
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"


use rule prepare_eval as prepare_train with:
    input:
        train_source_files,
    output:
        **PREPARED["train"],
    log:
        "results/logs/prepare_train/{benchmark}_{num_docs}.log",
    params:
        cfg=train_prepare_config,
