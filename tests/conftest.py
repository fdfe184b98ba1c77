"""Shared fixtures: the model folders that tests load, and the one full local run of the test DAG.

They use the normal model cache ($ATOMMEM_CACHE or ~/.cache/atommem/models), so the tiny random model
(about 8 s) and the SmolLM2 conversion (about 20 s, 517 MB) are built once per machine, not per run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from atommem.llm.models import resolve_model

# property tests draw the same examples on every run, so CI cannot pass or fail by luck;
# HYPOTHESIS_PROFILE=explore draws new ones (tests/test_fuzz.py has its own seeded generator)
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    return resolve_model("tiny-random")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def killed_test_dag(tmp_path_factory):
    """The test config's full DAG, killed mid-RL and rerun to the end (tests/test_workflow.py): the one full
    local run of that DAG the suite makes, shared by the tests that need a finished run."""
    from test_workflow import kill_mid_rl_then_rerun, workdir

    return kill_mid_rl_then_rerun(workdir(tmp_path_factory.mktemp("test-dag")))


@pytest.fixture(scope="session")
def rl_straight(tmp_path_factory, tiny_model_dir):
    """The uninterrupted RL run (tests/test_preemption.py's config) that interrupted runs must end equal to,
    locally and under SLURM."""
    from test_preemption import rl_config, run_to_end

    folder = tmp_path_factory.mktemp("rl-straight")
    run_to_end("rl", rl_config(folder, tiny_model_dir, folder / "out"))
    return folder / "out"


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one process-wide state: a test that builds Accelerator(mixed_precision="bf16") after
    another built one without would fail only because of test order. Each test starts from none."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
