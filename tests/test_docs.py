"""What the README and docs/ tell a user to open or run exists: every repository path the README names (in
backticks or links), every `make` target and every `atommem <stage>` the README and docs/*.md name, and
every link between the docs. Paths under results/ are the workflow's outputs and are not checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from atommem.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
OUTPUTS = ("results/",)
# the repository's top-level entries: a token starting with one of them is a repository path
TOP_LEVEL = {entry.name for entry in REPO.iterdir() if not entry.name.startswith(".")} - {OUTPUTS[0].strip("/")}
# a command: at the start of a code line or span, or after ; & | ( $, past any VAR=value assignments
# (so `atommem/methods/  atommem and the baselines` in a layout block is no command)
COMMAND_START = r"(?:^|[;&|($])\s*(?:[A-Z_]+=\S*\s+)*"


def code_spans(text: str) -> list[str]:
    """Inline `code` and the lines of fenced code blocks: where commands and paths are written."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return re.findall(r"`([^`\n]+)`", prose) + [line for block in blocks for line in block.splitlines()]


def link_targets(text: str) -> list[str]:
    """Targets of markdown links that are not web addresses or anchors in the same file."""
    targets = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", text)]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


def named_paths(text: str) -> set[str]:
    """Tokens of code spans that start with a top-level entry of the repository, minus placeholders."""
    paths = set()
    for span in code_spans(text):
        for token in re.split(r"[\s=,'\"()]+", span):
            token = token.rstrip(".:;")
            if token.split("/")[0] in TOP_LEVEL and ("/" in token or token in TOP_LEVEL):
                if not re.search(r"[<>{}]|\.\.\.", token):
                    paths.add(token)
    return paths


def exists(path: Path) -> bool:
    return any(path.parent.glob(path.name)) if "*" in path.name else path.exists()


def test_every_path_the_readme_names_exists():
    text = (REPO / "README.md").read_text()
    named = named_paths(text) | set(link_targets(text))
    missing = sorted(p for p in named if not p.startswith(OUTPUTS) and not exists(REPO / p))
    assert named and not missing, f"README.md names paths that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS[1:], ids=lambda p: p.name)
def test_links_in_the_docs_point_to_files(doc):
    missing = [t for t in link_targets(doc.read_text()) if not t.startswith(OUTPUTS) and not exists(doc.parent / t)]
    assert not missing, f"{doc.relative_to(REPO)} links to files that do not exist: {missing}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w.-]+)\s*:(?!=)", (REPO / "Makefile").read_text(), re.M)) - {".PHONY"}


def named_subcommands(program: str) -> set[tuple[str, str]]:
    """(doc, word) for every `program word` command in the docs' code spans."""
    return {
        (doc.name, word)
        for doc in DOCS
        for span in code_spans(doc.read_text())
        for word in re.findall(COMMAND_START + program + r"\s+([a-z][\w-]*)", span)
    }


def test_every_make_target_the_docs_name_exists():
    targets = make_targets()
    assert {"install", "run", "test"} <= targets
    named = named_subcommands("make")
    assert named, "the docs name no make target"
    unknown = sorted((name, target) for name, target in named if target not in targets)
    assert not unknown, f"make targets the docs name but the Makefile lacks: {unknown}"


def test_every_atommem_stage_the_docs_name_exists():
    """Each stage is parsed by the CLI's own parser: an unknown one exits with status 2."""
    parser = build_parser()
    named = named_subcommands("atommem")
    assert named, "the docs name no atommem stage"
    unknown = []
    for name, stage in sorted(named):
        try:
            parser.parse_args([stage, "--print-config"])
        except SystemExit:
            unknown.append((name, stage))
    assert not unknown, f"atommem stages the docs name but the CLI lacks: {unknown}"


def test_the_workflow_catalog_file_names_what_exists():
    """.snakemake-workflow-catalog.yml: the keys the catalog reads, and the files its usage text names."""
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(catalog) <= {"mandatory-flags", "software-stack-deployment", "report"}
    assert set(catalog["software-stack-deployment"]) <= {"conda", "apptainer", "apptainer+conda"}
    for path in ["workflow/Snakefile", "config/README.md", *re.findall(r"[\w-]+/[\w./-]+\.\w+", str(catalog))]:
        assert (REPO / path).exists(), path
