"""Tests of the leaderboard store: schema, round trips, exports, concurrency,
crash and corruption recovery. Every test works in ``tmp_path``."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from hub import leaderboard as lb
from hub.leaderboard import COLUMN_NAMES, LeaderboardStore, StoreRecoveredWarning

REPO = Path(__file__).resolve().parents[1]


def make_row(i: int = 0, **overrides):
    row = {
        "model": f"/models/student-{i}",
        "name": f"student-{i}",
        "task": "sst2",
        "role": "student",
        "teacher": "bert-base",
        "quantization": "fp32",
        "accuracy": 0.9 + i / 1000,
        "latency_p50_ms": 1.25,
        "params": 4_385_920,
        "threads": 2,
        "hardware": "cpu-a | 2 cores",
        "hardware_json": {"cpu": "cpu-a", "cores": 2},
        "bench_json": {"i": i, "latency": [1.0, 2.5]},
    }
    row.update(overrides)
    return row


@pytest.fixture
def store(tmp_path):
    return LeaderboardStore(tmp_path / "lb.sqlite")


# ---- schema ----------------------------------------------------------------

def test_schema_is_defined_once_and_views_derive_from_it():
    assert COLUMN_NAMES == (
        "row_id", "created_at", "model", "name", "task", "role", "teacher", "status", "ranked",
        "quantization", "runtime", "protocol", "accuracy", "f1", "exact_match", "HasAns_f1", "HasAns_exact",
        "NoAns_f1", "NoAns_exact", "top1_accuracy", "top5_accuracy", "perplexity", "ttft_ms", "tokens_per_s",
        "speedup_tokens_per_s", "eval_size", "max_length", "retention", "agreement", "retention_fp32",
        "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
        "latency_p50_ms_fixed", "latency_p90_ms_fixed", "latency_p99_ms_fixed",
        "tokenize_p50_ms", "throughput_per_s", "speedup_p50", "speedup_p50_fixed", "latency_alone_p50_ms",
        "speedup_alone", "memory_mb",
        "params", "size_mb", "flops_per_example", "gflops_per_s", "peak_fraction", "flop_bound_ms",
        "latency_over_bound", "alone_over_bound", "threads",
        "hardware", "hardware_json", "run_card", "bench_json",
    )
    assert set(lb.DISPLAY_COLUMNS) <= set(COLUMN_NAMES)
    assert not set(lb.JSON_COLUMNS) & set(lb.DISPLAY_COLUMNS)
    assert {"accuracy", "params", "threads", "latency_p99_ms_fixed"} <= set(lb.NUMERIC_COLUMNS)
    assert "hardware" not in lb.NUMERIC_COLUMNS
    sql = lb.schema_sql()
    assert all(name in sql for name in COLUMN_NAMES)


def test_nothing_is_created_until_first_use(tmp_path):
    path = tmp_path / "a" / "b" / "lb.sqlite"
    s = LeaderboardStore(path)
    assert not path.parent.exists()
    s.add(make_row())
    assert path.exists()


def test_default_path_honours_hub_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    s = lb.Store()
    assert s.path == tmp_path / "home" / "leaderboard.sqlite"
    s.add(make_row())
    assert (tmp_path / "home" / "leaderboard.sqlite").exists()


# ---- round trips and validation --------------------------------------------

def test_add_get_rows_round_trip(store):
    row_id = store.add(make_row(1, run_card={"lr": 1e-4}))
    got = store.get(row_id)
    assert list(got) == list(COLUMN_NAMES)
    assert got["row_id"] == row_id
    assert got["model"] == "/models/student-1" and got["accuracy"] == pytest.approx(0.901)
    assert got["params"] == 4_385_920 and got["status"] == "finished" and got["ranked"] == 1
    assert json.loads(got["run_card"]) == {"lr": 1e-4}
    assert json.loads(got["hardware_json"]) == {"cpu": "cpu-a", "cores": 2}
    assert got["created_at"].endswith("+00:00")
    assert store.rows() == [got]
    assert store.get(row_id + 100) is None


def test_filters_and_distinct_values(store):
    store.add_many([
        make_row(1, task="sst2", hardware="cpu-a"),
        make_row(2, task="squad", hardware="cpu-a"),
        make_row(3, task="sst2", hardware="cpu-b"),
        make_row(4, task="sst2", hardware="cpu-b", status="stopped"),
    ])
    assert [r["name"] for r in store.rows()] == ["student-1", "student-2", "student-3", "student-4"]
    assert [r["name"] for r in store.rows(task="sst2")] == ["student-1", "student-3", "student-4"]
    assert [r["name"] for r in store.rows(hardware="cpu-b")] == ["student-3", "student-4"]
    assert [r["name"] for r in store.rows(task="sst2", hardware="cpu-b", ranked_only=True)] == ["student-3"]
    assert store.tasks() == ["squad", "sst2"]
    assert store.hardware_tags() == ["cpu-a", "cpu-b"]


def test_unknown_key_raises_naming_it(store):
    with pytest.raises(ValueError, match="acuracy"):
        store.add(make_row(acuracy=0.5))
    with pytest.raises(ValueError, match="task"):
        store.add({"model": "m"})
    with pytest.raises(ValueError, match="status"):
        store.add(make_row(status="done"))
    assert store.rows() == []


def test_add_many_validates_everything_before_writing(store):
    with pytest.raises(ValueError):
        store.add_many([make_row(1), make_row(2, bogus=1)])
    assert store.rows() == []
    assert len(store.add_many([make_row(1), make_row(2)])) == 2


@pytest.mark.parametrize("overrides, ranked", [
    ({}, 1),
    ({"accuracy": None, "f1": 0.8}, 1),
    ({"accuracy": None}, 0),  # no quality numbers
    ({"status": "stopped"}, 0),
    ({"status": "failed"}, 0),
    ({"ranked": False}, 0),  # caller may opt a finished run out
])
def test_ranked_is_computed(store, overrides, ranked):
    assert store.get(store.add(make_row(**overrides)))["ranked"] == ranked


def test_stopped_run_cannot_be_forced_into_ranking(store):
    with pytest.raises(ValueError, match="ranked"):
        store.add(make_row(status="failed", ranked=1))


def test_delete(store):
    a, b = store.add(make_row(1)), store.add(make_row(2))
    assert store.delete(a) is True
    assert store.delete(a) is False
    assert [r["row_id"] for r in store.rows()] == [b]


def test_format_row_uses_column_formats():
    shown = lb.format_row({"name": "s", "accuracy": 0.912345, "latency_p50_ms": 1.0, "teacher": None})
    assert shown["accuracy"] == "0.9123" and shown["latency_p50_ms"] == "1.00"
    assert shown["teacher"] == "" and list(shown) == list(lb.DISPLAY_COLUMNS)


# ---- exports ---------------------------------------------------------------

def test_csv_export_round_trips_and_filters(store, tmp_path):
    store.add_many([make_row(1, run_card={"a": [1, 2]}), make_row(2, task="squad", f1=0.75)])
    dest = tmp_path / "out" / "lb.csv"
    text = store.to_csv(dest)
    assert dest.read_bytes().decode("utf-8") == text
    records = list(csv.DictReader(io.StringIO(text)))
    assert tuple(records[0]) == COLUMN_NAMES
    for rec, row in zip(records, store.rows(), strict=True):
        for name in COLUMN_NAMES:
            value = row[name]
            assert rec[name] == ("" if value is None else str(value)), name
        assert float(rec["accuracy"]) == row["accuracy"]  # full precision
    assert json.loads(records[0]["run_card"]) == {"a": [1, 2]}
    only = list(csv.DictReader(io.StringIO(store.to_csv(task="squad"))))
    assert [r["task"] for r in only] == ["squad"]


def test_json_export_round_trips_and_filters(store, tmp_path):
    store.add_many([make_row(1), make_row(2, hardware="cpu-b")])
    dest = tmp_path / "lb.json"
    data = json.loads(store.to_json(dest))
    assert json.loads(dest.read_text(encoding="utf-8")) == data
    rows = store.rows()
    assert [list(d) for d in data] == [list(COLUMN_NAMES)] * 2
    for d, row in zip(data, rows, strict=True):
        assert d == lb.decode_json_columns(row)
    assert data[0]["bench_json"] == {"i": 1, "latency": [1.0, 2.5]}
    assert [d["name"] for d in json.loads(store.to_json(hardware="cpu-b"))] == ["student-2"]


# ---- schema evolution -------------------------------------------------------

def test_old_table_gets_missing_columns(tmp_path):
    path = tmp_path / "lb.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE results (row_id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT,"
                 " model TEXT, task TEXT, accuracy REAL)")
    conn.execute("INSERT INTO results (created_at, model, task, accuracy) VALUES ('2020', 'old', 'sst2', 0.5)")
    conn.commit()
    conn.close()
    s = LeaderboardStore(path)
    old = s.rows()[0]
    assert old["model"] == "old" and old["f1"] is None and list(old) == list(COLUMN_NAMES)
    s.add(make_row(f1=0.7))
    assert [r["model"] for r in s.rows()] == ["old", "/models/student-0"]


# ---- concurrency -------------------------------------------------------------

def _add_one_after_barrier(path, barrier, i):
    barrier.wait(timeout=60)
    LeaderboardStore(path).add(make_row(i))


def test_50_processes_write_at_once(tmp_path):
    # Fresh store objects on a file that does not exist yet: creation, WAL switch
    # and inserts all collide.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    path = tmp_path / "lb.sqlite"
    barrier = ctx.Barrier(50)
    procs = [ctx.Process(target=_add_one_after_barrier, args=(path, barrier, i)) for i in range(50)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 50
    rows = LeaderboardStore(path).rows()
    assert len(rows) == 50
    assert sorted(r["name"] for r in rows) == sorted(f"student-{i}" for i in range(50))
    assert len({r["row_id"] for r in rows}) == 50


def test_50_threads_write_at_once(tmp_path):
    store = LeaderboardStore(tmp_path / "lb.sqlite")  # one object shared: first open races too
    barrier = threading.Barrier(50)
    errors = []

    def work(i):
        try:
            barrier.wait(timeout=30)
            store.add(make_row(i))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    rows = store.rows()
    assert sorted(r["name"] for r in rows) == sorted(f"student-{i}" for i in range(50))
    assert len({r["row_id"] for r in rows}) == 50


# ---- crash and corruption recovery -----------------------------------------

WRITER = """
import sys
from hub.leaderboard import LeaderboardStore
store = LeaderboardStore(sys.argv[1])
blob = {"pad": "x" * 200_000}
i = 0
while True:
    store.add_many([{"model": f"m{i}", "task": "sst2", "accuracy": 0.5, "bench_json": blob},
                    {"model": f"m{i}b", "task": "sst2", "run_card": blob}])
    i += 1
"""


def test_killed_writer_leaves_store_readable(tmp_path):
    path = tmp_path / "lb.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    store = LeaderboardStore(path)
    for round_ in range(3):
        before = len(store.rows())
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
        try:
            deadline = time.monotonic() + 15
            while len(store.rows()) < before + 10:  # writing in full swing
                assert child.poll() is None, "writer died on its own"
                assert time.monotonic() < deadline, "writer made no progress"
                time.sleep(0.02)
            time.sleep(0.013 * round_)  # vary where in a write the kill lands
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreRecoveredWarning)
        reopened = LeaderboardStore(path)
        rows = reopened.rows()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert len(rows) >= 30 and len(rows) % 2 == 0  # add_many is all-or-nothing
    for r in rows:
        assert r["model"] and r["task"] == "sst2" and r["created_at"]
        blob = r["bench_json"] or r["run_card"]
        assert len(json.loads(blob)["pad"]) == 200_000
    reopened.add(make_row())


def _damaged_db(path: Path) -> None:
    """A real store whose middle pages are overwritten with garbage."""
    LeaderboardStore(path).add_many([make_row(i, bench_json={"pad": "y" * 3000}) for i in range(200)])
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 16384] = os.urandom(16384)
    path.write_bytes(bytes(data))


def _garbage_file(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


@pytest.mark.parametrize("damage", [_garbage_file, _damaged_db])
def test_corrupt_store_is_moved_aside_and_replaced(tmp_path, damage):
    path = tmp_path / "lb.sqlite"
    damage(path)
    original = path.read_bytes()
    store = LeaderboardStore(path)
    with pytest.warns(StoreRecoveredWarning, match="corrupt") as caught:
        assert store.rows() == []
    backups = list(tmp_path.glob("lb.sqlite.corrupt-*"))
    assert [b.name for b in backups if not b.name.endswith(("-wal", "-shm"))] == [backups[0].name]
    assert str(backups[0]) in str(caught[0].message)
    assert backups[0].read_bytes() == original
    row_id = store.add(make_row())
    assert store.get(row_id)["name"] == "student-0"
    with warnings.catch_warnings():  # checked once; a new object finds the fresh store healthy
        warnings.simplefilter("error", StoreRecoveredWarning)
        assert len(LeaderboardStore(path).rows()) == 1


def _open_corrupt_and_add(path, barrier, i):
    barrier.wait(timeout=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreRecoveredWarning)
        LeaderboardStore(path).add(make_row(i))


def test_processes_recovering_at_once_move_the_file_aside_only_once(tmp_path):
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    path = tmp_path / "lb.sqlite"
    _garbage_file(path)
    barrier = ctx.Barrier(10)
    procs = [ctx.Process(target=_open_corrupt_and_add, args=(path, barrier, i)) for i in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 10
    backups = [b for b in tmp_path.glob("lb.sqlite.corrupt-*") if not b.name.endswith(("-wal", "-shm"))]
    assert len(backups) == 1
    assert len(LeaderboardStore(path).rows()) == 10  # no process moved a fresh store aside


def test_a_store_and_benchmark_rows_of_the_older_len128_names_are_renamed(tmp_path):
    """The fixed-length timings were ``*_len128`` columns (QA's 384-token windows too):
    an older store's columns are renamed in place, values kept; an older benchmark
    JSON's rows are stored under the new names."""
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    old_names = {new: old for old, new in lb.RENAMED_COLUMNS.items()}
    old_cols = [old_names.get(c.name, c.name) for c in lb.COLUMNS]
    assert "latency_p50_ms_len128" in old_cols
    types = [c.sql_type for c in lb.COLUMNS]
    conn.execute(f"CREATE TABLE {lb.TABLE} ({', '.join(f'{n} {t}' for n, t in zip(old_cols, types))})")
    conn.execute(f"INSERT INTO {lb.TABLE} (model, task, status, ranked, created_at, latency_p50_ms_len128) "
                 "VALUES ('/m/old', 'sst2', 'finished', 1, '2026-01-01T00:00:00+00:00', 7.5)")
    conn.commit()
    conn.close()
    store = LeaderboardStore(path)
    assert [r["latency_p50_ms_fixed"] for r in store.rows()] == [7.5]
    store.add_rows([{**make_row(1), "latency_p50_ms_len128": 3.25, "speedup_p50_len128": 2.0}])
    new = [r for r in store.rows() if r["model"] == "/models/student-1"][0]
    assert new["latency_p50_ms_fixed"] == 3.25 and new["speedup_p50_fixed"] == 2.0
    have = {r[1] for r in sqlite3.connect(path).execute(f"PRAGMA table_info({lb.TABLE})")}
    assert not {c for c in have if c.endswith("_len128")}
