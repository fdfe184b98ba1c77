# Training: oracle (or LLM) trajectories on the training split -> SFT of the base model -> GRPO from
# the SFT model, once with full memory and once per rl.variants entry (scratchpad-only, store-only).
# sft and rl resume from their own checkpoints under results/train/<run>/, which Snakemake does not
# delete on a rerun because only final/ and the copied metrics are declared outputs.


rule synthesize:
    input:
        unpack(synthesize_inputs),
    output:
        **SFT_OUTPUTS,
    log:
        "results/logs/synthesize/synthesize.log",
    priority: CRITICAL_PRIORITY
    conda:
        CONDA_ENV
    threads: config["resources"]["synthesize"]["threads"]
    resources:
        **resources_of("synthesize"),
    params:
        launch=LAUNCH,
        cfg=synthesize_config,
        job_args=synthesize_args,
    shell:
        "{params.launch} {resources.gpu} single synthesize --config {params.cfg:q} {params.job_args} > {log} 2>&1"


rule sft:
    input:
        unpack(sft_inputs),
    output:
        directory(f"{POLICY_RUN['sft']}/final"),
    log:
        "results/logs/sft/sft.log",
    priority: CRITICAL_PRIORITY
    conda:
        CONDA_ENV
    threads: config["resources"]["sft"]["threads"]
    resources:
        **resources_of("sft"),
    params:
        launch=LAUNCH,
        cfg=sft_config,
        job_args=sft_args,
        accelerate=config["accelerate_config"]["sft"] or "",
    shell:
        "ACCELERATE_CONFIG={params.accelerate:q} {params.launch} {resources.gpu} train sft"
        " --config {params.cfg:q} {params.job_args} > {log} 2>&1"


rule rl:
    input:
        unpack(rl_inputs),
    output:
        final=directory("results/train/rl-{variant}/final"),
        # a copy taken at the end: the recipe's own metrics.jsonl must survive a rerun to resume
        metrics="results/train/rl-{variant}/training_metrics.jsonl",
    log:
        "results/logs/rl/{variant}.log",
    priority: rl_priority
    conda:
        CONDA_ENV
    threads: config["resources"]["rl"]["threads"]
    resources:
        **resources_of("rl"),
    params:
        launch=LAUNCH,
        cfg=rl_config,
        job_args=rl_args,
        accelerate=config["accelerate_config"]["rl"] or "",
        run_dir="results/train/rl-{variant}",
    shell:
        "ACCELERATE_CONFIG={params.accelerate:q} {params.launch} {resources.gpu} train rl"
        " --config {params.cfg:q} {params.job_args} > {log} 2>&1"
        " && cp {params.run_dir}/metrics.jsonl {output.metrics}"
