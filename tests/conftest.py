"""Shared fixtures: the model folders that tests load.

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


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one process-wide state: a test that builds Accelerator(mixed_precision="bf16") after
    another built one without would fail only because of test order. Each test starts from none."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
