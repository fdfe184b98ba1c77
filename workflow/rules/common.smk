# Paths and the per-stage configs the rules hand to `atommem <stage> --config '{json}'`.
# Every value comes from the validated workflow config; the rules add only input/output paths.
import json
import os
import re

# relative to the working directory, so moving the repository does not change params (no reruns)
LAUNCH = os.path.join(os.path.relpath(workflow.basedir), "scripts", "launch.sh")
BASE_MODEL = "results/models/base"
SFT_DATA = "results/sft_data"
# folder whose final/ holds each policy's weights
POLICY_RUN = {"sft": "results/train/sft", "rl": "results/train/rl-full"}
RL_VARIANTS = {"full": {}, **config["rl"]["variants"]}
BASELINES = config["evaluate"]["baselines"]


def one_of(names):
    """Wildcard regex accepting exactly these names (so run folders never match two rules)."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    benchmark="[a-z0-9]+",
    num_docs="[0-9]+",
    policy="zeroshot|sft|rl",
    variant=one_of(RL_VARIANTS),
    method=one_of(BASELINES) or "(?!)",  # no baselines: matches nothing
    ablation=one_of(config["ablations"]["settings"]),


def check_cross_references(cfg):
    """Fail at parse time on names the schema alone cannot check."""
    unknown = sorted(set(cfg["ablations"]["runs"]) - set(cfg["ablations"]["settings"]))
    if unknown:
        raise ValueError(
            f"config ablations.runs: {unknown} not in ablations.settings "
            f"(valid: {sorted(cfg['ablations']['settings'])})"
        )
    if "full" in cfg["rl"]["variants"]:
        raise ValueError("config rl.variants: 'full' is the full-memory run and cannot be redefined")


def to_json(mapping):
    return json.dumps(mapping, sort_keys=True)


def samples_path(benchmark, num_docs):
    return f"results/data/{benchmark}_{num_docs}.jsonl"


def train_samples_path():
    train = config["data"]["train"]
    return f"results/data/train/{train['benchmark']}_{train['num_docs']}.jsonl"


def policy_model_dir(policy):
    return BASE_MODEL if policy == "zeroshot" else f"{POLICY_RUN[policy]}/final"


def model_section(folder, resources):
    """The policy's ModelConfig pointing at a local folder; vLLM engines span the job's GPUs."""
    model = dict(config["model"], name=folder)
    if model["backend"] == "vllm":
        model["tensor_parallel_size"] = max(1, int(resources.gpu))
    return model


def env_section(overrides=None):
    return {**config["env"], **(overrides or {})}


def tracking_section(rule_name, wildcards, run_name):
    """TrackingConfig; the parent run id is added in the shell (see tracking.smk)."""
    tracking = config["tracking"]
    return {
        "enabled": tracking["enabled"],
        "tracking_uri": tracking["tracking_uri"],
        "experiment": tracking["experiment"],
        "run_name": run_name,
        "tags": {"rule": rule_name, **{key: str(value) for key, value in wildcards.items()}},
    }


def resources_of(group):
    """gpu, mem_mb and runtime of a rule group; gpu is capped by --resources gpu=N at run time."""
    res = config["resources"][group]
    return {"gpu": res["gpu"], "mem_mb": res["mem_mb"], "runtime": res["runtime"]}


def eval_summaries(runs, benchmarks, doc_counts):
    return [
        f"results/eval/{run}/{benchmark}_{num_docs}/summary.json"
        for run in runs
        for benchmark in benchmarks
        for num_docs in doc_counts
    ]


def main_table_runs():
    return [f"atommem-{p}" for p in config["evaluate"]["policies"]] + BASELINES


def ablation_table_runs():
    return [f"atommem-{config['ablations']['policy']}"] + [
        f"ablation-{name}" for name in config["ablations"]["runs"]
    ]


def rl_metrics(variants):
    return {v: f"results/train/rl-{v}/training_metrics.jsonl" for v in variants}


FIGURES = ["op_frequency", "train_reward", "em_by_length"]
TABLES = ["main", "ablations"]


def final_outputs():
    return [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md")] + [
        f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")
    ]
