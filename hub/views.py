"""What the app shows, computed without gradio: the leaderboard's order and
Pareto front, the CSV download, path redaction, a job's public status and the
wording of numbers and messages. ``ui/`` turns these into components; the
functions here take and return plain values, so they are tested without a server.

Server paths never leave the server: every view passes through ``redact_paths``
(structured values) or ``redact_text`` (messages).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from .config import QA_NULL_THRESHOLD
from .paths import hub_home
from .tasks import TASKS, Task

REPO = Path(__file__).resolve().parents[1]
# ratio columns shown as percentages, in one format everywhere (the CLI's table_columns agrees)
PERCENT_COLUMNS = ("retention", "agreement", "retention_fp32", "peak_fraction")
LATENCY = "latency_p50_ms"


# ---------------------------------------------------------------- where things are


def data_dir() -> Path | None:
    """The app's local data folder: ``HUB_DATA_DIR``, else ``../shared/data`` next
    to the repository when it exists."""
    env = os.environ.get("HUB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    default = REPO.parent / "shared" / "data"
    return default.resolve() if default.is_dir() else None


def _roots() -> list[tuple[Path, str]]:
    roots = [(hub_home(), "$HUB_HOME")]
    if data_dir() is not None:
        roots.append((data_dir(), "$HUB_DATA_DIR"))
    return roots


def redact_paths(value):
    """Server paths never leave the server: the data folder and ``HUB_HOME`` become
    ``$HUB_DATA_DIR``/``$HUB_HOME``, any other absolute path keeps its last two parts.

    >>> redact_paths({"model": "/srv/a/b/runs/student", "n": 3})
    {'model': '…/runs/student', 'n': 3}
    """
    if isinstance(value, dict):
        return {k: redact_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_paths(v) for v in value]
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        return value
    for root, name in _roots():
        try:
            return f"{name}/{Path(value).relative_to(root).as_posix()}"
        except ValueError:
            continue
    parts = Path(value).parts
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else value


_ABSOLUTE = re.compile(r"(?<![\w.])/(?:[\w.\-]+/)+[\w.\-]*")


def redact_text(message: str) -> str:
    """Free text (errors, log lines) with server paths shortened like ``redact_paths``.

    >>> redact_text("no such file: /srv/x/data/train.tsv")
    'no such file: …/data/train.tsv'
    """
    return _ABSOLUTE.sub(lambda m: redact_paths(m.group(0)), str(message))


# ---------------------------------------------------------------- numbers


def format_percent(value: float | None, digits: int = 1) -> str:
    """A ratio as a percentage, the one format of retention and agreement.

    >>> format_percent(0.9751), format_percent(None)
    ('97.5%', '–')
    """
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{100 * value:.{digits}f}%"


def format_seconds(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``; ``–`` when unknown.

    >>> format_seconds(185), format_seconds(None)
    ('3m 05s', '–')
    """
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def display_value(column: str, value: Any, fmt: str | None = None) -> Any:
    """A table cell: ratios as percent numbers (97.5), others rounded to their format's
    digits; numbers stay numbers so the table sorts them as numbers."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if column in PERCENT_COLUMNS:
        return round(100 * value, 1)
    m = re.search(r"\.(\d+)f", fmt or "")
    return round(value, int(m.group(1))) if m else value


def ema(points: list, alpha: float = 0.1) -> list[list[float]]:
    """Exponential moving average of ``[[step, value], ...]`` (the first point starts it):
    smooths the saw-tooth that length-grouped batches give per-step losses.

    >>> ema([[1, 1.0], [2, 0.0]], alpha=0.5)
    [[1, 1.0], [2, 0.5]]
    """
    out, avg = [], None
    for x, v in points:
        avg = v if avg is None else alpha * v + (1 - alpha) * avg
        out.append([x, avg])
    return out


# ---------------------------------------------------------------- models


def model_label(key: str, info: dict) -> str:
    """``quickstart/student (student)``; the run.json status when the run did not finish;
    an ONNX Runtime variant as ``quickstart/student · onnx int8 (student)``; a published
    Hub model as ``deepset/bert-base-cased-squad2 (Hub teacher)``.

    >>> model_label("q/student@onnx-int8", {"role": "student", "status": "finished", "runtime": "onnx",
    ...                                     "quantization": "int8", "base": "q/student"})
    'q/student · onnx int8 (student)'
    """
    extra = "" if info.get("status") in ("finished", None, "") else f", {info['status']}"
    if info.get("published"):
        return f"{info['path']} (Hub {info['role']})"
    if info.get("runtime") == "onnx":
        return f"{info.get('base', key)} · onnx {info.get('quantization', 'fp32')} ({info['role']}{extra})"
    return f"{key} ({info['role']}{extra})"


# ---------------------------------------------------------------- leaderboard


def headline_key(task: Task):
    """Sort key of a row by the task's headline metric, best first; missing values last."""
    def key(row: dict):
        v = row.get(task.headline)
        if v is None:
            return (1, 0.0)
        return (0, -v if task.higher_is_better else v)
    return key


def sort_rows(rows: list[dict]) -> list[dict]:
    """Ranked rows first, then by task and, within a task, by its headline metric in
    its direction (perplexity: lowest first)."""
    def key(r):
        task = TASKS.get(r.get("task") or "")
        quality = headline_key(task)(r) if task else (1, 0.0)
        return (-(r.get("ranked") or 0), r.get("task") or "", quality)
    return sorted(rows, key=key)


# one benchmarked variant: a newer row of the same key replaces an older one in the default view
VARIANT_KEY = ("model", "task", "runtime", "quantization", "protocol", "hardware")


def latest_rows(rows: Iterable[dict]) -> list[dict]:
    """The newest row of each benchmarked variant (``VARIANT_KEY``): re-running a
    benchmark of a model on the same hardware replaces its row in the view (the
    store keeps every row). Order is kept.

    >>> rows = [{"row_id": 1, "model": "m", "created_at": "2026-01-01T00:00:00"},
    ...         {"row_id": 2, "model": "m", "created_at": "2026-01-02T00:00:00"},
    ...         {"row_id": 3, "model": "m", "created_at": "2026-01-01T00:00:00", "runtime": "onnx"}]
    >>> [r["row_id"] for r in latest_rows(rows)]
    [2, 3]
    """
    def stamp(r: dict) -> tuple:
        return r.get("created_at") or "", r.get("row_id") or 0

    rows = list(rows)
    newest: dict[tuple, dict] = {}
    for r in rows:
        key = tuple(r.get(k) for k in VARIANT_KEY)
        if key not in newest or stamp(r) > stamp(newest[key]):
            newest[key] = r
    keep = {id(r) for r in newest.values()}
    return [r for r in rows if id(r) in keep]


def threshold_note(row: dict) -> str | None:
    """Why a QA row's quality is out of date: its model's "no answer" threshold changed
    after the row was made (``calibrate-null --apply``, or the app's calibration: EM/F1
    change with it, timings do not) — the row's copy of the run card, taken when it was
    benchmarked, against the card in the model's folder now. None otherwise: a row without
    quality, a classification row, or a model whose card is not found from here (a Hub
    id, a folder moved or deleted). The note names the threshold the row was scored at
    (its benchmark's, e.g. ``bench --null-threshold``, else its card copy's).

    >>> threshold_note({"task": "sst2", "model": "m"}) is None
    True
    """
    task = TASKS.get(row.get("task") or "")
    if task is None or task.kind != "qa" or not row.get("model") or row.get(task.headline) is None:
        return None
    from .leaderboard_columns import decode_json_columns
    from .runs import read_card

    decoded = decode_json_columns(row)
    copy, bench = decoded.get("run_card"), decoded.get("bench_json")
    if not isinstance(copy, dict):
        return None
    card = read_card(row["model"])
    if not card:
        return None

    def threshold(options) -> float:
        value = (options or {}).get("null_threshold")
        return QA_NULL_THRESHOLD if value is None else float(value)

    then, now = threshold(copy.get("eval_options")), threshold(card.get("eval_options"))
    if math.isclose(then, now, rel_tol=0, abs_tol=1e-9):
        return None
    used = bench.get("eval_options") if isinstance(bench, dict) else None
    scored = threshold(used) if used else then
    return (f"scored at null threshold {scored:.4g}; the model's is {now:.4g} now (calibrated since): "
            "benchmark it again for its EM/F1")


def with_notes(rows: list[dict]) -> list[dict]:
    """``rows`` with ``note`` set on each row whose quality is out of date (:func:`threshold_note`)."""
    for r in rows:
        if note := threshold_note(r):
            r["note"] = note
    return rows


NOTE_TAG = "⚠ old threshold"  # the Model cell's mark of a noted row; the note itself goes under the table


def noted_name(row: dict) -> str:
    """The Model cell of a row :func:`with_notes` gave a note: its name, marked."""
    return f"{row.get('name') or row.get('model') or ''} {NOTE_TAG}"


def notes_text(rows: list[dict]) -> str:
    """The noted rows' notes, one line each (``name: note``), for under a table; "" when none."""
    return "\n".join(f"{NOTE_TAG[0]} {r.get('name') or r.get('model')}: {r['note']}" for r in rows if r.get("note"))


def distinct(rows: Iterable[dict], column: str) -> list[str]:
    """Sorted distinct non-empty values of a column (filter choices)."""
    return sorted({str(r[column]) for r in rows if r.get(column) not in (None, "")})


def pareto_points(rows: list[dict], task: Task) -> list[dict]:
    """Points of the quality x latency plot for ``task``: ranked rows with the headline
    metric and a p50 latency. Dominance is decided only among rows of the same
    protocol (a quick benchmark is not compared with a full one), in the headline's
    direction. Each point: {model, latency, quality, kind, protocol}; kind is
    ``teacher`` (the fp32 PyTorch teacher, the reference), ``Pareto-optimal`` or
    ``other`` (a quantized or ONNX teacher competes like a student)."""
    head, up = task.headline, task.higher_is_better
    pts = [r for r in rows if r.get("task") == task.name and r.get("ranked") and r.get(head) is not None
           and r.get(LATENCY)]

    def better_or_equal(o, r):
        q = o[head] >= r[head] if up else o[head] <= r[head]
        return o[LATENCY] <= r[LATENCY] and q

    def strictly_better(o, r):
        q = o[head] > r[head] if up else o[head] < r[head]
        return o[LATENCY] < r[LATENCY] or q

    out = []
    for r in pts:
        protocol = r.get("protocol") or "full"
        same = [o for o in pts if (o.get("protocol") or "full") == protocol and o is not r]
        dominated = any(better_or_equal(o, r) and strictly_better(o, r) for o in same)
        reference = r.get("role") == "teacher" and (r.get("quantization") or "fp32") == "fp32" \
            and (r.get("runtime") or "torch") == "torch"  # the 100% reference; its int8/ONNX forms are candidates
        kind = "teacher" if reference else ("other" if dominated else "Pareto-optimal")
        out.append({"model": r.get("name") or "", "latency": float(r[LATENCY]), "quality": float(r[head]),
                    "kind": kind, "protocol": protocol, "retention": r.get("retention")})
    return out


def axis_limits(values: list[float], pad: float = 0.1, floor: float | None = 0.0) -> tuple[float, float] | None:
    """Axis range with a margin on both sides, so no point sits on the plot's edge.

    >>> axis_limits([1.0, 2.0])
    (0.9, 2.1)
    >>> axis_limits([5.0])
    (4.5, 5.5)
    """
    vals = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    margin = (hi - lo) * pad if hi > lo else (abs(hi) * pad or 1.0)
    lo, hi = lo - margin, hi + margin
    if floor is not None and min(vals) >= floor:
        lo = max(lo, floor)
    return round(lo, 6), round(hi, 6)


def write_csv(rows: list[dict], dest: Path) -> None:
    """The rows as shown (filters and order), every column and a last ``note``
    (:func:`with_notes`' mark, when the view set one), JSON columns as JSON, server
    paths redacted."""
    from .leaderboard_columns import COLUMN_NAMES, decode_json_columns

    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=(*COLUMN_NAMES, "note"))
        writer.writeheader()
        for row in rows:
            row = redact_paths(decode_json_columns(row))
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                             for k, v in row.items() if k in COLUMN_NAMES or k == "note"})


# ---------------------------------------------------------------- jobs


def public_status(status: dict) -> dict:
    """A job's status without server paths (data files, model folders, process ids)."""
    from . import jobs

    out = {k: v for k, v in status.items() if k not in ("outputs", "process", "pid", "log_path")}
    params = dict(out.get("params") or {})
    if "data" in params:  # a distillation job's (a soup job has none: its students were trained on theirs)
        data = params.pop("data") or {}
        params["data"] = "hub" if "dataset" in data else ("local" if "data_dir" in data else "files")
    if "teacher" in params:
        params["teacher"] = jobs.short_name(params["teacher"] or "")
    out["params"] = params
    out["log"] = [redact_text(line) for line in out.get("log") or []]
    out["error"] = redact_text(out["error"]) if out.get("error") else None
    if out.get("result"):
        out["result"] = redact_paths({k: ({kk: vv for kk, vv in v.items() if kk != "path"}
                                          if isinstance(v, dict) else v) for k, v in out["result"].items()})
    return out


def run_cards(status: dict) -> dict[str, dict]:
    """role -> run.json of the folders a job wrote (the one truth of each run's status)."""
    from .runs import read_card

    cards = {}
    for role, folder in (status.get("outputs") or {}).items():
        card = read_card(folder)
        if card is not None:
            cards[role] = card
    return cards


# ---------------------------------------------------------------- messages for the web page

_FLAG = re.compile(r"--([a-z][a-z0-9-]*)")


def page_message(message: str, labels: dict[str, str], files: dict[str, str] | None = None) -> str:
    """A pipeline error worded for the web page: CLI flags and parameter keys become
    the page's field labels, server file names become what the user knows them as,
    paths are redacted.

    >>> page_message("train.jsonl: missing column(s) ['x']. Set --text-column/--label-column to the right names.",
    ...              {"text_column": "text column", "label_column": "label column"},
    ...              {"train.jsonl": "the training file"})
    "the training file: missing column(s) ['x']. Choose the right names in the “text column” and “label column” fields."
    >>> page_message("batch_size must be between 1 and 128", {"batch_size": "batch size"})
    '“batch size” must be between 1 and 128'
    """
    text = str(message)
    for name, what in sorted((files or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(name, what)
    text = redact_text(text)

    def field(key: str) -> str:
        return f"“{labels.get(key, key.replace('_', ' '))}”"

    text = re.sub(r"Set --([a-z-]+)/--([a-z-]+) to the right names\.",
                  lambda m: f"Choose the right names in the {field(m.group(1).replace('-', '_'))} and "
                            f"{field(m.group(2).replace('-', '_'))} fields.", text)
    text = re.sub(r"\b(?:use|check|set|pass) --([a-z-]+)",
                  lambda m: f"check the {field(m.group(1).replace('-', '_'))} field", text, flags=re.I)
    text = _FLAG.sub(lambda m: f"the {field(m.group(1).replace('-', '_'))} field", text)
    for key in sorted(labels, key=len, reverse=True):
        text = re.sub(rf"(?<![\w“]){re.escape(key)}(?= (?:must|needs|is)\b)", field(key), text)
    return text
