# What the jobs of this run need from the machine, checked by the Snakefile's onstart: in the main process,
# once the DAG is known (so only for the jobs that will run) and before the first of them; never in dry-runs.
# The config's own errors (keys, values, data files) fail earlier, at parse time (check_cross_references).
from atommem.workflow_checks import check as check_machine

# the rules whose jobs call each kind of server
EMBEDDER_RULES = {"synthesize", "rl", "evaluate_policy", "evaluate_baseline", "evaluate_ablation"}
EVALUATE_RULES = {"evaluate_policy", "evaluate_baseline", "evaluate_ablation"}


def servers_needed(cfg, rules):
    """{config key: base_url} of the servers the jobs of `rules` call."""
    servers = {}
    embedder = cfg["embedder"]
    if rules & EMBEDDER_RULES and embedder["kind"] == "openai":
        servers["embedder.base_url"] = embedder["base_url"]
    if rules & EVALUATE_RULES:
        judge = cfg["evaluate"]["judge"]
        if judge.get("enabled"):
            servers["evaluate.judge.base_url"] = judge.get("base_url")
        if cfg["model"]["backend"] == "openai":
            servers["model.base_url"] = cfg["model"]["base_url"]
    teacher = cfg["synthesize"]["teacher_model"]
    if "synthesize" in rules and cfg["synthesize"]["teacher"] != "oracle" and teacher["backend"] == "openai":
        servers["synthesize.teacher_model.base_url"] = teacher["base_url"]
    # a missing URL is the recipe's error (its config check names the key), not an unreachable server
    return {key: url for key, url in servers.items() if url}


def resource_group(rule):
    """The resources.<group> a rule takes its gpu from (each rule calls resources_of(group))."""
    return next((g for g in config["resources"] if rule == g or rule.startswith(f"{g}_")), "report")


def gpus_needed(jobs):
    """{config key: GPUs} of the largest job (its gpu after --resources gpu=N capped it)."""
    needed = {}
    largest = max(jobs, key=lambda job: job.resources.get("gpu", 0), default=None)
    if largest is not None and largest.resources.get("gpu", 0) > 0:
        needed[f"resources.{resource_group(largest.rule.name)}.gpu"] = largest.resources.get("gpu", 0)
    return needed


def check_prerequisites():
    """Raise with one line per unmet need (atommem.workflow_checks). GPUs are checked on local runs only:
    a cluster's jobs get theirs from the scheduler, on other machines."""
    jobs = list(workflow.dag.needrun_jobs())
    rules = {job.rule.name for job in jobs}
    gpus = gpus_needed(jobs) if workflow.local_exec else {}
    check_machine(servers_needed(config, rules), gpus)
