"""One layout and one JSON schema for benchmark results.

Every benchmark run writes ``<root>/<benchmark>/<tag>/result.json`` (plus its Parquet tables and
figures beside it in the same folder). ``result.json`` always carries the keys in
:data:`REQUIRED_KEYS`; :func:`validate_result` checks them and :func:`save_result` refuses a payload
that does not follow the schema. NaN and infinities are written as ``null`` so that every result
file is strict JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiling.strict_json import dumps_strict, strict_json

RESULT_FILE = "result.json"

REQUIRED_KEYS: dict[str, type | tuple[type, ...]] = {
    "benchmark": str,  # the benchmark's name, e.g. "dance_untrimmed"; also the folder name
    "tag": str,  # the run's name inside the benchmark folder
    "seed": (int, type(None)),  # the run's seed, None when a run has none
    "quick": bool,  # a --quick smoke run (never cited)
    "settings": dict,  # everything needed to re-run it (command-line values, data, model)
    "machine": dict,  # profiling.env.collect_env(): CPU, torch, threads, source_revision...
    "timings_s": dict,  # wall time of the run's parts, seconds
    "targets": dict,  # name -> bool: the benchmark's pass/fail targets (may be empty)
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate_result(payload: dict[str, Any]) -> list[str]:
    """The schema violations of ``payload`` (empty when it follows the schema)."""
    problems = []
    for key, kind in REQUIRED_KEYS.items():
        if key not in payload:
            problems.append(f"missing key {key!r}")
        elif not isinstance(payload[key], kind):
            problems.append(f"{key!r} is {type(payload[key]).__name__}, expected {kind}")
    for key in ("benchmark", "tag"):
        if isinstance(payload.get(key), str) and not _NAME.match(payload[key]):
            problems.append(f"{key!r} {payload[key]!r} is not a plain name (letters, digits, '.', '_', '-')")
    targets = payload.get("targets")
    if isinstance(targets, dict):
        problems += [f"target {k!r} is {v!r}, not a bool" for k, v in targets.items() if not isinstance(v, bool)]
    machine = payload.get("machine")
    if isinstance(machine, dict) and "source_revision" not in machine:
        problems.append("machine has no 'source_revision'")
    return problems


@dataclass(frozen=True)
class ResultDir:
    """The folder of one benchmark run: ``<root>/<benchmark>/<tag>/``."""

    root: Path
    benchmark: str
    tag: str

    @property
    def path(self) -> Path:
        return Path(self.root) / self.benchmark / self.tag

    def file(self, name: str) -> Path:
        """A file of this run (a figure, a Parquet table); creates the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / name

    def save(self, payload: dict[str, Any]) -> Path:
        """Validate and write ``result.json``; the payload's benchmark and tag must match the folder's."""
        return save_result(payload, self.root)


def save_result(payload: dict[str, Any], root: str | Path) -> Path:
    """Write ``payload`` to ``<root>/<benchmark>/<tag>/result.json`` after checking the schema."""
    payload = strict_json(payload)
    problems = validate_result(payload)
    if problems:
        raise ValueError("benchmark result does not follow the schema: " + "; ".join(problems))
    out = Path(root) / payload["benchmark"] / payload["tag"] / RESULT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(dumps_strict(payload) + "\n")
    tmp.replace(out)
    return out


def load_results(root: str | Path, benchmark: str | None = None) -> list[dict[str, Any]]:
    """Every ``result.json`` under ``root`` (or under one benchmark's folder), sorted by path."""
    base = Path(root) / benchmark if benchmark else Path(root)
    return [json.loads(p.read_text()) for p in sorted(base.glob(f"**/{RESULT_FILE}"))]
