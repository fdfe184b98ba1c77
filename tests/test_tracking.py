"""tracking.py against a real MLflow sqlite store in tmp_path."""

import dataclasses
import subprocess
import sys

import pytest

from atommem.tracking import (
    TrackingConfig,
    end_parent_run,
    ensure_store,
    start_parent_run,
    summary_metrics,
    tracked_run,
)


@pytest.fixture
def cfg(tmp_path):
    return TrackingConfig(enabled=True, tracking_uri=f"sqlite:///{tmp_path}/store/mlflow.db", experiment="t")


def client(cfg):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=cfg.tracking_uri)


def test_ensure_store_creates_once_with_absolute_artifacts(cfg, tmp_path):
    first = ensure_store(cfg.tracking_uri, cfg.experiment)
    assert ensure_store(cfg.tracking_uri, cfg.experiment) == first
    assert (tmp_path / "store" / "mlflow.db").is_file()
    location = client(cfg).get_experiment(first).artifact_location
    assert location == (tmp_path / "store" / "mlartifacts").as_uri()


def test_parent_and_nested_runs_with_params_metrics_tags_artifacts(cfg, tmp_path):
    parent = start_parent_run(dataclasses.replace(cfg, run_name="dag"))
    cfg.parent_run_id = parent
    cfg.run_name = "rl-hotpotqa"
    cfg.tags = {"rule": "rl", "dataset": "hotpotqa"}
    params = {"model": {"name": "tiny"}, "steps": 3, "long": "x" * 7000, "disabled_ops": ["update"]}
    params.update({f"extra{i}": i for i in range(120)})  # over MLflow's 100-per-batch limit
    artifact = tmp_path / "summary.json"
    artifact.write_text("{}")
    with tracked_run(cfg, params) as run:
        for step in range(3):
            run.log_metrics({"step": step, "reward/mean": 0.5 + step / 10, "note": "skipped"})
        run.log_artifact(artifact)
    end_parent_run(cfg, parent)

    c = client(cfg)
    data = c.get_run(run.run_id).data
    assert data.tags["mlflow.parentRunId"] == parent
    assert data.tags["rule"] == "rl" and data.tags["mlflow.runName"] == "rl-hotpotqa"
    assert data.params["model.name"] == "tiny" and data.params["disabled_ops"] == '["update"]'
    assert len(data.params["long"]) == 6000 and data.params["long"].endswith("...")
    assert "extra119" in data.params
    history = c.get_metric_history(run.run_id, "reward/mean")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.6), (2, 0.7)]
    assert "note" not in data.metrics and "step" not in data.metrics
    assert [a.path for a in c.list_artifacts(run.run_id)] == ["summary.json"]
    assert c.get_run(run.run_id).info.status == "FINISHED"
    assert c.get_run(parent).info.status == "FINISHED"


def test_failed_block_marks_run_failed(cfg):
    with pytest.raises(RuntimeError):
        with tracked_run(cfg, {}) as run:
            raise RuntimeError("boom")
    assert client(cfg).get_run(run.run_id).info.status == "FAILED"


def test_disabled_is_a_noop(tmp_path):
    cfg = TrackingConfig(enabled=False, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    with tracked_run(cfg, {"a": 1}) as run:
        run.log_metrics({"x": 1.0}, step=0)
        run.log_artifact(tmp_path / "does-not-exist")
    assert run.run_id is None
    assert list(tmp_path.iterdir()) == []


def test_missing_artifact_names_the_path(cfg, tmp_path):
    with tracked_run(cfg) as run, pytest.raises(FileNotFoundError, match="nope.txt"):
        run.log_artifact(tmp_path / "nope.txt")


def test_concurrent_ensure_store_after_creation(cfg):
    expected = ensure_store(cfg.tracking_uri, cfg.experiment)
    code = (
        "from atommem.tracking import ensure_store;"
        f"print(ensure_store({cfg.tracking_uri!r}, {cfg.experiment!r}))"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == expected


def test_summary_metrics_names():
    summary = {"groups": {"hotpotqa_10": {"em_macro": 0.5, "n": 3, "flag": True, "note": "x"}, "overall": {"em_macro": 0.4}}}
    assert summary_metrics(summary) == {"hotpotqa_10/em_macro": 0.5, "hotpotqa_10/n": 3, "overall/em_macro": 0.4}


def test_modules_do_not_import_mlflow():
    code = "import sys, atommem.tracking, atommem.recipes.plot, atommem.recipes.compare; print('mlflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


WRITERS = 6
STEPS = 20


def test_retry_locked_retries_only_a_locked_store(monkeypatch):
    import sqlite3

    from atommem import tracking

    calls = []

    def write(value):
        calls.append(value)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return value

    assert tracking.retry_locked(write, 7) == 7 and calls == [7, 7, 7]

    def broken():
        calls.append("broken")
        raise sqlite3.OperationalError("no such table: runs")

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        tracking.retry_locked(broken)
    assert calls == ["broken"]  # other errors are not retried
    monkeypatch.setattr(tracking, "LOCKED_RETRY_S", 0.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):  # and a lock that lasts gives up
        tracking.retry_locked(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")))


def test_concurrent_writers_lose_no_run_param_or_metric(cfg, tmp_path):
    """Six processes released together (a file barrier, after their imports) each create a nested run
    and log params and metrics into one sqlite store, as parallel DAG jobs do; every row arrives."""
    import sqlite3
    from pathlib import Path

    from tracking_writer import METRICS_PER_STEP, PARAMS

    parent = start_parent_run(cfg)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    writer = Path(__file__).with_name("tracking_writer.py")
    procs = [
        subprocess.Popen([sys.executable, str(writer), cfg.tracking_uri, cfg.experiment, parent, str(i), str(barrier),
                          str(WRITERS), str(STEPS)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(WRITERS)
    ]
    for i, proc in enumerate(procs):
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"writer {i}:\n{out[-3000:]}"

    db = sqlite3.connect(cfg.tracking_uri.removeprefix("sqlite:///"))
    runs = dict(db.execute(
        "SELECT run_uuid, status FROM runs WHERE run_uuid IN "
        "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId' AND value = ?)", (parent,)
    ).fetchall())
    assert len(runs) == WRITERS and set(runs.values()) == {"FINISHED"}
    marks = "?" * len(runs)
    ids = list(runs)
    params = db.execute(f"SELECT COUNT(*) FROM params WHERE run_uuid IN ({','.join(marks)})", ids).fetchone()[0]
    metrics = db.execute(f"SELECT COUNT(*) FROM metrics WHERE run_uuid IN ({','.join(marks)})", ids).fetchone()[0]
    assert params == WRITERS * PARAMS
    assert metrics == WRITERS * STEPS * METRICS_PER_STEP
    # and each value is the one its writer logged
    rows = db.execute("SELECT t.value, m.key, m.step, m.value FROM metrics m JOIN tags t ON t.run_uuid = m.run_uuid "
                      "AND t.key = 'writer'").fetchall()
    assert all(value == int(w) + step + int(key[1:]) for w, key, step, value in rows)
