# Evaluation: atommem policies (zero-shot, SFT, RL), the baselines on the zero-shot base model, and
# env ablations of one policy. One job per run x benchmark x document count, each writing
# results/eval/<run>/<benchmark>_<num_docs>/{summary.json,predictions.jsonl,trajectories.jsonl}.

EVAL_DIR = "results/eval/{run}/{benchmark}_{num_docs}"
EVALUATE_SHELL = (
    "{params.launch} {resources.gpu} single evaluate"
    " --config {params.cfg:q} " + PARENT_RUN + " > {log} 2>&1"
)


def evaluate_config(rule_name, wildcards, input, output, resources, method, run, policy, env_overrides=None):
    evaluate = config["evaluate"]
    return to_json(
        {
            "method": method,
            "run": run,
            "policy": policy,
            "samples": input.samples,
            "out_dir": os.path.dirname(output.summary),
            "max_samples": evaluate["max_samples"],
            "batch_size": evaluate["batch_size"],
            "model": model_section(input.model, resources),
            "sampling": config["sampling"],
            "embedder": config["embedder"],
            "env": env_section(env_overrides),
            "judge": evaluate["judge"],
            "method_options": evaluate["method_options"].get(method, {}),
            "tracking": tracking_section(
                rule_name, wildcards, f"evaluate/{run}/{wildcards.benchmark}_{wildcards.num_docs}"
            ),
        }
    )


def eval_outputs(run):
    folder = EVAL_DIR.replace("{run}", run)
    return {"summary": f"{folder}/summary.json", "predictions": f"{folder}/predictions.jsonl"}


rule evaluate_policy:
    input:
        samples="results/data/{benchmark}_{num_docs}.jsonl",
        model=lambda wildcards: policy_model_dir(wildcards.policy),
    output:
        **eval_outputs("atommem-{policy}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards, input, output, resources: evaluate_config(
            "evaluate_policy", wildcards, input, output, resources, "atommem", f"atommem-{wildcards.policy}", wildcards.policy
        ),
    log:
        "results/logs/evaluate/atommem-{policy}/{benchmark}_{num_docs}.log",
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        EVALUATE_SHELL


rule evaluate_baseline:
    input:
        samples="results/data/{benchmark}_{num_docs}.jsonl",
        model=BASE_MODEL,
    output:
        **eval_outputs("{method}"),
    params:
        launch=LAUNCH,
        cfg=lambda wildcards, input, output, resources: evaluate_config(
            "evaluate_baseline", wildcards, input, output, resources, wildcards.method, wildcards.method, "zeroshot"
        ),
    log:
        "results/logs/evaluate/{method}/{benchmark}_{num_docs}.log",
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        EVALUATE_SHELL


rule evaluate_ablation:
    input:
        samples="results/data/{benchmark}_{num_docs}.jsonl",
        model=policy_model_dir(config["ablations"]["policy"]),
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
            config["ablations"]["settings"][wildcards.ablation],
        ),
    log:
        "results/logs/evaluate/ablation-{ablation}/{benchmark}_{num_docs}.log",
    threads: config["resources"]["evaluate"]["threads"]
    resources:
        **resources_of("evaluate"),
    conda:
        "../envs/atommem.yaml"
    shell:
        EVALUATE_SHELL
