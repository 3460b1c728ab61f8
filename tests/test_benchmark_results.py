"""The committed benchmark results follow one layout and one schema, and the docs cite only what exists."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from dance3d.benchmark_results import RESULT_FILE, ResultDir, load_results, save_result, validate_result

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("**/*.md")])
RESULT_FILES = sorted(RESULTS.glob(f"*/*/{RESULT_FILE}"))

RESULTS_PATH = re.compile(r"benchmarks/results/[A-Za-z0-9_./-]*[A-Za-z0-9_/-]")
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _payload(**overrides):
    payload = {
        "benchmark": "bench",
        "tag": "default",
        "seed": None,
        "quick": True,
        "settings": {},
        "machine": {"source_revision": None},
        "timings_s": {"total_s": 1.0},
        "targets": {"fast": True},
    }
    payload.update(overrides)
    return payload


def test_results_exist():
    assert RESULT_FILES, f"no {RESULT_FILE} under {RESULTS}"


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_result_follows_schema(path):
    payload = json.loads(path.read_text())  # strict: json.loads accepts NaN, so check below
    assert validate_result(payload) == []
    assert (payload["benchmark"], payload["tag"]) == (path.parent.parent.name, path.parent.name)
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()


def test_no_stray_files_outside_the_layout():
    files = [p.relative_to(RESULTS) for p in RESULTS.rglob("*") if p.is_file()]
    stray = [p for p in files if len(p.parts) != 3 or (p.suffix == ".json" and p.name != RESULT_FILE)]
    assert stray == [], "results must live in <benchmark>/<tag>/ with one result.json"
    folders = {p.parent for p in RESULTS.rglob("*") if p.is_file()}
    assert all((folder / RESULT_FILE).exists() for folder in folders), "a run folder without result.json"


def test_cited_result_paths_exist():
    missing = []
    for doc in DOCS:
        for cited in RESULTS_PATH.findall(doc.read_text()):
            if not (REPO / cited).exists():
                missing.append(f"{doc.relative_to(REPO)}: {cited}")
    assert missing == []


def test_relative_links_resolve():
    broken = []
    for doc in DOCS:
        for target in MARKDOWN_LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            if not (doc.parent / target.split("#", 1)[0]).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert broken == []


def test_save_result_writes_the_layout_and_strict_json(tmp_path):
    out = save_result(_payload(timings_s={"total_s": math.nan}), tmp_path)
    assert out == tmp_path / "bench" / "default" / RESULT_FILE
    assert json.loads(out.read_text())["timings_s"] == {"total_s": None}
    assert load_results(tmp_path, "bench")[0]["targets"] == {"fast": True}
    assert ResultDir(tmp_path, "bench", "default").file("clips.parquet").parent == out.parent


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"seed": "0"}, "'seed'"),
        ({"targets": {"drop_points": 0.5}}, "not a bool"),
        ({"machine": {}}, "source_revision"),
        ({"tag": "a/b"}, "plain name"),
    ],
)
def test_save_result_refuses_a_payload_off_the_schema(tmp_path, overrides, problem):
    with pytest.raises(ValueError, match=problem):
        save_result(_payload(**overrides), tmp_path)
    assert not any(tmp_path.rglob(RESULT_FILE))


def test_missing_key_is_reported():
    payload = _payload()
    del payload["quick"]
    assert validate_result(payload) == ["missing key 'quick'"]
