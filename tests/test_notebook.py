"""notebooks/compare_runs.ipynb runs top to bottom against a real MLflow store logged through tracking.py."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from atommem.tracking import TrackingConfig, start_parent_run, summary_metrics, tracked_run

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_runs.ipynb"


def make_store(uri: str) -> None:
    """One DAG invocation: two RL runs with step metrics, three evaluations with summary metrics."""
    base = TrackingConfig(enabled=True, tracking_uri=uri, run_name="dag")
    parent = start_parent_run(base)

    def job(name, rule):
        return TrackingConfig(enabled=True, tracking_uri=uri, run_name=name, parent_run_id=parent, tags={"rule": rule})

    for name, reward0 in [("rl-full", 0.6), ("rl-scratchpad-only", 0.5)]:
        params = {"run": name, "steps": 5, "env": {"use_store": name == "rl-full"}}
        with tracked_run(job(name, "rl"), params) as run:
            for step in range(5):
                run.log_metrics({"step": step, "reward/mean": reward0 + 0.01 * step,
                                 **{f"ops/{op}_per_turn": 0.1 * step for op in ("create", "read", "update", "delete")}})
    for name, method, em in [("memagent", "memagent", 0.2), ("rag", "rag", 0.25), ("atommem-rl", "atommem", 0.4)]:
        for docs in (10, 20):
            groups = {f"hotpotqa_{docs}": {"em_macro": em - docs / 200, "f1_macro": em, "cost_input_tokens": 1e4},
                      f"musique_{docs}": {"em_macro": em / 2, "f1_macro": em / 2, "cost_input_tokens": 2e4}}
            with tracked_run(job(name, "evaluate"), {"run": name, "method": method, "policy": "zero-shot"}) as run:
                run.log_metrics(summary_metrics({"groups": groups}))


def execute(monkeypatch, uri):
    monkeypatch.setenv("ATOMMEM_MLFLOW_URI", uri)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb


def test_notebook_runs_against_store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    make_store(uri)
    nb = execute(monkeypatch, uri)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    text = "\n".join(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")) for out in outputs)
    assert "8 job runs" in text  # the parent run is not listed
    for label in ("rl-full", "rl-scratchpad-only", "memagent", "atommem-rl", "em_macro", "cost_input_tokens"):
        assert label in text
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) == 3  # reward, op frequency, EM by length


def test_notebook_names_a_missing_store(tmp_path, monkeypatch):
    with pytest.raises(CellExecutionError, match="no MLflow store at"):
        execute(monkeypatch, f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists()
