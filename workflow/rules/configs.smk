# The config each rule hands to `atommem <stage> --config '{json}'`, built from the validated
# workflow config plus the job's input/output paths (functions live here, rules in the stage files).
#
# Rerun on a config change: Snakemake compares a job's params with the last run's only when the params
# function takes nothing but `wildcards` (one taking input, output, threads or resources is "derived" and
# never compared). So every `cfg` function below takes wildcards only and rebuilds the job's paths from
# them; what does not change a job's results (MLflow tracking, the GPU count) goes through `job_args`,
# a params function that takes `resources` precisely so that it is not compared.


def data_source(benchmark, split):
    """The release file a benchmark's samples are read from; a generated task (statetrack) reads its
    distractor paragraphs from the file of its distractor_format."""
    train = config["data"]["train"]
    if split == "train" and train["source"]:
        return train["source"]
    if benchmark in TASKS:
        return config["data"]["sources"][config["data"][benchmark]["distractor_format"]]
    return config["data"]["sources"][benchmark]


def source_files(wildcards, *, split):
    """The release file, unless the recipe downloads it (a url is set)."""
    source = data_source(wildcards.benchmark, split)
    return [] if source["url"] else [source["path"]]


def download_keys(source):
    """url and sha256, and archive and member when the url serves an archive (left out when unset, so a
    job's params, which Snakemake compares for reruns, hold only what its source uses)."""
    keys = {"url": source["url"], "sha256": source["sha256"]}
    if source["member"]:
        keys.update(archive=source["archive"], member=source["member"])
    return keys


def prepare_config(wildcards, *, split):
    if wildcards.benchmark in TASKS:
        return task_prepare_config(wildcards, split=split)
    source = data_source(wildcards.benchmark, split)
    train = config["data"]["train"]
    if split == "train":
        skip, max_questions, max_samples = 0, train["questions"], train["max_samples"]
    else:
        # questions the training split took from this very file
        shared_file = wildcards.benchmark == train["benchmark"] and not train["source"]
        skip = train["questions"] if shared_file else 0
        max_questions = config["data"]["eval"]["max_questions"]
        max_samples = config["data"]["eval"]["max_samples"]
    return inline_config(
        {
            "benchmark": wildcards.benchmark,
            "path": source["path"],
            **download_keys(source),
            "num_docs": int(wildcards.num_docs),
            "seed": config["data"]["seed"],
            "max_group_size": config["data"]["max_group_size"],
            "skip_questions": skip,
            "max_questions": max_questions,
            "max_samples": max_samples,
            "out": prepared_path(split, "samples", wildcards.benchmark, wildcards.num_docs),
            "stats_out": prepared_path(split, "stats", wildcards.benchmark, wildcards.num_docs),
        }
    )


# a generated task splits its distractor file in two: training samples use part 0, held-aside ones part 1
TASK_DISTRACTOR_PARTS = 2


def task_prepare_config(wildcards, *, split):
    """A generated task's samples, from its config section data.<name> (statetrack's: data.statetrack):
    training and held-aside evaluation differ in seed and in distractor paragraphs (disjoint parts of the
    distractor file); its `world` section is the task's knobs, prepare's field of the task's name."""
    name = wildcards.benchmark
    section = config["data"][name]
    source = data_source(name, split)
    train = split == "train"
    return inline_config(
        {
            "benchmark": name,
            "distractors": source["path"],
            **download_keys(source),
            "distractor_format": section["distractor_format"],
            "distractor_parts": TASK_DISTRACTOR_PARTS,
            "distractor_part": 0 if train else 1,
            "seed": section["train_seed"] if train else section["eval_seed"],
            "num_docs": int(wildcards.num_docs),
            "max_samples": config["data"]["train"]["max_samples"] if train else section["eval_samples"],
            name: section["world"],
            "out": prepared_path(split, "samples", name, wildcards.num_docs),
            "stats_out": prepared_path(split, "stats", name, wildcards.num_docs),
        }
    )


def synthesize_config(wildcards):
    syn = config["synthesize"]
    oracle = syn["teacher"] == "oracle"
    return inline_config(
        {
            "teacher": syn["teacher"],
            "samples": train_samples_path(),
            "out": SFT_OUTPUTS["examples"],
            "trajectories_out": SFT_OUTPUTS["trajectories"],
            "stats_out": SFT_OUTPUTS["stats"],
            "min_fraction_correct": syn["min_fraction_correct"],
            # the oracle only needs the policy's tokenizer, so prompts are chunked as the policy sees them
            "model": dict(config["model"], name=BASE_MODEL) if oracle else syn["teacher_model"],
            "sampling": syn["sampling"],
            "embedder": embedder_section(config),
            "env": env_section(),
            "batch_size": syn["batch_size"],
        }
    )


def synthesize_inputs(wildcards):
    return {"samples": train_samples_path(), **model_input("zeroshot")}


def sft_inputs(wildcards):
    return {"examples": SFT_OUTPUTS["examples"], **model_input("zeroshot")}


def sft_config(wildcards):
    return inline_config(
        {
            **config["sft"],
            # trained locally whatever engine serves the policy elsewhere (model.backend: vllm in paper.yaml)
            "model": dict(config["model"], name=BASE_MODEL, backend="hf"),
            "examples": SFT_OUTPUTS["examples"],
            "out_dir": POLICY_RUN["sft"],
        }
    )


def rl_inputs(wildcards):
    inputs = {"samples": train_samples_path(), **model_input("sft")}
    if config["rl"]["validate_every"] > 0:
        train = config["data"]["train"]
        inputs["val_samples"] = samples_path(train["benchmark"], train["num_docs"])
    return inputs


def rl_config(wildcards):
    rl = config["rl"]
    inputs = rl_inputs(wildcards)
    hyper = {key: value for key, value in rl.items() if key not in ("variants", "sampling")}
    # trained locally; rl.rollout chooses the generation engine
    sft_model = dict(config["model"], name=policy_model_dir("sft"), backend="hf")
    return inline_config(
        {
            **hyper,
            "model": sft_model,
            "ref_model": sft_model["name"],  # KL is taken against the SFT model
            "samples": inputs["samples"],
            "val_samples": inputs.get("val_samples"),
            "out_dir": f"results/train/rl-{wildcards.variant}",
            "sampling": rl["sampling"],
            "embedder": embedder_section(config),
            "env": env_section(RL_VARIANTS[wildcards.variant]),
        }
    )


def evaluate_config(*, method, run, policy, groups, ablation=None):
    evaluate = config["evaluate"]
    return inline_config(
        {
            "method": method,
            "run": run,
            "policy": policy,
            "samples": [samples_path(benchmark, num_docs) for benchmark, num_docs in groups],
            "out_dir": EVAL_DIR.replace("{run}", run),
            "max_samples": evaluate["max_samples"],
            "batch_size": evaluate["batch_size"],
            "model": dict(
                config["model"],
                name=policy_model_dir(policy),
                dtype=evaluate["dtype"] or config["model"]["dtype"],
            ),
            "sampling": config["sampling"],
            "embedder": embedder_section(config),
            "env": env_section(),
            "ablation": ablation,
            # a custom ablation brings its switches; a named one is the library's
            "ablation_switches": config["ablations"]["custom"].get(ablation),
            "judge": evaluate["judge"],
            "method_options": evaluate["method_options"].get(method, {}),
        }
    )


def compare_config(*, table, runs, groups=()):
    return inline_config(
        {
            "inputs": eval_summaries(runs),
            "out_csv": f"results/tables/{table}.csv",
            "out_md": f"results/tables/{table}.md",
            "groups": list(groups),
        }
    )


def plot_config(*, figure):
    """Scores: summary.json paths (the recipe labels them by run); curves: {RL run name: metrics}."""
    if figure == "em_by_length":
        inputs, style = eval_summaries(main_table_runs()), {}
    else:
        inputs, style = rl_metrics(RL_VARIANTS), {"smoothing": config["figures"]["smoothing"]}
        if figure == "train_reward":
            style["std_band"] = config["figures"]["std_band"]
    return inline_config({"figure": figure, "inputs": inputs, "out": f"results/figures/{figure}.pdf", **style})


def job_args(*, rule_name, wildcards, run_name, resources):
    """`--set` flags that do not change a job's results, hence not compared by the rerun trigger (this
    function takes `resources`): the MLflow tracking section and, for vLLM, the engine's GPU count."""
    args = ["--set", f"tracking={inline_config(tracking_section(rule_name, wildcards, run_name))}"]
    if config["model"]["backend"] == "vllm":
        args += ["--set", f"model.tensor_parallel_size={max(1, int(resources.gpu))}"]
    return " ".join(shlex.quote(arg) for arg in args)


# ---- the params of each rule: functions of `wildcards` alone (compared for reruns, see the top) -------
def eval_source_files(wildcards):
    return source_files(wildcards, split="eval")


def train_source_files(wildcards):
    return source_files(wildcards, split="train")


def eval_prepare_config(wildcards):
    return prepare_config(wildcards, split="eval")


def train_prepare_config(wildcards):
    return prepare_config(wildcards, split="train")


def policy_eval_config(wildcards):
    return evaluate_config(
        method="atommem",
        run=f"atommem-{wildcards.policy}",
        policy=wildcards.policy,
        groups=MAIN_GROUPS,
    )


def baseline_eval_config(wildcards):
    return evaluate_config(method=wildcards.method, run=wildcards.method, policy="zeroshot", groups=MAIN_GROUPS)


def ablation_eval_config(wildcards):
    return evaluate_config(
        method="atommem",
        run=f"ablation-{wildcards.ablation}",
        policy=config["ablations"]["policy"],
        groups=ABLATION_GROUPS,
        ablation=wildcards.ablation,
    )


def main_table_config(wildcards):
    return compare_config(table="main", runs=main_table_runs())


def ablation_table_config(wildcards):
    # the ablated policy's own run covers every group: keep the ablations' groups only
    return compare_config(table="ablations", runs=ablation_table_runs(), groups=group_names(ABLATION_GROUPS))


def gains_table_config(wildcards):
    return inline_config(
        {
            "inputs": eval_predictions(policy_runs()),
            "out_csv": "results/tables/gains.csv",
            "out_md": "results/tables/gains.md",
        }
    )


def op_frequency_config(wildcards):
    return plot_config(figure="op_frequency")


def train_reward_config(wildcards):
    return plot_config(figure="train_reward")


def em_by_length_config(wildcards):
    return plot_config(figure="em_by_length")


def convert_model_config(wildcards):
    return inline_config({"name": wildcards.alias, "cache_dir": "results/models"})


# ---- job_args of each rule: they take `resources`, so they are never compared -------------------------
def synthesize_args(wildcards, resources):
    return job_args(rule_name="synthesize", wildcards=wildcards, run_name="synthesize", resources=resources)


def sft_args(wildcards, resources):
    return job_args(rule_name="sft", wildcards=wildcards, run_name="sft", resources=resources)


def rl_args(wildcards, resources):
    return job_args(rule_name="rl", wildcards=wildcards, run_name=f"rl-{wildcards.variant}", resources=resources)


def policy_eval_args(wildcards, resources):
    return job_args(
        rule_name="evaluate_policy",
        wildcards=wildcards,
        run_name=f"evaluate/atommem-{wildcards.policy}",
        resources=resources,
    )


def baseline_eval_args(wildcards, resources):
    return job_args(
        rule_name="evaluate_baseline",
        wildcards=wildcards,
        run_name=f"evaluate/{wildcards.method}",
        resources=resources,
    )


def ablation_eval_args(wildcards, resources):
    return job_args(
        rule_name="evaluate_ablation",
        wildcards=wildcards,
        run_name=f"evaluate/ablation-{wildcards.ablation}",
        resources=resources,
    )
