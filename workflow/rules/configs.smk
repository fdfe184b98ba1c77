# The config each rule hands to `atommem <stage> --config '{json}'`, built from the validated
# workflow config plus the job's input/output paths (functions live here, rules in the stage files).


def data_source(benchmark, split):
    train = config["data"]["train"]
    if split == "train" and train["source"]:
        return train["source"]
    return config["data"]["sources"][benchmark]


def source_files(wildcards, split):
    """The release file, unless the recipe downloads it (a url is set)."""
    source = data_source(wildcards.benchmark, split)
    return [] if source["url"] else [source["path"]]


def prepare_config(wildcards, output, split):
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
            "url": source["url"],
            "sha256": source["sha256"],
            "num_docs": int(wildcards.num_docs),
            "seed": config["data"]["seed"],
            "max_group_size": config["data"]["max_group_size"],
            "skip_questions": skip,
            "max_questions": max_questions,
            "max_samples": max_samples,
            "out": output.samples,
            "stats_out": output.stats,
        }
    )


def synthesize_config(wildcards, output, resources):
    syn = config["synthesize"]
    oracle = syn["teacher"] == "oracle"
    return inline_config(
        {
            "teacher": syn["teacher"],
            "samples": train_samples_path(),
            "out": output.examples,
            "trajectories_out": output.trajectories,
            "stats_out": output.stats,
            "min_fraction_correct": syn["min_fraction_correct"],
            # the oracle only needs the policy's tokenizer, so prompts are chunked as the policy sees them
            "model": model_section(BASE_MODEL, resources) if oracle else syn["teacher_model"],
            "sampling": syn["sampling"],
            "embedder": config["embedder"],
            "env": env_section(),
            "batch_size": syn["batch_size"],
            "tracking": tracking_section("synthesize", wildcards, "synthesize"),
        }
    )


def sft_config(wildcards, input):
    return inline_config(
        {
            **config["sft"],
            "model": dict(config["model"], name=BASE_MODEL),
            "examples": input.examples,
            "out_dir": POLICY_RUN["sft"],
            "tracking": tracking_section("sft", wildcards, "sft"),
        }
    )


def rl_inputs(wildcards):
    inputs = {"samples": train_samples_path(), **model_input("sft")}
    if config["rl"]["validate_every"] > 0:
        train = config["data"]["train"]
        inputs["val_samples"] = samples_path(train["benchmark"], train["num_docs"])
    return inputs


def rl_config(wildcards, input):
    rl = config["rl"]
    hyper = {key: value for key, value in rl.items() if key not in ("variants", "sampling")}
    sft_model = dict(config["model"], name=policy_model_dir("sft"))
    return inline_config(
        {
            **hyper,
            "model": sft_model,
            "ref_model": sft_model["name"],  # KL is taken against the SFT model
            "samples": input.samples,
            "val_samples": input.get("val_samples"),
            "out_dir": f"results/train/rl-{wildcards.variant}",
            "sampling": rl["sampling"],
            "embedder": config["embedder"],
            "env": env_section(RL_VARIANTS[wildcards.variant]),
            "tracking": tracking_section("rl", wildcards, f"rl-{wildcards.variant}"),
        }
    )


def evaluate_config(rule_name, wildcards, input, output, resources, method, run, policy, ablation=None):
    evaluate = config["evaluate"]
    return inline_config(
        {
            "method": method,
            "run": run,
            "policy": policy,
            "samples": list(input.samples),
            "out_dir": os.path.dirname(output.summary),
            "max_samples": evaluate["max_samples"],
            "batch_size": evaluate["batch_size"],
            "model": dict(
                model_section(policy_model_dir(policy), resources),
                dtype=evaluate["dtype"] or config["model"]["dtype"],
            ),
            "sampling": config["sampling"],
            "embedder": config["embedder"],
            "env": env_section(),
            "ablation": ablation,
            # a custom ablation brings its switches; a named one is the library's
            "ablation_switches": config["ablations"]["custom"].get(ablation),
            "judge": evaluate["judge"],
            "method_options": evaluate["method_options"].get(method, {}),
            "tracking": tracking_section(rule_name, wildcards, f"evaluate/{run}"),
        }
    )


def compare_config(input, output, groups=()):
    return inline_config(
        {"inputs": list(input), "out_csv": output.csv, "out_md": output.md, "groups": list(groups)}
    )


def plot_config(input, output, figure):
    """Scores: summary.json paths (the recipe labels them by run); curves: {RL run name: metrics}."""
    inputs = list(input) if figure == "em_by_length" else dict(input.items())
    return inline_config({"figure": figure, "inputs": inputs, "out": output.pdf})
