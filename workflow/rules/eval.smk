# Evaluation: atommem policies (zero-shot, SFT, RL), the baselines on the zero-shot base model, and
# env ablations of one policy. One job per run covers every benchmark x document count of it (one model
# load, lock-step batches across them) and writes results/eval/<run>/{summary.json,predictions.jsonl,
# trajectories.jsonl}, with one score group per <benchmark>_<num_docs>.


rule evaluate_policy:
    input:
        unpack(eval_inputs(None, MAIN_GROUPS)),
    output:
        **eval_outputs("atommem-{policy}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards, input, output, resources: evaluate_config(
            "evaluate_policy", wildcards, input, output, resources, "atommem", f"atommem-{wildcards.policy}", wildcards.policy
        ),
    log:
        "results/logs/evaluate/atommem-{policy}.log",
    priority: TRAINED_EVAL_PRIORITY
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} > {log} 2>&1"


rule evaluate_baseline:
    input:
        unpack(eval_inputs("zeroshot", MAIN_GROUPS)),
    output:
        **eval_outputs("{method}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards, input, output, resources: evaluate_config(
            "evaluate_baseline", wildcards, input, output, resources, wildcards.method, wildcards.method, "zeroshot"
        ),
    log:
        "results/logs/evaluate/{method}.log",
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} > {log} 2>&1"


rule evaluate_ablation:
    input:
        unpack(eval_inputs(config["ablations"]["policy"], ABLATION_GROUPS)),
    output:
        **eval_outputs("ablation-{ablation}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards, input, output, resources: evaluate_config(
            "evaluate_ablation",
            wildcards,
            input,
            output,
            resources,
            "atommem",
            f"ablation-{wildcards.ablation}",
            config["ablations"]["policy"],
            wildcards.ablation,
        ),
    log:
        "results/logs/evaluate/ablation-{ablation}.log",
    priority: TRAINED_EVAL_PRIORITY
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} > {log} 2>&1"
