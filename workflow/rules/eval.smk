# Evaluation: atommem policies (zero-shot, SFT, RL), the baselines on the zero-shot base model, and
# env ablations of one policy. One job per run covers every benchmark x document count of it (one model
# load, lock-step batches across them) and writes results/eval/<run>/{summary.json,predictions.jsonl,
# trajectories.jsonl}, with one score group per <benchmark>_<num_docs>. One rule, reused for the
# baselines and the ablations with their own inputs, outputs, config and log.


rule evaluate_policy:
    input:
        unpack(eval_inputs(None, MAIN_GROUPS)),
    output:
        **eval_outputs("atommem-{policy}"),
    log:
        "results/logs/evaluate/atommem-{policy}.log",
    priority: TRAINED_EVAL_PRIORITY
    conda:
        CONDA_ENV
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    params:
        launch=LAUNCH,
        cfg=policy_eval_config,
        job_args=policy_eval_args,
    shell:
        "{params.launch} {resources.gpu} single evaluate --config {params.cfg:q} {params.job_args} > {log} 2>&1"


# on the zero-shot base model: they fill the cores the training chain leaves free
use rule evaluate_policy as evaluate_baseline with:
    input:
        unpack(eval_inputs("zeroshot", MAIN_GROUPS)),
    output:
        **eval_outputs("{method}"),
    log:
        "results/logs/evaluate/{method}.log",
    priority: 0
    params:
        cfg=baseline_eval_config,
        job_args=baseline_eval_args,


use rule evaluate_policy as evaluate_ablation with:
    input:
        unpack(eval_inputs(config["ablations"]["policy"], ABLATION_GROUPS)),
    output:
        **eval_outputs("ablation-{ablation}"),
    log:
        "results/logs/evaluate/ablation-{ablation}.log",
    params:
        cfg=ablation_eval_config,
        job_args=ablation_eval_args,
