"""Loaders for the three official benchmark formats, read on the shipped samples; download with checksum."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from atommem.data.download import ArchiveError, ChecksumError, fetch, fetch_member
from atommem.data.loaders import (
    SHIPPED_SAMPLES,
    DataError,
    is_sample,
    load_benchmark,
    load_hotpotqa,
    load_musique,
    shipped_sample,
)
from atommem.data.records import split_sentences

REPO_ROOT = Path(__file__).resolve().parents[1]


def raw_records(benchmark: str) -> list[dict]:
    path = shipped_sample(benchmark)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return json.loads(path.read_text(encoding="utf-8"))


def test_shipped_samples_live_in_the_repo_with_licence_notes():
    for benchmark in SHIPPED_SAMPLES:
        path = shipped_sample(benchmark)
        assert path.is_file()
        assert path.resolve().is_relative_to(REPO_ROOT / "data" / "benchmarks")
        assert "Licence" in (path.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("benchmark", list(SHIPPED_SAMPLES))
def test_loads_every_record_in_file_order_with_nonempty_fields(benchmark):
    raw = raw_records(benchmark)
    records = load_benchmark(benchmark, shipped_sample(benchmark))
    assert len(records) == len(raw)
    assert [r.id for r in records] == [x.get("_id", x.get("id")) for x in raw]
    for record, source in zip(records, raw):
        assert record.benchmark == benchmark
        assert record.question == source["question"] and record.question.strip()
        assert record.answers[0] == source["answer"] and record.answers[0].strip()
        assert record.paragraphs and all(p.title and p.text for p in record.paragraphs)
        assert record.supporting


@pytest.mark.parametrize("benchmark", ["hotpotqa", "2wikimultihopqa"])
def test_titled_supporting_facts_resolve_to_the_named_sentences(benchmark):
    records = load_benchmark(benchmark, shipped_sample(benchmark))
    for record, source in zip(records, raw_records(benchmark)):
        sentences_by_title = {title: sents for title, sents in reversed(source["context"])}
        expected = [sentences_by_title[t][i].strip() for t, i in source["supporting_facts"]]
        assert record.supporting_sentences() == expected
        assert [record.paragraphs[p].title for p, _ in record.supporting] == [t for t, _ in source["supporting_facts"]]


def test_hotpotqa_paragraph_text_joins_sentences_with_single_spaces():
    record = load_hotpotqa(shipped_sample("hotpotqa"))[0]
    for paragraph in record.paragraphs:
        assert "  " not in paragraph.text
        assert all(s == s.strip() for s in paragraph.sentences)


def test_musique_supporting_paragraphs_are_all_their_sentences_and_aliases_follow_the_answer():
    records = load_musique(shipped_sample("musique"))
    for record, source in zip(records, raw_records("musique")):
        supporting_idx = [j for j, p in enumerate(source["paragraphs"]) if p["is_supporting"]]
        assert sorted({p for p, _ in record.supporting}) == supporting_idx
        for j in supporting_idx:
            sentences = record.paragraphs[j].sentences
            assert [s for p, s in record.supporting if p == j] == list(range(len(sentences)))
            # sentence splitting only changes whitespace
            assert " ".join(sentences).split() == source["paragraphs"][j]["paragraph_text"].split()
        assert record.answers[0] == source["answer"]
        assert set(record.answers) == {source["answer"], *source["answer_aliases"]}
        assert len(record.answers) == len(set(record.answers))


def test_musique_keeps_same_title_paragraphs_apart():
    # MuSiQue records hold several paragraphs titled alike; support must point at the right one
    records = load_musique(shipped_sample("musique"))
    for record, source in zip(records, raw_records("musique")):
        for p, _ in record.supporting:
            assert source["paragraphs"][p]["is_supporting"]


def test_split_sentences_is_deterministic_and_keeps_abbreviations():
    text = 'J. R. R. Tolkien moved to St. Louis in 1950. He wrote "Books." Then he left! Was it 2001? Yes.'
    sentences = split_sentences(text)
    assert sentences == (
        "J. R. R. Tolkien moved to St. Louis in 1950.",
        'He wrote "Books."',
        "Then he left!",
        "Was it 2001?",
        "Yes.",
    )
    assert split_sentences(text) == sentences
    assert split_sentences("no terminal punctuation") == ("no terminal punctuation",)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def hotpot_record(**override) -> dict:
    record = {
        "_id": "q1",
        "question": "Who?",
        "answer": "Ann",
        "context": [["Ann", ["Ann is a person.", " She lives here."]], ["Bob", ["Bob is not."]]],
        "supporting_facts": [["Ann", 0], ["Ann", 1]],
    }
    record.update(override)
    return record


def test_malformed_json_names_the_file(tmp_path):
    path = write(tmp_path / "bad.json", '[{"_id": ')
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        load_hotpotqa(path)


def test_top_level_must_be_a_list(tmp_path):
    path = write(tmp_path / "obj.json", json.dumps(hotpot_record()))
    with pytest.raises(DataError, match=r"obj\.json: expected a JSON list"):
        load_hotpotqa(path)


def test_missing_field_names_file_record_index_and_field(tmp_path):
    broken = hotpot_record()
    del broken["supporting_facts"]
    path = write(tmp_path / "x.json", json.dumps([hotpot_record(), hotpot_record(_id="q2"), broken]))
    with pytest.raises(DataError) as err:
        load_hotpotqa(path)
    assert str(err.value) == f"{path}: record 2: field 'supporting_facts' missing"


@pytest.mark.parametrize(
    "override, field",
    [
        ({"answer": 3}, "answer"),
        ({"context": [["Ann", "not a list"]]}, "context[0]"),
        ({"supporting_facts": [["Nobody", 0]]}, "supporting_facts[0]"),
        ({"supporting_facts": [["Ann", 7]]}, "supporting_facts[0]"),
        ({"supporting_facts": [["Ann", "0"]]}, "supporting_facts[0]"),
    ],
)
def test_wrong_field_values_name_the_field(tmp_path, override, field):
    path = write(tmp_path / "x.json", json.dumps([hotpot_record(**override)]))
    with pytest.raises(DataError, match=re.escape(f"x.json: record 0: field '{field}'")):
        load_hotpotqa(path)


def test_musique_bad_line_and_bad_paragraph_are_located(tmp_path):
    good = raw_records("musique")[0]
    path = write(tmp_path / "m.jsonl", json.dumps(good) + "\n\n{oops\n")
    with pytest.raises(DataError, match=r"m\.jsonl: record 1 \(line 3\): not valid JSON"):
        load_musique(path)
    broken = json.loads(json.dumps(good))
    del broken["paragraphs"][4]["is_supporting"]
    path = write(tmp_path / "m.jsonl", json.dumps(good) + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl: record 1: paragraphs\[4\]: field 'is_supporting' missing"):
        load_musique(path)


def test_unknown_benchmark_lists_valid_names(tmp_path):
    with pytest.raises(DataError, match="hotpotqa, 2wikimultihopqa, musique"):
        load_benchmark("squad", tmp_path / "x.json")


@pytest.fixture
def http_dir(tmp_path):
    """A real local HTTP server over tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_downloads_verifies_and_skips_existing(http_dir, tmp_path):
    served, base = http_dir
    payload = b"line\n" * 50_000
    (served / "dev.json").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "dev.json"

    assert fetch(f"{base}/dev.json", dest, digest) == dest
    assert dest.read_bytes() == payload

    (served / "dev.json").unlink()  # a second fetch must not touch the network
    assert fetch(f"{base}/dev.json", dest, digest) == dest
    assert dest.read_bytes() == payload


def test_fetch_checksum_mismatch_leaves_nothing(http_dir, tmp_path):
    served, base = http_dir
    (served / "dev.json").write_bytes(b"tampered")
    dest = tmp_path / "dev.json"
    with pytest.raises(ChecksumError) as err:
        fetch(f"{base}/dev.json", dest, "0" * 64)
    message = str(err.value)
    assert str(dest) in message and "0" * 64 in message and hashlib.sha256(b"tampered").hexdigest() in message
    assert list(tmp_path.iterdir()) == [served]


def test_fetch_existing_file_with_wrong_checksum_is_an_error(tmp_path):
    dest = write(tmp_path / "dev.json", "edited by hand")
    with pytest.raises(ChecksumError, match="expected " + "1" * 64):
        fetch("http://127.0.0.1:9/never-contacted", dest, "1" * 64)


def test_prepare_downloads_the_configured_file_first(http_dir, tmp_path):
    from atommem.cli import main as cli_main

    served, base = http_dir
    official = shipped_sample("2wikimultihopqa").read_bytes()
    (served / "dev.json").write_bytes(official)
    dest, out = tmp_path / "downloads" / "dev.json", tmp_path / "samples.jsonl"
    argv = [
        "prepare",
        "--config", json.dumps({"benchmark": "2wikimultihopqa", "num_docs": 30, "max_samples": 2}),
        "--set", f"url={base}/dev.json",
        "--set", f"sha256={hashlib.sha256(official).hexdigest()}",
        "--set", f"path={dest}",
        "--set", f"out={out}",
    ]
    assert cli_main(argv) == 0
    assert dest.read_bytes() == official
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


def release_zip(path: Path, members: dict[str, bytes]) -> str:
    """A zip in the layout of the 2Wiki and MuSiQue releases (files inside a folder); returns its sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_member_extracts_one_file_of_a_verified_archive(http_dir, tmp_path):
    served, base = http_dir
    dev = shipped_sample("2wikimultihopqa").read_bytes()
    digest = release_zip(served / "data_ids_april7.zip", {"data_ids_april7/dev.json": dev,
                                                          "data_ids_april7/train.json": b"[]",
                                                          "__MACOSX/data_ids_april7/._dev.json": b"junk"})
    archive, dest = tmp_path / "downloads" / "data.zip", tmp_path / "downloads" / "2wiki" / "dev.json"
    # by name: the one file called dev.json, wherever the release nests it
    assert fetch_member(f"{base}/data_ids_april7.zip", archive, "dev.json", dest, digest) == dest
    assert dest.read_bytes() == dev
    assert sorted(p.name for p in dest.parent.iterdir()) == ["dev.json"]  # no temporary file left

    (served / "data_ids_april7.zip").unlink()  # an extracted file is kept, with no download
    archive.unlink()
    assert fetch_member(f"{base}/data_ids_april7.zip", archive, "dev.json", dest, digest).read_bytes() == dev


def test_fetch_member_refuses_a_tampered_archive_and_a_missing_member(http_dir, tmp_path):
    served, base = http_dir
    digest = release_zip(served / "musique.zip", {"data/musique_ans_v1.0_dev.jsonl": b"{}\n"})
    archive, dest = tmp_path / "musique.zip", tmp_path / "dev.jsonl"
    with pytest.raises(ChecksumError, match="expected " + "0" * 64):
        fetch_member(f"{base}/musique.zip", archive, "data/musique_ans_v1.0_dev.jsonl", dest, "0" * 64)
    assert not archive.exists() and not dest.exists()
    with pytest.raises(ArchiveError, match=r"musique\.zip: no single member 'dev\.jsonl' \(it holds data/musique"):
        fetch_member(f"{base}/musique.zip", archive, "dev.jsonl", dest, digest)
    assert archive.exists() and not dest.exists()  # the verified archive stays for the next try
    (served / "page.zip").write_text("<html>quota exceeded</html>")
    with pytest.raises(ArchiveError, match="not a zip archive"):
        fetch_member(f"{base}/page.zip", tmp_path / "page.zip", "dev.json", tmp_path / "page.json")


def test_prepare_extracts_the_configured_member_of_a_release_archive(http_dir, tmp_path):
    from atommem.cli import main as cli_main

    served, base = http_dir
    digest = release_zip(served / "musique_v1.0.zip",
                         {"data/musique_ans_v1.0_dev.jsonl": shipped_sample("musique").read_bytes()})
    dest, out = tmp_path / "downloads" / "musique_ans_v1.0_dev.jsonl", tmp_path / "samples.jsonl"
    config = {"benchmark": "musique", "num_docs": 30, "max_samples": 2, "url": f"{base}/musique_v1.0.zip",
              "sha256": digest, "archive": str(tmp_path / "downloads" / "musique_v1.0.zip"),
              "member": "data/musique_ans_v1.0_dev.jsonl", "path": str(dest), "out": str(out)}
    assert cli_main(["prepare", "--config", json.dumps(config)]) == 0
    assert dest.read_bytes() == shipped_sample("musique").read_bytes()
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    del config["archive"]
    assert cli_main(["prepare", "--config", json.dumps(config)]) == 2  # archive and member go together


def test_every_shipped_sample_is_recognised_as_one():
    assert all(is_sample(path) for path in SHIPPED_SAMPLES.values())
    assert not any(is_sample(name) for name in ("hotpot_dev_distractor_v1.json", "dev.json",
                                                "musique_ans_v1.0_dev.jsonl"))
