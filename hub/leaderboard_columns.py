"""The leaderboard's column schema: the ``Column`` records, every list derived
from them, and the functions that check, reduce and format rows by it.

The columns are defined once, in ``COLUMNS``; the SQL table (``hub.leaderboard``),
the CSV header, the JSON keys and every list the UI needs (``DISPLAY_COLUMNS``,
``NUMERIC_COLUMNS``, ...) are derived from it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from hub.tasks import TASKS, Task


@dataclass(frozen=True)
class Column:
    """One leaderboard column.

    ``sql_type`` is the SQLite declaration; ``higher_is_better`` is None for
    columns that are not a metric; ``fmt`` is a ``format()`` spec for display;
    ``json`` marks TEXT columns holding JSON; ``display`` marks the columns shown
    in the leaderboard table by default.
    """

    name: str
    sql_type: str
    label: str
    description: str
    higher_is_better: bool | None = None
    fmt: str | None = None
    json: bool = False
    display: bool = True


C = Column
COLUMNS: tuple[Column, ...] = (
    C("row_id", "INTEGER PRIMARY KEY AUTOINCREMENT", "ID", "Row id, assigned by the store.", display=False),
    C("created_at", "TEXT", "Added (UTC)", "When the row was added, ISO 8601 in UTC."),
    C("model", "TEXT", "Model path", "Path or hub id of the model, as given.", display=False),
    C("name", "TEXT", "Model", "Short display name."),
    C("task", "TEXT", "Task", "Task name, e.g. 'sst2'."),
    C("role", "TEXT", "Role", "'teacher', 'student', 'arch' (untrained architecture) or 'model'."),
    C("teacher", "TEXT", "Teacher", "Teacher a student was distilled from (empty otherwise)."),
    C("status", "TEXT", "Status", "'finished', 'stopped' or 'failed'."),
    C("ranked", "INTEGER", "Ranked", "1 when the run finished with quality numbers, else 0."),
    C("quantization", "TEXT", "Quantization", "'fp32', 'int8' or 'int8 unavailable: <reason>'."),
    C("runtime", "TEXT", "Runtime", "'torch' (PyTorch eager) or 'onnx' (ONNX Runtime)."),
    C("protocol", "TEXT", "Protocol", "'full' (CLI benchmark, fresh process) or 'quick' (a few seconds, after a job)."),
    C("accuracy", "REAL", "Accuracy", "Accuracy on the evaluation set (classification).", True, ".4f"),
    C("f1", "REAL", "F1", "F1 on the evaluation set (classification: 0-1; SQuAD: 0-100).", True, ".4f"),
    C("exact_match", "REAL", "EM", "SQuAD exact match, 0-100.", True, ".2f"),
    C("HasAns_f1", "REAL", "HasAns F1", "SQuAD F1 on answerable questions, 0-100.", True, ".2f"),
    C("HasAns_exact", "REAL", "HasAns EM", "SQuAD exact match on answerable questions, 0-100.", True, ".2f", display=False),
    C("NoAns_f1", "REAL", "NoAns F1", "SQuAD 2.0 F1 on unanswerable questions, 0-100.", True, ".2f", display=False),
    C("NoAns_exact", "REAL", "NoAns EM", "SQuAD 2.0 exact match on unanswerable questions.", True, ".2f", display=False),
    C("top1_accuracy", "REAL", "Top-1", "Masked-token top-1 accuracy.", True, ".4f"),
    C("top5_accuracy", "REAL", "Top-5", "Masked-token top-5 accuracy.", True, ".4f"),
    C("perplexity", "REAL", "Perplexity", "Perplexity on held-out text (lower is better).", False, ".2f"),
    C("ttft_ms", "REAL", "TTFT ms", "Generation: time to first token at batch 1, ms.", False, ".1f"),
    C("tokens_per_s", "REAL", "Tokens/s", "Generation: decode tokens per second at batch 1.", True, ".1f"),
    C("speedup_tokens_per_s", "REAL", "Decode speedup", "Tokens/s over the teacher's.", True, ".2f"),
    C("eval_size", "INTEGER", "Eval size", "Examples (questions, blocks) in the evaluation set.", display=False),
    C("max_length", "INTEGER", "Max length", "Tokens per example in training and evaluation.", display=False),
    C("retention", "REAL", "Retention", "Student quality divided by the teacher's.", True, ".4f"),
    C("agreement", "REAL", "Agreement", "Fraction of predictions equal to the teacher's.", True, ".4f"),
    C("retention_fp32", "REAL", "Retention vs fp32", "A quantized variant's accuracy divided by its fp32 model's.", True, ".4f"),
    C("latency_p50_ms", "REAL", "p50 ms", "Median latency of one example, ms.", False, ".2f"),
    C("latency_p90_ms", "REAL", "p90 ms", "90th percentile latency, ms.", False, ".2f"),
    C("latency_p99_ms", "REAL", "p99 ms", "99th percentile latency, ms.", False, ".2f"),
    C("latency_p50_ms_fixed", "REAL", "p50 ms @fixed", "Median latency at the fixed length (seq_len_fixed: 128 tokens; QA 384-token windows), ms.", False, ".2f"),
    C("latency_p90_ms_fixed", "REAL", "p90 ms @fixed", "90th percentile latency at the fixed length, ms.", False, ".2f"),
    C("latency_p99_ms_fixed", "REAL", "p99 ms @fixed", "99th percentile latency at the fixed length, ms.", False, ".2f"),
    C("tokenize_p50_ms", "REAL", "Tokenize ms", "Median tokenization time, ms.", False, ".3f"),
    C("throughput_per_s", "REAL", "Examples/s", "Batched throughput, examples per second.", True, ".1f"),
    C("speedup_p50", "REAL", "Speedup", "Teacher p50 latency / this model's.", True, ".2f"),
    C("speedup_p50_fixed", "REAL", "Speedup @fixed", "Speedup at the fixed length (seq_len_fixed).", True, ".2f"),
    C("latency_alone_p50_ms", "REAL", "p50 ms alone", "Median natural-length latency with the model alone in a fresh "
      "process, set up to serve it (ONNX Runtime threads spinning), ms.", False, ".2f"),
    C("speedup_alone", "REAL", "Speedup alone", "Teacher's p50 alone / this model's p50 alone: the deployment "
      "comparison (each served by itself).", True, ".2f"),
    C("memory_mb", "REAL", "Memory MB", "Peak RSS after loading and a latency loop, minus RSS after imports (fresh process), MB.", False, ".1f"),
    C("params", "INTEGER", "Params", "Number of parameters.", False, ",.0f"),
    C("size_mb", "REAL", "Size MB", "Size of the saved weights, MB.", False, ".1f"),
    C("flops_per_example", "REAL", "FLOPs/example", "Floating point operations per example.", False, ".3g"),
    C("gflops_per_s", "REAL", "GFLOP/s", "Achieved GFLOP per second.", True, ".2f"),
    C("peak_fraction", "REAL", "Peak fraction", "Achieved fraction of the hardware's peak FLOP/s.", True, ".3f"),
    C("flop_bound_ms", "REAL", "FLOP bound ms", "fp32 rows: FLOPs of the median natural-length input / this "
      "machine's measured fp32 matmul peak, ms (the fastest the forward pass could be).", False, ".2f", display=False),
    C("latency_over_bound", "REAL", "Latency / bound", "fp32 rows: p50 natural-length latency / FLOP bound "
      "(1 = matmul-peak speed; goal <= 1.5).", False, ".2f", display=False),
    C("alone_over_bound", "REAL", "Alone / bound", "fp32 rows: p50 latency alone (its own process, served as "
      "deployed) / FLOP bound (goal <= 1.5).", False, ".2f", display=False),
    C("threads", "INTEGER", "Threads", "Number of threads used for timing."),
    C("hardware", "TEXT", "Hardware", "Short hardware tag: CPU | cores | threads | versions | device."),
    C("hardware_json", "TEXT", "Hardware (JSON)", "Full hardware description.", json=True, display=False),
    C("run_card", "TEXT", "Run card", "The model's run.json, if any.", json=True, display=False),
    C("bench_json", "TEXT", "Benchmark (JSON)", "The full benchmark result.", json=True, display=False),
)
del C

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
# columns renamed since a store or a benchmark JSON was written: old name -> new (the fixed-length timings were
# "_len128" while QA timed its 384-token windows under that name)
RENAMED_COLUMNS: dict[str, str] = {f"{m}_len128": f"{m}_fixed" for m in
                                   ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "speedup_p50")}
COLUMNS_BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
DISPLAY_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.display)
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.sql_type.split()[0] in ("INTEGER", "REAL"))
METRIC_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.higher_is_better is not None)
JSON_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.json)
# Quality measured against labels, from every task record; a finished run needs one to be ranked.
QUALITY_COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(m for t in TASKS.values() for m in t.metrics if m in COLUMNS_BY_NAME))
# Shown for every task (then the task's own metric columns are added after "status")
COMMON_COLUMNS: tuple[str, ...] = ("name", "task", "role", "status", "runtime", "quantization", "retention",
                                   "agreement", "latency_p50_ms", "latency_p50_ms_fixed", "speedup_p50",
                                   "latency_alone_p50_ms", "speedup_alone", "throughput_per_s", "memory_mb", "params", "size_mb", "protocol", "hardware")
REQUIRED_COLUMNS: tuple[str, ...] = ("model", "task")
STATUSES: tuple[str, ...] = ("finished", "stopped", "failed")
ROLES: tuple[str, ...] = ("teacher", "student", "arch", "model")


def default_columns(task: Task | None = None) -> tuple[str, ...]:
    """The columns the table shows by default: the common ones with the task's
    metric columns (all tasks' when ``task`` is None) after ``status``."""
    metrics = task.columns if task is not None else tuple(
        dict.fromkeys(c for t in TASKS.values() if t.implemented for c in t.columns))
    i = COMMON_COLUMNS.index("status") + 1
    return tuple(c for c in COMMON_COLUMNS[:i] + metrics + COMMON_COLUMNS[i:] if c in COLUMNS_BY_NAME)


def table_columns(task: Task | None = None) -> list[tuple[str, str, Any]]:
    """(column, label, formatter) for the CLI's Markdown table: the default
    columns, numbers formatted by the schema, ratios as percentages."""
    percent = {"retention", "agreement", "retention_fp32", "peak_fraction"}
    speed = {"speedup_p50", "speedup_p50_fixed", "speedup_alone", "speedup_tokens_per_s"}

    def formatter(name: str):
        fmt = COLUMNS_BY_NAME[name].fmt

        def f(value):
            if value is None or value == "":
                return "–"
            if name in percent:
                return f"{float(value):.1%}"
            if name in speed:
                return f"{float(value):.2f}x"
            return format(value, fmt) if fmt and isinstance(value, (int, float)) else str(value)
        return f

    skip = {"task", "hardware", "status", "role"}
    return [(c, COLUMNS_BY_NAME[c].label, formatter(c)) for c in default_columns(task) if c not in skip]


def rows_for_store(rows: list[dict]) -> list[dict]:
    """Benchmark rows reduced to the schema's columns (extra measurement keys stay
    in ``bench_json``); a variant that could not run is never ranked."""
    out = []
    for row in rows:
        row = {RENAMED_COLUMNS.get(k, k): v for k, v in row.items()}  # an older benchmark JSON's names
        r = {k: v for k, v in row.items() if k in COLUMN_NAMES and k != "row_id"}
        if r.get("role") not in ROLES:
            r["role"] = "model"
        if "unavailable" in (row.get("quantization") or ""):
            r["ranked"] = 0
        if r.get("model") and not str(r["model"]).startswith("arch:") and os.path.isdir(str(r["model"])):
            r["model"] = str(Path(r["model"]).resolve())  # the app finds CLI-trained models by their folder
        out.append(r)
    return out


def utc_now() -> str:
    """The current time, ISO 8601 in UTC with microseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Validate ``row`` against the schema and return the values to insert.

    Unknown keys, a missing model/task, an unknown status or role, or a ranked
    flag that contradicts the status raise ``ValueError``. dict/list values of
    JSON columns are dumped; ``created_at``, ``status`` and ``ranked`` get
    defaults.
    """
    unknown = sorted(set(row) - set(COLUMN_NAMES))
    if unknown:
        raise ValueError(f"unknown leaderboard column(s): {', '.join(unknown)}")
    if "row_id" in row:
        raise ValueError("row_id is assigned by the store")
    missing = [k for k in REQUIRED_COLUMNS if row.get(k) in (None, "")]
    if missing:
        raise ValueError(f"leaderboard row is missing: {', '.join(missing)}")
    out = {k: _coerce(COLUMNS_BY_NAME[k], v) for k, v in row.items()}
    out.setdefault("created_at", utc_now())
    out["status"] = out.get("status") or "finished"
    if out["status"] not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {out['status']!r}")
    if out.get("role") is not None and out["role"] not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {out['role']!r}")
    rankable = out["status"] == "finished" and any(out.get(k) is not None for k in QUALITY_COLUMNS)
    if out.get("ranked") is None:
        out["ranked"] = int(rankable)
    elif out["ranked"] and not rankable:
        raise ValueError("ranked=1 needs status 'finished' and a quality number (accuracy or f1)")
    return out


def _coerce(col: Column, value: Any) -> Any:
    """Turn ``value`` into what SQLite stores for ``col`` (numpy scalars, Paths, dicts...)."""
    if value is None:
        return None
    kind = col.sql_type.split()[0]
    if kind == "REAL":
        return float(value)
    if kind == "INTEGER":
        return int(value)
    if col.json and not isinstance(value, str):
        return json.dumps(value, default=str)
    if isinstance(value, (dict, list, tuple)):
        raise ValueError(f"column {col.name!r} takes text, not {type(value).__name__}")
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def format_row(row: dict[str, Any], columns: Iterable[str] = DISPLAY_COLUMNS) -> dict[str, str]:
    """Display strings for ``columns`` of ``row``, numbers formatted with ``Column.fmt``.

    >>> format_row({"name": "tiny", "accuracy": 0.91234, "params": 4385920}, ["name", "accuracy", "params"])
    {'name': 'tiny', 'accuracy': '0.9123', 'params': '4,385,920'}
    """
    out = {}
    for name in columns:
        value, fmt = row.get(name), COLUMNS_BY_NAME[name].fmt
        if value is None:
            out[name] = ""
        elif fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = format(value, fmt)
        else:
            out[name] = str(value)
    return out


def decode_json_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` with its JSON columns parsed (left as text when not valid JSON)."""
    out = dict(row)
    for name in JSON_COLUMNS:
        if isinstance(out.get(name), str):
            with contextlib.suppress(ValueError):
                out[name] = json.loads(out[name])
    return out
