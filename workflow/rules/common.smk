# Paths and the per-stage configs the rules hand to `atommem <stage> --config '{json}'`.
# Every value comes from the validated workflow config; the rules add only input/output paths.
import os
import re
import shlex
from pathlib import Path

import yaml
from atommem.agent.env import EnvConfig
from atommem.config import from_dict
from atommem.data.loaders import LOADERS, is_sample
from atommem.llm.base import ModelConfig, SamplingConfig
from atommem.llm.models import HUB_ALIASES, LOCAL_BUILDERS
from atommem.memory.embedders import EmbedderConfig
from atommem.methods.ablations import ABLATIONS
from atommem.methods.registry import check_baselines
from atommem.recipes.evaluate import EvaluateConfig
from atommem.recipes.plot import PlotConfig
from atommem.recipes.prepare import PrepareConfig
from atommem.recipes.synthesize import SynthesizeConfig
from atommem.tasks import TASKS
from atommem.train.rl_config import RLConfig
from atommem.train.sft_config import SFTRecipeConfig

# relative to the working directory, so moving the repository does not change params (no reruns)
LAUNCH = os.path.join(os.path.relpath(workflow.basedir), "scripts", "launch.sh")
# Every job's shell ignores SIGTERM: SLURM sends it to all of a job's processes on preemption, requeue and
# ahead of a time limit (profiles/slurm), and a shell that died of it would end the job step, and with it
# the training process that is still finishing its step and writing its checkpoint (atommem/train/preemption.py).
# A process started from the shell may still catch SIGTERM (atommem sft and rl do); one that does not
# ignores it too, and ends with the SIGKILL that follows KillWait seconds later.
shell.prefix("set -euo pipefail; trap '' TERM; ")
MODEL_NAME = config["model"]["name"]
# Local aliases (smollm2-135m, tiny-random) are built once into results/models/<alias> by
# convert_model, before the parallel jobs that load them; hub ids and folders pass through unbuilt.
BASE_MODEL = f"results/models/{MODEL_NAME}" if MODEL_NAME in LOCAL_BUILDERS else HUB_ALIASES.get(MODEL_NAME, MODEL_NAME)
SFT_DATA = "results/sft_data"
SFT_OUTPUTS = {
    name: f"{SFT_DATA}/{name}.{ext}"
    for name, ext in (("examples", "jsonl"), ("trajectories", "jsonl"), ("stats", "json"))
}
# samples of one benchmark and document count, and their token statistics, per split
PREPARED = {
    "eval": {
        "samples": "results/data/{benchmark}_{num_docs}.jsonl",
        "stats": "results/data/{benchmark}_{num_docs}_stats.json",
    },
    "train": {
        "samples": "results/data/train/{benchmark}_{num_docs}.jsonl",
        "stats": "results/data/train/{benchmark}_{num_docs}_stats.json",
    },
}
EVAL_DIR = "results/eval/{run}"
# folder whose final/ holds each policy's weights
POLICY_RUN = {"sft": "results/train/sft", "rl": "results/train/rl-full"}
# The conda environment of every job under --sdm conda, chosen here once (docs/installation.md): the GPU
# build when a resources group asks for GPUs (config/paper.yaml), else the CPU build that `make install`
# makes. Paths are relative to the files in workflow/rules/.
USES_GPUS = any(group["gpu"] > 0 for group in config["resources"].values())
CONDA_ENV = "../envs/atommem-gpu.yaml" if USES_GPUS else "../envs/atommem-cpu.yaml"


def rl_variants(cfg):
    """rl.variants without the entries set to null: an overlay config (paper-cpu.yaml) cannot delete a key."""
    return {name: env for name, env in cfg["rl"]["variants"].items() if env is not None}


RL_VARIANTS = {"full": {}, **rl_variants(config)}
BASELINES = config["evaluate"]["baselines"]
# (benchmark, num_docs) pairs each evaluation job covers: every pair for the main table and figures
MAIN_GROUPS = [(b, n) for b in config["data"]["benchmarks"] for n in config["data"]["doc_counts"]] + [
    (name, n) for name in TASKS for n in config["data"][name]["doc_counts"]
]
ABLATION_GROUPS = [(b, n) for b in config["ablations"]["benchmarks"] for n in config["ablations"]["doc_counts"]]
# the library's named ablations plus the config's own
ABLATION_NAMES = [*ABLATIONS, *config["ablations"]["custom"]]


# Scheduling: the chain synthesize -> sft -> rl full -> its evaluations gates the end of the DAG, so its
# jobs start first whenever their threads fit; the rest (baselines, RL variants) fills the other cores.
CRITICAL_PRIORITY = 2
TRAINED_EVAL_PRIORITY = 1


def rl_priority(wildcards):
    return CRITICAL_PRIORITY if wildcards.variant == "full" else TRAINED_EVAL_PRIORITY


def one_of(names):
    """Wildcard regex accepting exactly these names (so run folders never match two rules)."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    benchmark="[a-z0-9]+",
    num_docs="[0-9]+",
    policy="zeroshot|sft|rl",
    alias=one_of(LOCAL_BUILDERS),
    variant=one_of(RL_VARIANTS),
    method=one_of(BASELINES) or "(?!)",  # no baselines: matches nothing
    ablation=one_of(ABLATION_NAMES),


def check_benchmarks(cfg):
    """Benchmark names are those of the loaders (atommem/data/loaders.py LOADERS) and of the generated
    tasks (atommem/tasks TASKS); every benchmark file the DAG reads has its data.sources entry."""
    data, train = cfg["data"], cfg["data"]["train"]
    generated = list(TASKS)
    names = {
        "data.benchmarks": (data["benchmarks"], LOADERS),
        "data.sources": (data["sources"], LOADERS),
        **{f"data.{name}.distractor_format": ([data[name]["distractor_format"]], LOADERS) for name in TASKS},
        "data.train.benchmark": ([train["benchmark"]], [*LOADERS, *generated]),
        "ablations.benchmarks": (cfg["ablations"]["benchmarks"], [*LOADERS, *generated]),
    }
    for key, (given, valid) in names.items():
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise ValueError(f"config {key}: {unknown} are not benchmarks here (valid: {', '.join(valid)})")
    read = {*data["benchmarks"], *cfg["ablations"]["benchmarks"]}
    read |= {data[name]["distractor_format"] for name in TASKS}
    if not train["source"]:
        read.add(train["benchmark"])
    missing = sorted(read - set(generated) - set(data["sources"]))
    if missing:
        raise ValueError(f"config data.sources: no entry for {missing} (the path of its release file)")


def check_cross_references(cfg):
    """Fail at parse time on names the schema alone cannot check."""
    check_baselines(cfg["evaluate"]["baselines"])
    check_benchmarks(cfg)
    shadowing = sorted(set(cfg["ablations"]["custom"]) & set(ABLATIONS))
    if shadowing:
        raise ValueError(f"config ablations.custom: {shadowing} already name the library's ablations; pick other names")
    unknown = sorted(set(cfg["ablations"]["runs"]) - set(ABLATION_NAMES))
    if unknown:
        raise ValueError(
            f"config ablations.runs: {unknown} are neither named ablations nor in ablations.custom "
            f"(valid: {', '.join(ABLATION_NAMES)})"
        )
    if "full" in cfg["rl"]["variants"]:
        raise ValueError("config rl.variants: 'full' is the full-memory run and cannot be redefined")
    for stage, path in cfg["accelerate_config"].items():
        if path and not Path(path).is_file():
            raise ValueError(f"config accelerate_config.{stage}: no file {path}")
    check_stage_sections(cfg)
    check_data_sources(cfg)


def used_sources(cfg):
    """{config key: source} of every benchmark file the DAG reads (evaluation, ablations, training, and
    the distractor file of a generated task when it is used)."""
    data, train = cfg["data"], cfg["data"]["train"]
    benchmarks = {*data["benchmarks"], *cfg["ablations"]["benchmarks"], train["benchmark"]}
    for name in TASKS:
        if data[name]["doc_counts"] or name in benchmarks:
            benchmarks.add(data[name]["distractor_format"])
    used = {f"data.sources.{b}": data["sources"][b] for b in sorted(benchmarks - set(TASKS))}
    if train["source"]:
        used["data.train.source"] = train["source"]
    return used


def check_data_sources(cfg):
    """Fail at parse time on a benchmark file the run cannot read: missing with no url to download it
    from, or a shipped sample where data.allow_sample is false (paper.yaml needs the full dev sets)."""
    for key, source in used_sources(cfg).items():
        path = source["path"]
        if not cfg["data"]["allow_sample"] and is_sample(path):
            raise ValueError(
                f"config {key}.path: {path} is a shipped sample, but data.allow_sample is false"
                f"{set_in(('data', 'allow_sample'))}; point it at the full file (docs/paper-scale.md)"
            )
        if bool(source["archive"]) != bool(source["member"]) or (source["member"] and not source["url"]):
            raise ValueError(f"config {key}: archive and member go together, with a url")
        if not source["url"] and not Path(path).is_file():
            raise ValueError(f"config {key}.path: no file {path}, and no {key}.url to download it from")
        if source["url"] and not source["sha256"] and workflow.is_main_process:
            logger.warning(f"atommem: config {key}.sha256 is null: the download from {source['url']} is not verified")


def set_in(keys):
    """' (in FILE)': the config file whose value of the nested key holds (the last --configfile that sets it,
    else the workflow's own config/config.yaml), or '' when none sets it (a schema default)."""
    command_line = [str(f) for f in workflow.overwrite_configfiles]
    own = [str(f) for f in workflow.configfiles if str(f) not in command_line]
    for configfile in [*reversed(command_line), *own]:
        section = yaml.safe_load(Path(configfile).read_text()) or {}
        for key in keys:
            section = section.get(key) if isinstance(section, dict) else None
        if section is not None:
            relative = os.path.relpath(configfile)
            return f" (in {configfile if relative.startswith('..') else relative})"
    return ""


def check_stage_sections(cfg):
    """Each recipe's ranges and choices are checked once, by its config dataclass: build them now, so a
    bad value fails at parse time with its workflow key (e.g. 'rl.clip_low: expected in [0, 1), got 2')."""
    syn, rl = dict(cfg["synthesize"]), dict(cfg["rl"])
    teacher_model = syn.pop("teacher_model")
    rl.pop("variants")
    data = {key: cfg["data"][key] for key in ("seed", "max_group_size")}
    evaluate = {key: cfg["evaluate"][key] for key in ("batch_size", "max_samples")}
    for cls, section, where in [
        (ModelConfig, cfg["model"], "model"),
        (SamplingConfig, cfg["sampling"], "sampling"),
        (EmbedderConfig, embedder_section(cfg), "embedder"),
        (EnvConfig, cfg["env"], "env"),
        (PrepareConfig, data, "data"),
        (ModelConfig, teacher_model, "synthesize.teacher_model"),
        (SynthesizeConfig, syn, "synthesize"),
        (SFTRecipeConfig, cfg["sft"], "sft"),
        (RLConfig, rl, "rl"),
        (EvaluateConfig, evaluate, "evaluate"),
        (PlotConfig, cfg["figures"], "figures"),
    ]:
        from_dict(cls, section, f"{where}.")
    env_switches = {
        **{f"rl.variants.{name}": switches for name, switches in rl_variants(cfg).items()},
        **{f"ablations.custom.{name}": switches for name, switches in cfg["ablations"]["custom"].items()},
    }
    for where, switches in env_switches.items():
        from_dict(EnvConfig, {**cfg["env"], **switches}, f"{where}.")


class OneLineDumper(yaml.SafeDumper):
    """Writes multi-line strings double-quoted with \\n escapes, so a config stays on one line."""


OneLineDumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if "\n" in text else None),
)


def inline_config(mapping):
    """One-line YAML flow mapping (JSON-like): the CLI reads inline configs as YAML, which takes
    1.0e-06 as a float but JSON's 1e-06 as a string."""
    text = yaml.dump(mapping, Dumper=OneLineDumper, default_flow_style=True, sort_keys=True, width=float("inf"))
    return text.strip()


def prepared_path(split, name, benchmark, num_docs):
    return PREPARED[split][name].format(benchmark=benchmark, num_docs=num_docs)


def samples_path(benchmark, num_docs):
    return prepared_path("eval", "samples", benchmark, num_docs)


def train_samples_path():
    train = config["data"]["train"]
    return prepared_path("train", "samples", train["benchmark"], train["num_docs"])


def policy_model_dir(policy):
    return BASE_MODEL if policy == "zeroshot" else f"{POLICY_RUN[policy]}/final"


def model_input(policy):
    """{"model": folder} when a job of this DAG makes the policy's folder; a hub model is no file."""
    folder = policy_model_dir(policy)
    return {"model": folder} if folder.startswith("results/") else {}


def eval_inputs(policy, groups):
    """Samples of every (benchmark, num_docs) group, and the policy's weights; None: the {policy} wildcard."""
    return lambda wildcards: {
        "samples": [samples_path(benchmark, num_docs) for benchmark, num_docs in groups],
        **model_input(policy or wildcards.policy),
    }


def embedder_section(cfg):
    """The embedder section the recipes read (EmbedderConfig); embedder.serve is the workflow's own
    (prerequisites.smk), so it changes no job's params."""
    return {key: value for key, value in cfg["embedder"].items() if key != "serve"}


def env_section(overrides=None):
    return {**config["env"], **(overrides or {})}


def tracking_section(rule_name, wildcards, run_name):
    """TrackingConfig; the parent run id is added in the shell (see tracking.smk)."""
    tracking = config["tracking"]
    return {
        "enabled": tracking["enabled"],
        "tracking_uri": tracking["tracking_uri"],
        "experiment": tracking["experiment"],
        "artifact_location": tracking["artifact_location"],
        "run_name": run_name,
        "tags": {"rule": rule_name, **{key: str(value) for key, value in wildcards.items()}},
    }


def resources_of(group):
    """gpu, mem_mb and runtime of a rule group; gpu is capped by --resources gpu=N at run time."""
    res = config["resources"][group]
    return {"gpu": res["gpu"], "mem_mb": res["mem_mb"], "runtime": res["runtime"]}


def eval_summaries(runs):
    return [f"{EVAL_DIR.replace('{run}', run)}/summary.json" for run in runs]


def eval_predictions(runs):
    return [f"{EVAL_DIR.replace('{run}', run)}/predictions.jsonl" for run in runs]


def group_names(groups):
    return [f"{benchmark}_{num_docs}" for benchmark, num_docs in groups]


def policy_runs():
    return [f"atommem-{p}" for p in config["evaluate"]["policies"]]


def main_table_runs():
    return policy_runs() + BASELINES


def ablation_table_runs():
    return [f"atommem-{config['ablations']['policy']}"] + [f"ablation-{name}" for name in config["ablations"]["runs"]]


def rl_metrics(variants):
    return {v: f"results/train/rl-{v}/training_metrics.jsonl" for v in variants}


def eval_outputs(run):
    folder = EVAL_DIR.replace("{run}", run)
    return {"summary": f"{folder}/summary.json", "predictions": f"{folder}/predictions.jsonl"}


def figure_outputs(figure):
    return {
        "pdf": report(f"results/figures/{figure}.pdf", caption=f"../report/{figure}.rst", category="Figures"),
        "png": f"results/figures/{figure}.png",
    }


FIGURES = ["op_frequency", "train_reward", "em_by_length"]
# gains compares each policy with the one before it: it needs two
TABLES = ["main", "ablations"] + (["gains"] if len(config["evaluate"]["policies"]) > 1 else [])


def final_outputs():
    return [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md")] + [
        f"results/figures/{f}.{ext}" for f in FIGURES for ext in ("pdf", "png")
    ]
