# Long-context samples. The training split is the first data.train.questions questions of the train
# benchmark; evaluation samples of that benchmark skip them, so no evaluated question is trained on.


def source_files(wildcards):
    """The release file, unless the recipe downloads it (a url is set)."""
    source = config["data"]["sources"][wildcards.benchmark]
    return [] if source["url"] else [source["path"]]


def prepare_config(wildcards, output, split):
    source = config["data"]["sources"][wildcards.benchmark]
    train = config["data"]["train"]
    if split == "train":
        skip, max_questions, max_samples = 0, train["questions"], train["max_samples"]
    else:
        skip = train["questions"] if wildcards.benchmark == train["benchmark"] else 0
        max_questions = config["data"]["eval"]["max_questions"]
        max_samples = config["data"]["eval"]["max_samples"]
    return to_json(
        {
            "benchmark": wildcards.benchmark,
            "path": source["path"],
            "url": source["url"],
            "sha256": source["sha256"],
            "num_docs": int(wildcards.num_docs),
            "seed": config["data"]["seed"],
            "skip_questions": skip,
            "max_questions": max_questions,
            "max_samples": max_samples,
            "out": output.samples,
            "stats_out": output.stats,
        }
    )


rule prepare_eval:
    input:
        source_files,
    output:
        samples="results/data/{benchmark}_{num_docs}.jsonl",
        stats="results/data/{benchmark}_{num_docs}_stats.json",
    params:
        cfg=lambda wildcards, output: prepare_config(wildcards, output, "eval"),
    log:
        "results/logs/prepare_eval/{benchmark}_{num_docs}.log",
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"


rule prepare_train:
    input:
        source_files,
    output:
        samples="results/data/train/{benchmark}_{num_docs}.jsonl",
        stats="results/data/train/{benchmark}_{num_docs}_stats.json",
    params:
        cfg=lambda wildcards, output: prepare_config(wildcards, output, "train"),
    log:
        "results/logs/prepare_train/{benchmark}_{num_docs}.log",
    threads: config["resources"]["prepare"]["threads"]
    resources:
        **resources_of("prepare"),
    conda:
        "../envs/atommem.yaml"
    shell:
        "atommem prepare --config {params.cfg:q} > {log} 2>&1"
