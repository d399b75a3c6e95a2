"""The app's training queue: one job at a time for the whole server, each in its
own child process, positions and a size limit, owners, and state that outlives
browsers and server restarts.

A job is a folder ``root/<id>/`` (``root`` defaults to ``hub_home()/jobs``):

* ``job.json`` — written by the server only: parameters, name, owner hash,
  lifecycle (queued, running, finished, stopped, failed), the child's process
  tag, the error line;
* ``events.jsonl``, ``log.txt``, ``result.json`` — written by the child only
  (``python -m hub.jobs.runner FOLDER``, see ``hub.jobs.runner``).

The server reads the child's files when asked (``status``, ``jobs``), keeping a
read offset, so a poll costs what was appended since the last one. One
supervisor thread starts the next job, waits for its child and then decides
how the job ended: from ``result.json`` when the child wrote one, else (killed,
out of memory, crashed hard) ``failed`` with the tail of its log. Either way
every model folder the job announced whose ``run.json`` still says
``running`` is marked by ``hub.runs.mark_interrupted`` — one truth per run.

Stop sends SIGTERM to the child, which stops training at its next step and keeps
its checkpoint; a child still alive after ``stop_timeout_s`` is killed with its
process group. After a restart, queued jobs keep their places, a child that
survived its server (own session) is adopted and supervised again, and a
running job whose child is gone ends as its ``result.json`` says, or failed.
Two servers never share one queue folder (a lock file). No torch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ..paths import hub_home, models_dir
from .events import EventView, log_tail
# what a job is (its states, folder files and record): importable from here as before
from .job import (ACTIVE_STATES, EVENTS_FILE, FAILED, FINAL_STATES, FINISHED, JOB_FILE, LOG_FILE, LOSS_CURVES, QUEUED,
                  RESULT_FILE, RUNNING, STOPPED, Job, _read_json, utc_now, write_json)
from .params import safe_name
from .process import _Child, _signal_name, process_alive, process_tag

try:  # POSIX; on other systems two servers could share a queue folder
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

__all__ = [
    "ACTIVE_STATES", "EVENTS_FILE", "FAILED", "FINAL_STATES", "FINISHED", "JOB_FILE", "LOG_FILE", "LOG_TAIL_LINES",
    "LOSS_CURVES", "PIPELINES", "QUEUED", "REPO_ROOT", "RESTARTED", "RESULT_FILE", "RUNNING", "STOPPED",
    "DuplicateJob", "Job", "JobActive", "JobQueue", "QueueFull", "default_queue", "delete_job_models", "utc_now",
    "write_json",
]


RESTARTED = "server restarted"
LOG_TAIL_LINES = 20  # kept with a failed job's error
PIPELINES = {"distill": "hub.jobs.pipeline:run_job", "dry-run": "hub.jobs.pipeline:dry_run",
             "soup": "hub.jobs.soup_job:run_soup"}
# each kind's parameter check ("module:function"), run on submit; the child checks again: job.json is the contract
VALIDATORS = {"distill": "hub.jobs.params:validate_params", "dry-run": "hub.jobs.params:validate_params",
              "soup": "hub.jobs.soup_job:validate_soup_params"}
REPO_ROOT = Path(__file__).resolve().parents[2]
_JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9]{6}-[0-9a-f]{4}$")  # sorts by time
log = logging.getLogger(__name__)


class QueueFull(RuntimeError):
    """The queue already holds ``max_size`` jobs (running + waiting)."""


class DuplicateJob(QueueFull):
    """This owner already has a queued or running job (a double click)."""


class JobActive(RuntimeError):
    """The job is queued or running: its models cannot be deleted now."""


def _hash(secret: str) -> str:
    return hashlib.sha256(str(secret).encode()).hexdigest()


# ---------------------------------------------------------------- the queue


class JobQueue:
    """One job at a time, each in a child process; ``max_size`` counts running + waiting.

    ``root``: the jobs folder (default ``hub_home()/jobs``), read at construction.
    ``pipeline``: ``"module:function"`` every job runs instead of its kind's
    (``PIPELINES``) — a seam for tests, set by server code, never by clients.
    ``stop_timeout_s``: how long a stopped child may take before it is killed.
    ``pythonpath``: extra import folders for the child (the repository root is always first).
    """

    def __init__(self, max_size: int = 5, root: str | Path | None = None, pipeline: str | None = None,
                 stop_timeout_s: float = 30.0, pythonpath: tuple | list = (), poll_s: float = 0.2):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size, self.pipeline, self.stop_timeout_s, self.poll_s = max_size, pipeline, stop_timeout_s, poll_s
        self.pythonpath = [str(p) for p in pythonpath]
        self.root = Path(root) if root is not None else hub_home() / "jobs"
        self.home = hub_home()  # the child's HUB_HOME: where its models and leaderboard rows go
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._views: dict[str, EventView] = {}
        self._waiting: list[str] = []
        self._running: str | None = None
        self._child: _Child | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock_file = self._take_lock()
        self._load()
        if self._running or self._waiting:
            self._ensure_worker()

    # ---- public API ------------------------------------------------------

    def submit(self, kind: str, params: dict, owner: str | None = None, name: str | None = None) -> str:
        """Queue a job; returns its id. ``owner`` is a secret ``cancel`` and
        ``delete_models`` will ask for; one owner has one active job at a time
        (``DuplicateJob``). ``QueueFull`` when ``max_size`` jobs are active."""
        pipeline = self.pipeline or PIPELINES.get(kind)
        if pipeline is None:
            raise ValueError(f"unknown job kind; choose one of {sorted(PIPELINES)}")
        if kind in VALIDATORS:
            from .runner import load_pipeline  # the same "module:function" lookup as the child's

            params = load_pipeline(VALIDATORS[kind])(params)
        with self._lock:
            if self._closed:
                raise RuntimeError("the queue is closed")
            if owner:
                mine = [j for j in self._jobs.values() if j.state in ACTIVE_STATES and j.owner_hash
                        and secrets.compare_digest(j.owner_hash, _hash(owner))]
                if mine:
                    raise DuplicateJob(f"you already have a run {mine[0].state} ({mine[0].name}); "
                                       "wait for it to end or stop it first")
            if len(self._waiting) + (self._running is not None) >= self.max_size:
                raise QueueFull(f"the training queue is full ({self.max_size} runs); try again later")
            job_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}-{secrets.token_hex(2)}"
            job = Job(id=job_id, kind=kind, params=dict(params), pipeline=pipeline,
                      name=self._unique_name(name or params.get("name") or kind),
                      owner_hash=_hash(owner) if owner else None)
            (self.root / job_id).mkdir(parents=True)
            self._jobs[job_id] = job
            self._waiting.append(job_id)
            self._save(job)
            self._ensure_worker()
            self._wake.notify_all()
            return job_id

    def position(self, job_id: str) -> int:
        """0 = running, n = nth waiting, -1 = not in the queue (it has ended)."""
        with self._lock:
            self._get(job_id)
            if job_id == self._running:
                return 0
            if job_id in self._waiting:
                return self._waiting.index(job_id) + 1
            return -1

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Remove a waiting job, or stop the running one (SIGTERM; killed after
        ``stop_timeout_s``). Only its owner may: a job with an owner refuses any
        other secret and ``None``; a job without one refuses every secret
        (``PermissionError``). Returns False when the job had already ended."""
        with self._lock:
            job = self._get(job_id)
            if not self._may_act(job, owner):
                raise PermissionError("only the browser that started this run can stop it")
            return self._stop(job, "cancelled")

    def is_owner(self, job_id: str, owner: str | None) -> bool:
        with self._lock:
            job = self._get(job_id)
            return bool(owner) and job.owner_hash is not None and secrets.compare_digest(job.owner_hash, _hash(owner))

    def status(self, job_id: str) -> dict:
        """Everything about one job: state, position, progress, loss curves, log
        lines, result and error (a copy; no owner hash, no process ids)."""
        with self._lock:
            job = self._get(job_id)
            view = self._view(job)
            d = asdict(job)
            for key in ("owner_hash", "child", "stop_requested_at", "pipeline", "fraction"):
                d.pop(key)
            d.update(
                position=self.position(job_id), plan=[list(x) for x in view.plan], outputs=dict(view.outputs),
                data=view.data, warnings=list(view.warnings), losses=view.curves(), progress=view.progress(),
                stopping=job.state == RUNNING and job.stop_requested_at is not None,
                result=_read_json(self.root / job.id / RESULT_FILE) if job.state in FINAL_STATES else None,
            )
            if job.state == FINISHED:
                d["progress"].update(fraction=1.0, eta_s=0.0, stage="done")
        d["log"] = log_tail(self.root / job_id / LOG_FILE)
        return d

    def jobs(self) -> list[dict]:
        """Summaries of all known jobs, newest first."""
        keys = ("id", "kind", "name", "state", "created_at", "started_at", "finished_at", "error")
        with self._lock:
            out = []
            for j in self._jobs.values():
                fraction = self._view(j).progress().get("fraction") if j.state == RUNNING else j.fraction
                out.append({k: getattr(j, k) for k in keys} | {"position": self.position(j.id), "fraction": fraction})
        return sorted(out, key=lambda s: s["id"], reverse=True)

    def current(self) -> dict | None:
        """Status of the running job, or None."""
        with self._lock:
            return self.status(self._running) if self._running else None

    def pid(self, job_id: str) -> int | None:
        """The process id of a running job's child (for tests and admins)."""
        with self._lock:
            job = self._get(job_id)
            return int(job.child.split(":")[0]) if job.state == RUNNING and job.child else None

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """Block until the job ends (or the timeout passes); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._wake:
            while self._get(job_id).state in ACTIVE_STATES:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._wake.wait(timeout=0.5 if left is None else min(left, 0.5))
        return self.status(job_id)

    def delete_models(self, job_id: str, owner: str | None) -> dict:
        """Delete the model folders an ended job wrote (``hub.runs.delete_run``:
        their leaderboard rows go too). Same owner rule as ``cancel``; a queued or
        running job raises ``JobActive``. Returns {deleted: [keys], leaderboard_rows, freed_mb}."""
        from ..runs import delete_run, under_models_dir
        from .registry import short_name

        with self._lock:
            job = self._get(job_id)
            if not self._may_act(job, owner):
                raise PermissionError("only the browser that started this run can delete it")
            if job.state in ACTIVE_STATES:
                raise JobActive("this run is still queued or running: stop it first")
            outputs = list(self._view(job).outputs.values())
            deleted, rows, freed = [], 0, 0.0
            for folder in outputs:
                if not under_models_dir(folder) or not (Path(folder) / "run.json").is_file():
                    continue  # never outside the models folder; a folder without a card was never written
                key = short_name(folder)
                removed = delete_run(folder)
                deleted.append(key)
                rows += removed["leaderboard_rows"]
                freed += removed["freed_mb"]
                parent = Path(folder).resolve().parent  # the job's folder, once it holds nothing more
                if parent != models_dir().resolve() and under_models_dir(parent) and not any(parent.iterdir()):
                    parent.rmdir()
            job.models_deleted = sorted(set(job.models_deleted) | set(deleted))
            self._save(job)
        return {"deleted": deleted, "leaderboard_rows": rows, "freed_mb": round(freed, 1)}

    def close(self, cancel_running: bool = False, timeout: float | None = 30.0) -> None:
        """Stop starting jobs (waiting ones stay queued on disk for the next server).
        With ``cancel_running`` the running child is stopped and waited for (up to
        ``timeout``); without, the supervisor lets go of it — it runs on, and the
        next queue on this folder adopts it. Releases the folder's lock."""
        with self._wake:
            self._closed = True
            running = self._jobs.get(self._running) if self._running else None
            if cancel_running and running is not None:
                self._stop(running, "server closing")
            self._wake.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    # ---- stopping ------------------------------------------------------

    def _may_act(self, job: Job, owner: str | None) -> bool:
        if job.owner_hash is None:
            return owner is None  # a job the server itself queued
        return bool(owner) and secrets.compare_digest(job.owner_hash, _hash(owner))

    def _stop(self, job: Job, why: str) -> bool:
        if job.id in self._waiting:
            self._waiting.remove(job.id)
            job.state, job.finished_at, job.error = STOPPED, utc_now(), f"{why} before it started"
            self._save(job)
            self._wake.notify_all()
            return True
        if job.id == self._running and self._child is not None:
            if job.stop_requested_at is None:
                job.stop_requested_at = time.time()
                self._save(job)
                self._child.signal(signal.SIGTERM)
            return True
        return False

    # ---- the supervisor ------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # daemon: never keeps the server alive; the child runs on and is adopted later
            self._thread = threading.Thread(target=self._work, name="hub-job-supervisor", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._wake:
                while self._running is None and not (self._waiting and not self._closed):
                    if self._closed:
                        return
                    self._wake.wait()
                if self._running is None:
                    job = self._jobs[self._waiting.pop(0)]
                    try:
                        self._child = self._start(job)
                    except OSError as exc:  # no such interpreter, no fork: the job fails, the queue goes on
                        job.state, job.finished_at, job.error = FAILED, utc_now(), f"could not start: {exc}"
                        self._save(job)
                        self._wake.notify_all()
                        continue
                    self._running = job.id
                job, child = self._jobs[self._running], self._child
            try:
                if not self._supervise(job, child):
                    return  # closed without cancelling: the child runs on
            except Exception:
                log.exception("job %s: supervising its process failed", job.id)
            with self._wake:
                try:
                    self._finish(job, child)
                except Exception:
                    log.exception("job %s: recording its end failed", job.id)
                    job.state, job.finished_at = FAILED, utc_now()
                    job.error = job.error or "the server could not record how this run ended"
                self._running, self._child = None, None
                self._wake.notify_all()

    def _start(self, job: Job) -> _Child:
        folder = self.root / job.id
        paths = [str(REPO_ROOT), *self.pythonpath, os.environ.get("PYTHONPATH", "")]
        env = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",  # the log is for people
               **os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "TOKENIZERS_PARALLELISM": "false",
               "HUB_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        with open(folder / LOG_FILE, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "hub.jobs.runner", str(folder)], cwd=str(REPO_ROOT), env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: one signal reaches its helpers, not us
            )
        job.state, job.started_at, job.child = RUNNING, utc_now(), process_tag(popen.pid)
        self._save(job)
        log.info("job %s (%s) started as process %s", job.id, job.name, popen.pid)
        return _Child(popen.pid, job.child, popen)

    def _supervise(self, job: Job, child: _Child) -> bool:
        """Wait for the child to end, killing it when a stop outlasts the timeout.
        False when the queue closed without stopping it (we let go of it)."""
        while not child.wait(self.poll_s):
            with self._lock:
                if self._closed and job.stop_requested_at is None:
                    return False
                late = job.stop_requested_at is not None and time.time() - job.stop_requested_at > self.stop_timeout_s
                if late and job.killed is None:
                    job.killed = f"it did not stop within {self.stop_timeout_s:g} s of the stop request"
                    self._save(job)
                    log.warning("job %s: %s; killing it", job.id, job.killed)
                    child.kill_group()
        if child.popen is not None:
            child.kill_group()  # helpers left behind by a child that died (a benchmark process)
        return True

    def _finish(self, job: Job, child: _Child | None, reason: str | None = None) -> None:
        """Decide how the job ended, mark its unfinished run cards, log it."""
        from ..runs import mark_interrupted

        folder = self.root / job.id
        result = _read_json(folder / RESULT_FILE)
        view = self._view(job)
        stopped = job.stop_requested_at is not None
        if result is not None and result.get("status") in FINAL_STATES and job.killed is None:
            job.state, job.error = result["status"], result.get("error")
        elif stopped:
            job.state = STOPPED
            job.error = f"stopped: the training process was killed ({job.killed})" if job.killed else None
        else:
            cause = reason or f"the training process {_signal_name(child.returncode if child else None)}"
            job.state, job.error = FAILED, cause
        job.finished_at, job.child = utc_now(), None
        job.fraction = 1.0 if job.state == FINISHED else view.progress().get("fraction")
        tail = log_tail(folder / LOG_FILE, LOG_TAIL_LINES)
        if job.state == FAILED:
            job.log_tail = tail
        card_status = STOPPED if job.state == STOPPED else FAILED
        for folder_path in view.outputs.values():
            if mark_interrupted(folder_path, card_status, job.error or "the training process ended early"):
                log.warning("job %s: run %s marked %s", job.id, folder_path, card_status)
        self._save(job)
        if job.state != FAILED:
            log.info("job %s (%s) %s", job.id, job.name, job.state)
        elif result is not None and result.get("traceback"):
            log.error("job %s (%s) failed: %s\n%s", job.id, job.name, job.error, result["traceback"].rstrip())
        elif result is not None:
            log.warning("job %s (%s) failed: %s", job.id, job.name, job.error)  # the user's error: one line
        else:
            log.error("job %s (%s) failed: %s; last log lines:\n%s", job.id, job.name, job.error, "\n".join(tail))

    # ---- persistence ---------------------------------------------------

    def _take_lock(self):
        self.root.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return None
        handle = open(self.root / ".queue.lock", "a+")  # noqa: SIM115 - held for the queue's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise RuntimeError(f"another job queue (another server?) already uses {self.root}") from None
        return handle

    def _save(self, job: Job) -> None:
        write_json(self.root / job.id / JOB_FILE, asdict(job))

    def _view(self, job: Job) -> EventView:
        view = self._views.get(job.id)
        if view is None:
            view = self._views[job.id] = EventView(self.root / job.id / EVENTS_FILE)
        if job.state in ACTIVE_STATES or view.offset == 0:
            view.update()
        return view

    def _load(self) -> None:
        """Read every job folder: queued jobs keep their places, a running job's
        child is adopted when it still runs, else the job ends as its files say."""
        running = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and _JOB_ID.match(p.name)):
            data = _read_json(folder / JOB_FILE)
            try:
                job = Job.from_dict(data or {})
            except TypeError:
                continue  # a foreign or broken folder is not ours to fix
            if job.id != folder.name:
                continue
            self._jobs[job.id] = job
            if job.state == QUEUED:
                self._waiting.append(job.id)
            elif job.state == RUNNING:
                running.append(job)
        for job in running:
            if self._running is None and process_alive(job.child):
                pid = int(job.child.split(":")[0])
                self._running, self._child = job.id, _Child(pid, job.child)
                log.info("job %s (%s): adopted its running process %s", job.id, job.name, pid)
            else:
                kept = ", ".join(Path(f).parent.name + "/" + Path(f).name
                                 for f in self._view(job).outputs.values() if Path(f).is_dir())
                self._finish(job, None, reason=RESTARTED + (f"; checkpoints kept in {kept}" if kept else ""))

    def _get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise KeyError("unknown job id")
        return job

    def _unique_name(self, name: str) -> str:
        base = safe_name(name)
        taken = {j.name for j in self._jobs.values()}
        candidate, i = base, 2
        while candidate in taken or (models_dir() / candidate).exists():
            candidate, i = f"{base}-{i}", i + 1
        return candidate


_DEFAULT: dict[Path, JobQueue] = {}
_DEFAULT_LOCK = threading.Lock()


def default_queue() -> JobQueue:
    """The process-wide queue for the current ``hub_home()`` (created on first use)."""
    root = hub_home() / "jobs"
    with _DEFAULT_LOCK:
        if root not in _DEFAULT:
            _DEFAULT[root] = JobQueue(root=root)
        return _DEFAULT[root]


def delete_job_models(job_id: str, owner: str | None, queue: JobQueue | None = None) -> dict:
    """Delete the model folders of an ended job of ``default_queue()`` for its owner
    (see :meth:`JobQueue.delete_models`)."""
    return (queue or default_queue()).delete_models(job_id, owner)
