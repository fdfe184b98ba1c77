# The policy base model is resolved once (alias -> local HF folder: the SmolLM2 GGUF is dequantised,
# a hub id downloaded) so every later job loads a plain folder and SFT/RL can save the same format.


rule convert_model:
    output:
        directory(BASE_MODEL),
    params:
        cfg=lambda wildcards, output: to_json({"model": config["model"], "out_dir": output[0]}),
    log:
        "results/logs/convert_model/base.log",
    threads: config["resources"]["convert_model"]["threads"]
    resources:
        **resources_of("convert_model"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem convert-model --config {params.cfg:q} > {log} 2>&1"
