# What the jobs of this run need from the machine. The Snakefile's onstart (main process, once the DAG is known,
# so only for the jobs that will run, and before the first of them; never in dry-runs) checks the servers they
# call and the GPUs they ask for, then starts the embedding server the workflow runs itself (embedder.serve);
# onsuccess and onerror stop it. The config's own errors (keys, values, data files) fail earlier, at parse time.
import shlex

from atommem.workflow_checks import check as check_machine
from atommem.workflow_services import Service, ServiceError, local_port

# the rules whose jobs call each kind of server
EMBEDDER_RULES = {"synthesize", "rl", "evaluate_policy", "evaluate_baseline", "evaluate_ablation"}
EVALUATE_RULES = {"evaluate_policy", "evaluate_baseline", "evaluate_ablation"}
EMBEDDER_SERVER_LOG = "results/logs/embedder_server.log"


def embedder_command(cfg):
    """embedder.serve.command with {name} and {port} filled in, as an argument list."""
    embedder = cfg["embedder"]
    port = local_port(embedder["base_url"], "embedder.base_url")
    try:
        return shlex.split(embedder["serve"]["command"].format(name=embedder["name"], port=port))
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"config embedder.serve.command: {err!r}; the placeholders are {{name}} and {{port}}")


def check_embedder_serve(cfg):
    """At parse time: a server the workflow starts is an openai embedder's, reached on this machine."""
    if cfg["embedder"]["serve"]:
        if cfg["embedder"]["kind"] != "openai":
            raise ValueError(
                f"config embedder.serve: set for embedder.kind {cfg['embedder']['kind']!r}; only the "
                "openai kind calls a server"
            )
        embedder_command(cfg)


check_embedder_serve(config)


def servers_needed(cfg, rules, serve_embedder):
    """{config key: base_url} of the servers the jobs of `rules` call, but the one the workflow starts."""
    servers = {}
    embedder = cfg["embedder"]
    if rules & EMBEDDER_RULES and embedder["kind"] == "openai" and not serve_embedder:
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


def gpus_needed(jobs, serve_embedder):
    """{config key: GPUs} held at once at worst: the largest job (its gpu after --resources gpu=N capped it)
    beside the embedding server the workflow starts."""
    needed = {}
    largest = max(jobs, key=lambda job: job.resources.get("gpu", 0), default=None)
    if largest is not None and largest.resources.get("gpu", 0) > 0:
        needed[f"resources.{resource_group(largest.rule.name)}.gpu"] = largest.resources.get("gpu", 0)
    if serve_embedder and config["embedder"]["serve"]["gpu"] > 0:
        needed["embedder.serve.gpu"] = config["embedder"]["serve"]["gpu"]
    return needed


SERVICES = []  # the servers this run started, stopped by stop_services


def prepare_machine():
    """Raise with one line per unmet need (atommem.workflow_checks), then start the embedding server when a
    job that will run embeds. GPUs are checked on local runs only: a cluster's jobs get theirs from the
    scheduler, on other machines, where a server started here at 127.0.0.1 is out of reach."""
    jobs = list(workflow.dag.needrun_jobs())
    rules = {job.rule.name for job in jobs}
    serve_embedder = bool(config["embedder"]["serve"]) and bool(rules & EMBEDDER_RULES)
    if serve_embedder and not workflow.local_exec:
        raise ServiceError(
            "config embedder.serve: the workflow starts its server beside snakemake, which cluster "
            "jobs cannot reach; run snakemake inside the allocation, or set serve: null and "
            "embedder.base_url to a server you run"
        )
    gpus = gpus_needed(jobs, serve_embedder) if workflow.local_exec else {}
    check_machine(servers_needed(config, rules, serve_embedder), gpus)
    if serve_embedder:
        serve = config["embedder"]["serve"]
        argv = [LAUNCH, str(serve["gpu"]), "serve", *embedder_command(config)]
        logger.info(
            f"atommem: starting the embedding server (embedder.serve): {shlex.join(argv)}; log {EMBEDDER_SERVER_LOG}"
        )
        server = Service(
            "embedder.serve", argv, config["embedder"]["base_url"], EMBEDDER_SERVER_LOG, serve["ready_timeout"]
        )
        SERVICES.append(server.start())
        logger.info(f"atommem: the embedding server answers at {config['embedder']['base_url']}")


def stop_services():
    """Stop what prepare_machine started (onsuccess, onerror; an exit without them: atexit in the Service)."""
    while SERVICES:
        SERVICES.pop().stop()
        logger.info("atommem: stopped the embedding server")
