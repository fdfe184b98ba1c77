"""Every overlay of docs/experiments/ (config/experiments/*.yaml) is a valid workflow config when applied as
its report applies it: on config/config.yaml and config/learn.yaml, merged as Snakemake merges --configfile."""

import copy
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow/schemas/config.schema.yaml")
OVERLAYS = sorted((REPO / "config/experiments").glob("*.yaml"))
# overlays written to go on top of another overlay (their reports give the full --configfile list)
ON_TOP_OF = {
    "advantages-t07.yaml": "advantages.yaml",
    "rl-h200-long.yaml": "rl-h200.yaml",
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def test_there_are_overlays_and_each_has_a_report():
    assert OVERLAYS
    reports = "\n".join(p.read_text() for p in (REPO / "docs/experiments").glob("*.md"))
    for path in OVERLAYS:
        assert f"config/experiments/{path.name}" in reports, f"no report names {path.name}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlay_validates_on_the_learn_config(overlay):
    from snakemake.utils import update_config, validate

    config = copy.deepcopy(load(REPO / "config/config.yaml"))
    files = [REPO / "config/learn.yaml"]
    if overlay.name in ON_TOP_OF:
        files.append(REPO / "config/experiments" / ON_TOP_OF[overlay.name])
    for path in [*files, overlay]:
        update_config(config, load(path))
    validate(config, SCHEMA)
    for stage, path in config["accelerate_config"].items():
        assert not path or (REPO / path).is_file(), f"accelerate_config.{stage}: no file {path}"
