"""Shared fixtures: the model folders that tests load.

They use the normal model cache ($ATOMMEM_CACHE or ~/.cache/atommem/models), so the tiny random model
(about 8 s) and the SmolLM2 conversion (about 20 s, 517 MB) are built once per machine, not per run.
"""

from __future__ import annotations

import pytest

from atommem.llm.models import resolve_model


@pytest.fixture(scope="session")
def tiny_model_dir() -> str:
    return resolve_model("tiny-random")


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    return resolve_model("smollm2-135m")
