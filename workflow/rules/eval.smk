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
        cfg=lambda wildcards: evaluate_config(
            wildcards, "atommem", f"atommem-{wildcards.policy}", wildcards.policy, MAIN_GROUPS
        ),
        job_args=lambda wildcards, resources: job_args(
            "evaluate_policy", wildcards, f"evaluate/atommem-{wildcards.policy}", resources
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
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} {params.job_args} > {log} 2>&1"


rule evaluate_baseline:
    input:
        unpack(eval_inputs("zeroshot", MAIN_GROUPS)),
    output:
        **eval_outputs("{method}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards: evaluate_config(
            wildcards, wildcards.method, wildcards.method, "zeroshot", MAIN_GROUPS
        ),
        job_args=lambda wildcards, resources: job_args(
            "evaluate_baseline", wildcards, f"evaluate/{wildcards.method}", resources
        ),
    log:
        "results/logs/evaluate/{method}.log",
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} {params.job_args} > {log} 2>&1"


rule evaluate_ablation:
    input:
        unpack(eval_inputs(config["ablations"]["policy"], ABLATION_GROUPS)),
    output:
        **eval_outputs("ablation-{ablation}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards: evaluate_config(
            wildcards,
            "atommem",
            f"ablation-{wildcards.ablation}",
            config["ablations"]["policy"],
            ABLATION_GROUPS,
            wildcards.ablation,
        ),
        job_args=lambda wildcards, resources: job_args(
            "evaluate_ablation", wildcards, f"evaluate/ablation-{wildcards.ablation}", resources
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
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} {params.job_args} > {log} 2>&1"
