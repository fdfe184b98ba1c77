# Local model aliases (see common.smk) are built once, before the parallel jobs that load them:
# SmolLM2's GGUF is dequantised into a plain HF folder that SFT and RL can also save in.


rule convert_model:
    output:
        directory("results/models/{alias}"),
    log:
        "results/logs/convert_model/{alias}.log",
    conda:
        CONDA_ENV
    threads: config["resources"]["convert_model"]["threads"]
    resources:
        **resources_of("convert_model"),
    params:
        cfg=convert_model_config,
    shell:
        "atommem convert-model --config {params.cfg:q} > {log} 2>&1"
