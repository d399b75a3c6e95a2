"""The leaderboard's results store and its column schema.

One benchmark result is one row. The columns are defined once, in ``COLUMNS``;
the SQL table, the CSV header, the JSON keys and every list the UI needs
(``DISPLAY_COLUMNS``, ``NUMERIC_COLUMNS``, ...) are derived from it.

The store is a SQLite file (standard library only) so that many trainings,
benchmark processes and the web app can write to it at once:

* WAL journal mode plus a 30 s busy timeout; every write is one
  ``BEGIN IMMEDIATE`` transaction, so there is one writer at a time and a row
  is either fully there or not there at all, even if the writer is killed.
* A fresh, short-lived connection per operation: safe across threads and
  processes, and nothing is held open between calls.
* On the first open of each store object the file is checked with
  ``PRAGMA quick_check``. A corrupt file is never overwritten or deleted: it is
  moved aside to ``<name>.corrupt-<UTC timestamp>`` (with its -wal/-shm files),
  a ``StoreRecoveredWarning`` names the backup, and a fresh store is started.

Example:
    >>> import tempfile, pathlib
    >>> store = LeaderboardStore(pathlib.Path(tempfile.mkdtemp()) / "lb.sqlite")
    >>> row_id = store.add({"model": "m", "name": "m", "task": "sst2", "accuracy": 0.9})
    >>> store.get(row_id)["ranked"]
    1
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from hub.paths import leaderboard_path
from hub.tasks import TASKS, Task

try:  # POSIX only; used to serialise recovery of a corrupt file across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


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

TABLE = "results"
BUSY_TIMEOUT_S = 30.0


class StoreRecoveredWarning(UserWarning):
    """A corrupt store file was moved aside and a fresh store started."""


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


def schema_sql() -> str:
    """The CREATE TABLE statement, derived from COLUMNS."""
    cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols}\n)"


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


class LeaderboardStore:
    """The results store: a SQLite file with one row per benchmark result.

    ``path`` defaults to ``hub.paths.leaderboard_path()``. Nothing touches the
    disk until the first operation, which creates the parent folder, checks the
    file's integrity (once per store object) and brings the table up to date.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else leaderboard_path()
        self._ready = False
        self._ready_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LeaderboardStore({str(self.path)!r})"

    # ---- writes ---------------------------------------------------------

    def add(self, row: dict[str, Any]) -> int:
        """Validate and insert one row atomically; return its row_id."""
        return self.add_many([row])[0]

    def add_many(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Validate all rows, then insert them in one transaction; return their row_ids."""
        prepared = [normalize_row(r) for r in rows]
        ids = []
        with self._write() as conn:
            for r in prepared:
                names = ", ".join(r)
                marks = ", ".join(f":{k}" for k in r)
                cur = conn.execute(f"INSERT INTO {TABLE} ({names}) VALUES ({marks})", r)
                ids.append(cur.lastrowid)
        return ids

    def add_rows(self, rows: list[dict]) -> list[int]:
        """Store benchmark rows (see :func:`rows_for_store`); sets each row's ``row_id``."""
        ids = self.add_many(rows_for_store(rows))
        for row, i in zip(rows, ids):
            row["row_id"] = i
        return ids

    def delete_model(self, model: str) -> int:
        """Delete every row of one model folder (a deleted run); returns how many."""
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE model = ?", (str(model),)).rowcount

    def delete(self, row_id: int) -> bool:
        """Delete one row; return whether it existed."""
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {TABLE} WHERE row_id = ?", (row_id,)).rowcount > 0

    # ---- reads ----------------------------------------------------------

    def rows(self, task: str | None = None, hardware: str | None = None,
             ranked_only: bool = False) -> list[dict[str, Any]]:
        """Rows as dicts in schema order, oldest first, optionally filtered.

        JSON columns are returned as stored (text); see ``decode_json_columns``.
        """
        where, params = [], {}
        if task is not None:
            where.append("task = :task")
            params["task"] = task
        if hardware is not None:
            where.append("hardware = :hardware")
            params["hardware"] = hardware
        if ranked_only:
            where.append("ranked = 1")
        sql = f"SELECT {', '.join(COLUMN_NAMES)} FROM {TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as conn:
            return [dict(r) for r in conn.execute(sql + " ORDER BY created_at, row_id", params)]

    def get(self, row_id: int) -> dict[str, Any] | None:
        """One row by id, or None."""
        with self._read() as conn:
            r = conn.execute(f"SELECT {', '.join(COLUMN_NAMES)} FROM {TABLE} WHERE row_id = ?",
                             (row_id,)).fetchone()
        return dict(r) if r is not None else None

    def tasks(self) -> list[str]:
        """Distinct task names, sorted (for UI filters)."""
        return self._distinct("task")

    def hardware_tags(self) -> list[str]:
        """Distinct hardware tags, sorted (for UI filters)."""
        return self._distinct("hardware")

    def _distinct(self, column: str) -> list[str]:
        with self._read() as conn:
            sql = f"SELECT DISTINCT {column} FROM {TABLE} WHERE {column} IS NOT NULL ORDER BY {column}"
            return [r[0] for r in conn.execute(sql)]

    # ---- exports --------------------------------------------------------

    def to_csv(self, dest: str | os.PathLike | None = None, **filters: Any) -> str:
        """CSV text of the (filtered) rows, header in schema order; written to ``dest`` if given.

        ``filters`` are those of ``rows()``; None is written as an empty field.
        """
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMN_NAMES)
        for r in self.rows(**filters):
            writer.writerow(["" if r[k] is None else r[k] for k in COLUMN_NAMES])
        return _write_text(dest, buf.getvalue())

    def to_json(self, dest: str | os.PathLike | None = None, **filters: Any) -> str:
        """JSON list of the (filtered) rows, keys in schema order, JSON columns embedded
        as objects; written to ``dest`` if given. ``filters`` are those of ``rows()``."""
        data = [decode_json_columns(r) for r in self.rows(**filters)]
        return _write_text(dest, json.dumps(data, indent=2))

    # ---- connections ----------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection in autocommit mode (transactions are explicit), closed after use."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._ensure_ready()
        with self._connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        self._ensure_ready()
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ---- first open: integrity, journal mode, schema --------------------

    def _ensure_ready(self) -> None:
        """Once per store object: create the folder, recover a corrupt file, set up the table."""
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self._is_healthy():
                self._recover()
            with self._connect() as conn:
                self._use_wal(conn)
                self._migrate(conn)
            self._ready = True

    def _is_healthy(self) -> bool:
        """False when the file fails ``PRAGMA quick_check`` or is not a database at all."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return True
        try:
            with self._connect() as conn:
                result = [r[0] for r in conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorcode", None)  # may be extended, e.g. SQLITE_CORRUPT_INDEX
            if code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
                return False
            raise  # locked, I/O error...: not evidence of corruption
        return result == ["ok"]

    def _recover(self) -> None:
        """Move the corrupt file (and its -wal/-shm) aside, under a lock so that two
        processes that both saw it corrupt do not move a fresh store aside too."""
        with _file_lock(self.path.with_name(self.path.name + ".lock")):
            if self._is_healthy():  # another process recovered it meanwhile
                return
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            backup = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                dst = Path(str(backup) + suffix)
                if src.exists():
                    if dst.exists():  # never overwrite an earlier backup
                        raise FileExistsError(dst)
                    os.rename(src, dst)
        warnings.warn(f"leaderboard store {self.path} was corrupt; moved it to {backup} "
                      "and started a fresh store", StoreRecoveredWarning, stacklevel=2)

    @staticmethod
    def _use_wal(conn: sqlite3.Connection) -> None:
        """Switch to WAL (persistent in the file). Changing the mode needs an exclusive
        lock and may not wait on the busy handler, so retry while others hold the file."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Create the table, or rename and add the columns an older version of it lacks."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(schema_sql())
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({TABLE})")}
            for old, new in RENAMED_COLUMNS.items():
                if old in have and new not in have:
                    conn.execute(f"ALTER TABLE {TABLE} RENAME COLUMN {old} TO {new}")
                    have = (have - {old}) | {new}
            for c in COLUMNS:
                if c.name not in have:
                    conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {c.name} {c.sql_type}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


Store = LeaderboardStore


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (a no-op where fcntl is missing)."""
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def _write_text(dest: str | os.PathLike | None, text: str) -> str:
    """Write ``text`` to ``dest`` atomically (temp file + rename) when given; return ``text``."""
    if dest is not None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, dest)
    return text
