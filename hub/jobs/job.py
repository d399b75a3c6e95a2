"""What a job is: its states, the files of its folder (``job.json`` the server's,
the rest the child's), the server's record of it (``Job``, kept in ``job.json``),
and the JSON reads and atomic writes the queue and the child both use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import write_text_atomic
from ..runs import utc_now  # jobs are stamped as run cards are

QUEUED, RUNNING, FINISHED, STOPPED, FAILED = "queued", "running", "finished", "stopped", "failed"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (FINISHED, STOPPED, FAILED)
# the job folder: job.json is the server's, the rest the child's
JOB_FILE, EVENTS_FILE, LOG_FILE, RESULT_FILE = "job.json", "events.jsonl", "log.txt", "result.json"
# loss terms a job's curves can hold: fine-tuning's "ce", then hub.config.LOSS_TERMS
LOSS_CURVES = ("ce", "embedding", "attention", "hidden", "prediction")


def write_json(path: Path, data: dict) -> None:
    """Write a JSON file atomically (temp file + rename): readers never see half of it."""
    write_text_atomic(path, json.dumps(data, default=str, indent=1))


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None



# ---------------------------------------------------------------- what a job is


@dataclass
class Job:
    """The server's record of one job (``job.json``)."""

    id: str
    kind: str
    params: dict
    name: str
    pipeline: str
    state: str = QUEUED
    created_at: str = field(default_factory=utc_now)
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    log_tail: list = field(default_factory=list)  # a failed job's last log lines
    owner_hash: str | None = None
    child: str | None = None  # "pid:start time" of the runner process
    stop_requested_at: float | None = None  # time.time() of the stop signal
    killed: str | None = None  # why the server killed the child, when it did
    fraction: float | None = None  # progress when it ended (summaries need no event reading)
    models_deleted: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> Job:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

