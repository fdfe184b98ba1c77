"""A resumable output folder keeps only work of its own config and inputs."""

from __future__ import annotations

import logging

import yaml

from atommem.fingerprint import claim_output_dir

CONFIG = {"learning_rate": 1e-3, "env": {"top_k": 6}, "out_dir": "a", "tracking": {"enabled": True}}


def start(out, config, inputs):
    """Claim the folder, then leave partial work in it as a killed run would."""
    moved = claim_output_dir(out, config, inputs, resumable=["partial.jsonl", "checkpoints"])
    (out / "partial.jsonl").write_text('{"done": 1}\n')
    return moved


def test_same_config_and_inputs_resume_other_ones_start_afresh(tmp_path, caplog):
    out, model, samples = tmp_path / "out", tmp_path / "model", tmp_path / "samples.jsonl"
    model.mkdir()
    (model / "config.json").write_text("{}")
    samples.write_text('{"id": 1}\n')
    inputs = {"model": str(model), "samples": [str(samples)], "hub": "org/name", "none": None}

    assert not start(out, CONFIG, inputs)  # nothing there yet
    assert yaml.safe_load((out / "config.yaml").read_text()) == CONFIG
    # output paths and tracking do not define the work: resumed
    assert not start(out, {**CONFIG, "out_dir": "b", "tracking": {"enabled": False}}, inputs)
    assert (out / "partial.jsonl").exists()

    caplog.set_level(logging.WARNING, logger="atommem")
    for change in ({**CONFIG, "env": {"top_k": 3}}, CONFIG):  # a key, then back (differs from the last)
        assert start(out, change, inputs)
    samples.write_text('{"id": 2}\n')  # same path, other content
    assert start(out, CONFIG, inputs)
    (model / "model.safetensors").write_bytes(b"weights")  # a rewritten model folder
    assert start(out, CONFIG, inputs)
    assert len(list(out.glob("partial.jsonl.stale-*"))) >= 1
    lines = [r.getMessage() for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(lines) == 4
    assert "config.env.top_k" in lines[0] and "inputs.samples" in lines[2] and "inputs.model" in lines[3]


def test_work_without_a_fingerprint_is_not_trusted(tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints" / "step_1").mkdir(parents=True)
    (out / "checkpoints" / "empty").mkdir()
    assert claim_output_dir(out, CONFIG, {}, resumable=["checkpoints", "partial.jsonl"])
    assert not (out / "checkpoints").exists() and len(list(out.glob("checkpoints.stale-*"))) == 1
    (out / "checkpoints").mkdir()  # an empty folder holds no work
    assert not claim_output_dir(out, {**CONFIG, "learning_rate": 1.0}, {}, resumable=["checkpoints"])


def test_a_new_config_key_is_named_even_when_it_is_none(tmp_path, caplog):
    """A code update that adds a config field (default None) changes the work's fingerprint; the log line
    must say which key, not 'changed: ' with nothing after it."""
    start(tmp_path, CONFIG, {})
    caplog.set_level(logging.WARNING, logger="atommem")
    assert start(tmp_path, {**CONFIG, "env": {"top_k": 6, "new_switch": None}}, {})
    assert "changed: config.env.new_switch" in caplog.text, caplog.text
