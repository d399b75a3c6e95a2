"""The leaderboard's results store (its column schema is in ``hub.leaderboard_columns``).

One benchmark result is one row. The columns are defined once, in ``COLUMNS``
(``hub.leaderboard_columns``); the SQL table, the CSV header, the JSON keys and
every list the UI needs (``DISPLAY_COLUMNS``, ``NUMERIC_COLUMNS``, ...) are derived from it.

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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hub.leaderboard_columns import (  # the column schema, importable from here as before
    COLUMN_NAMES,
    COLUMNS,
    COLUMNS_BY_NAME,
    COMMON_COLUMNS,
    DISPLAY_COLUMNS,
    JSON_COLUMNS,
    METRIC_COLUMNS,
    NUMERIC_COLUMNS,
    QUALITY_COLUMNS,
    RENAMED_COLUMNS,
    REQUIRED_COLUMNS,
    ROLES,
    STATUSES,
    Column,
    decode_json_columns,
    default_columns,
    format_row,
    normalize_row,
    rows_for_store,
    table_columns,
    utc_now,
)
from hub.paths import leaderboard_path, write_text_atomic

try:  # POSIX only; used to serialise recovery of a corrupt file across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "BUSY_TIMEOUT_S", "COLUMN_NAMES", "COLUMNS", "COLUMNS_BY_NAME", "COMMON_COLUMNS", "Column",
    "DISPLAY_COLUMNS", "JSON_COLUMNS", "LeaderboardStore", "METRIC_COLUMNS", "NUMERIC_COLUMNS",
    "QUALITY_COLUMNS", "RENAMED_COLUMNS", "REQUIRED_COLUMNS", "ROLES", "STATUSES", "Store",
    "StoreRecoveredWarning", "TABLE", "decode_json_columns", "default_columns", "format_row",
    "normalize_row", "rows_for_store", "schema_sql", "table_columns", "utc_now",
]


TABLE = "results"
Annotate = Callable[[list[dict]], list[dict]]  # rows in, the same rows with notes set out
BUSY_TIMEOUT_S = 30.0


class StoreRecoveredWarning(UserWarning):
    """A corrupt store file was moved aside and a fresh store started."""


def schema_sql() -> str:
    """The CREATE TABLE statement, derived from COLUMNS."""
    cols = ",\n  ".join(f"{c.name} {c.sql_type}" for c in COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {TABLE} (\n  {cols}\n)"


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

    def to_csv(self, dest: str | os.PathLike | None = None, annotate: Annotate | None = None, **filters: Any) -> str:
        """CSV text of the (filtered) rows, header in schema order; written to ``dest`` if given.

        ``filters`` are those of ``rows()``; None is written as an empty field.
        ``annotate`` (e.g. ``hub.views.with_notes``) sets a ``note`` on rows it
        marks, written in a last ``note`` column.
        """
        buf = io.StringIO()
        writer = csv.writer(buf)
        names = (*COLUMN_NAMES, "note") if annotate else COLUMN_NAMES
        writer.writerow(names)
        rows = self.rows(**filters)
        for r in annotate(rows) if annotate else rows:
            writer.writerow(["" if r.get(k) is None else r[k] for k in names])
        return _write_text(dest, buf.getvalue())

    def to_json(self, dest: str | os.PathLike | None = None, annotate: Annotate | None = None,
                **filters: Any) -> str:
        """JSON list of the (filtered) rows, keys in schema order, JSON columns embedded
        as objects; written to ``dest`` if given. ``filters`` are those of ``rows()``;
        ``annotate`` as for :meth:`to_csv` (a ``note`` key on the rows it marks)."""
        rows = self.rows(**filters)
        data = [decode_json_columns(r) for r in (annotate(rows) if annotate else rows)]
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
        try:
            if self.path.stat().st_size == 0:
                return True
        except FileNotFoundError:  # none yet, or another process just moved a corrupt one aside: a fresh store
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
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(dest, text)
    return text
