# Training: oracle (or LLM) trajectories on the training split -> SFT of the base model -> GRPO from
# the SFT model, once with full memory and once per rl.variants entry (scratchpad-only, store-only).
# sft and rl resume from their own checkpoints under results/train/<run>/, which Snakemake does not
# delete on a rerun because only final/ and the copied metrics are declared outputs.


def synthesize_config(wildcards, output, resources):
    syn = config["synthesize"]
    oracle = syn["teacher"] == "oracle"
    return to_json(
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


rule synthesize:
    input:
        samples=train_samples_path(),
        model=BASE_MODEL,
    output:
        examples=f"{SFT_DATA}/examples.jsonl",
        trajectories=f"{SFT_DATA}/trajectories.jsonl",
        stats=f"{SFT_DATA}/stats.json",
    params:
        launch=LAUNCH,
        cfg=synthesize_config,
    log:
        "results/logs/synthesize/synthesize.log",
    threads: config["resources"]["synthesize"]["threads"]
    resources:
        **resources_of("synthesize"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "{params.launch} {resources.gpu} single synthesize"
        " --config {params.cfg:q} " + PARENT_RUN + " > {log} 2>&1"


def sft_config(wildcards, input):
    return to_json(
        {
            **config["sft"],
            "model": dict(config["model"], name=input.model),
            "examples": input.examples,
            "out_dir": POLICY_RUN["sft"],
            "tracking": tracking_section("sft", wildcards, "sft"),
        }
    )


rule sft:
    input:
        examples=rules.synthesize.output.examples,
        model=BASE_MODEL,
    output:
        directory(f"{POLICY_RUN['sft']}/final"),
    params:
        launch=LAUNCH,
        cfg=sft_config,
        accelerate=config["accelerate_config"] or "",
    log:
        "results/logs/sft/sft.log",
    threads: config["resources"]["sft"]["threads"]
    resources:
        **resources_of("sft"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "ACCELERATE_CONFIG={params.accelerate:q} {params.launch} {resources.gpu} train sft"
        " --config {params.cfg:q} " + PARENT_RUN + " > {log} 2>&1"


def rl_inputs(wildcards):
    inputs = {"samples": train_samples_path(), "model": f"{POLICY_RUN['sft']}/final"}
    if config["rl"]["validate_every"] > 0:
        train = config["data"]["train"]
        inputs["val_samples"] = samples_path(train["benchmark"], train["num_docs"])
    return inputs


def rl_config(wildcards, input):
    rl = config["rl"]
    hyper = {key: value for key, value in rl.items() if key not in ("variants", "sampling")}
    sft_model = dict(config["model"], name=input.model)
    return to_json(
        {
            **hyper,
            "model": sft_model,
            "ref_model": sft_model,  # KL is taken against the SFT model
            "samples": input.samples,
            "val_samples": input.get("val_samples"),
            "out_dir": f"results/train/rl-{wildcards.variant}",
            "sampling": rl["sampling"],
            "embedder": config["embedder"],
            "env": env_section(RL_VARIANTS[wildcards.variant]),
            "tracking": tracking_section("rl", wildcards, f"rl-{wildcards.variant}"),
        }
    )


rule rl:
    input:
        unpack(rl_inputs),
    output:
        final=directory("results/train/rl-{variant}/final"),
        # a copy taken at the end: the recipe's own metrics.jsonl must survive a rerun to resume
        metrics="results/train/rl-{variant}/training_metrics.jsonl",
    params:
        launch=LAUNCH,
        cfg=rl_config,
        accelerate=config["accelerate_config"] or "",
        run_dir="results/train/rl-{variant}",
    log:
        "results/logs/rl/{variant}.log",
    threads: config["resources"]["rl"]["threads"]
    resources:
        **resources_of("rl"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "ACCELERATE_CONFIG={params.accelerate:q} {params.launch} {resources.gpu} train rl"
        " --config {params.cfg:q} " + PARENT_RUN + " > {log} 2>&1"
        " && cp {params.run_dir}/metrics.jsonl {output.metrics}"
