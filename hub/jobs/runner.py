"""The child-process side of a job: ``python -m hub.jobs.runner JOB_FOLDER``.

The server (``hub.jobs.queue``) starts this in its own process group with
stdout and stderr appended to ``JOB_FOLDER/log.txt``. It reads ``job.json``
(written by the server, never changed here), runs the job's pipeline
(``"module:function"``, default ``hub.jobs.pipeline:run_job``) and writes:

* ``events.jsonl``: one JSON object per line (``plan``, ``output``, ``data``,
  ``phase``, ``progress``, ``warning``), appended, flushed per line; a
  ``phase`` (a part without optimisation steps: evaluation, caching the
  teacher's logits, benchmark) carries its ``started_at`` and, when known, how
  far it is (``step``/``total`` examples) and ``eta_s``;
* ``log.txt``: time-stamped lines for people (plus anything the libraries print);
* ``result.json``: the pipeline's result with its final ``status`` and the
  seconds each phase took (``phases``: what the next job's ETAs and estimates
  read), written atomically when it ends (also after an error: ``failed`` and
  the error line).

SIGTERM or SIGINT sets the cancel event: training stops at its next step and
keeps its checkpoint; a benchmark child is terminated. Loss curves hold real
points only: every step of short stages, an evenly spaced subset of long ones
(at most ``POINTS_PER_STAGE``) plus one point every ``PROGRESS_EVERY_S`` seconds.
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import datetime
from pathlib import Path

from .job import EVENTS_FILE, JOB_FILE, LOG_FILE, RESULT_FILE, write_json

POINTS_PER_STAGE = 500
PROGRESS_EVERY_S = 2.0
EXIT_OK, EXIT_CRASH, EXIT_USER_ERROR = 0, 1, 2
DEFAULT_PIPELINE = "hub.jobs.pipeline:run_job"
log = logging.getLogger(__name__)


class JobContext:
    """What a pipeline sees: its parameters, the cancel event, and the hooks that
    write its progress files (``log``, ``event``, ``set_plan``, ``output``, ``phase``,
    ``progress`` — the ``hub.distill`` progress hook — and ``run_child``)."""

    def __init__(self, folder: str | Path, job: dict, cancel: threading.Event):
        self.folder, self.job, self.cancel = Path(folder), job, cancel
        # open for the job's life, closed by close(); flushed line by line
        self._log = open(self.folder / LOG_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._events = open(self.folder / EVENTS_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._stage: str | None = None
        self._offset = 0  # steps of the stages before this one: curves continue across stages
        self._last_total = 0
        self._written_at = 0.0
        self._stop_logged = False
        self._phase: str | None = None  # the phase without steps under way
        self._phase_t0 = 0.0  # time.time() it started
        self._phase_written_at = 0.0
        self.phases: dict[str, dict] = {}  # phase -> {"seconds", "examples"}: what it took (result.json)
        self.expected_s: dict[str, float] = {}  # phase -> seconds an earlier job like this one took (its ETA)
        self.child: subprocess.Popen | None = None

    @property
    def id(self) -> str:
        return self.job["id"]

    @property
    def name(self) -> str:
        return self.job["name"]

    @property
    def params(self) -> dict:
        return self.job["params"]

    def log(self, line: str) -> None:
        """One time-stamped line of the job's log."""
        self._log.write(f"{datetime.now():%H:%M:%S} {line}\n")
        self._log.flush()

    def event(self, type_: str, **data) -> None:
        """One line of ``events.jsonl`` (the server reads these, never the log, for progress)."""
        self._events.write(json.dumps({"t": round(time.time(), 3), "type": type_, **data}, default=str) + "\n")
        self._events.flush()

    def set_plan(self, stages: list[tuple[str, int]]) -> None:
        """The phases with optimisation steps, in order, and their planned step counts."""
        self.event("plan", stages=[[s, int(n)] for s, n in stages])

    def output(self, role: str, folder: str | Path) -> None:
        """A model folder this job writes (the server marks it when the job dies)."""
        self.event("output", role=role, folder=str(folder))

    def phase(self, stage: str, step: int | None = None, total: int | None = None,
              eta_s: float | None = None) -> None:
        """A phase without optimisation steps (evaluation, caching, benchmark): its
        start time, how far it is when known (``step`` of ``total`` examples) and
        the seconds left (``eta_s``: measured, else the time an earlier job like
        this one took for it, ``expected_s``; None: the page shows the time so far)."""
        now = time.time()
        if stage != self._phase:
            self.end_phase(now)
            self._phase, self._phase_t0 = stage, now
        if eta_s is None and stage in self.expected_s:
            eta_s = max(self.expected_s[stage] - (now - self._phase_t0), 0.0)
        if total:
            self.phases.setdefault(stage, {"seconds": 0.0, "examples": 0})["examples"] = int(total)
        self.event("phase", stage=stage, started_at=round(self._phase_t0, 3), step=step, total=total,
                   eta_s=None if eta_s is None else round(float(eta_s), 1))
        self._phase_written_at = time.monotonic()

    def end_phase(self, now: float | None = None) -> None:
        """Close the phase under way: its seconds go to ``phases``."""
        if self._phase is None:
            return
        took = (now or time.time()) - self._phase_t0
        entry = self.phases.setdefault(self._phase, {"seconds": 0.0, "examples": 0})
        entry["seconds"] = round(entry["seconds"] + took, 2)
        self._phase = None

    def progress(self, event: dict) -> None:
        """The ``hub.distill`` progress hook: progress events (thinned to real points), log lines."""
        if self.cancel.is_set() and not self._stop_logged:
            self._stop_logged = True
            self.log("stop requested: stopping at the next step ...")
        stage = event.get("stage")
        step, total = int(event.get("step") or 0), int(event.get("total") or 0)
        if stage == "evaluate" and self._stage == "finetune":
            stage = "evaluate-teacher"  # the evaluation after fine-tuning scores the teacher
        if stage in ("evaluate", "evaluate-teacher", "calibrate"):
            self.phase(stage, total=total if stage == "calibrate" else None)  # calibrate: its pairs
            self.log({"evaluate-teacher": "evaluating the teacher on the eval set ...",
                      "calibrate": "calibrating the student's null threshold to the teacher's \"no answer\" "
                                   "decisions on the training questions ..."}.get(stage, "evaluating ..."))
            return
        if stage == "warning":
            self.event("warning", message=event.get("message"))
            self.log(f"warning: {event.get('message')}")
            return
        if stage == "teacher-logits":  # caching before the prediction stage: examples, no optimisation steps
            if event.get("cache_file"):  # an earlier run's logits read: marked, so no estimate takes it for a pass
                self.phase(stage, step, total)
                self.phases.setdefault(stage, {"seconds": 0.0, "examples": total}).update(
                    cache_file=str(event["cache_file"]), read=True)
                self.log(f"read the teacher's logits for {total:,} training examples from the cache "
                         f"({Path(event['cache_file']).name})")
                return
            if step == 0:
                self.log(f"caching the teacher's logits for {total:,} training examples ...")
            if step in (0, total) or time.monotonic() - self._phase_written_at >= PROGRESS_EVERY_S:
                self.phase(stage, step, total, event.get("eta_s"))
            if step == total:
                self.log(f"cached the teacher's logits for {total:,} training examples")
            return
        if self._phase is not None:
            self.end_phase()
        if stage != self._stage:
            if self._stage is not None:
                self._offset += self._last_total
            self._stage = stage
            self.log(f"{stage}: {total} steps")
        self._last_total = total
        stride = max(1, math.ceil(total / POINTS_PER_STAGE))
        now = time.monotonic()
        if step in (1, total) or step % stride == 0 or now - self._written_at >= PROGRESS_EVERY_S:
            losses = {k: round(float(v), 6) for k, v in (event.get("losses") or {}).items()
                      if k != "total" and v is not None and math.isfinite(v)}
            self.event("progress", stage=stage, step=step, total=total, x=self._offset + step,
                       epoch=event.get("epoch"), examples_per_s=event.get("examples_per_s"),
                       eta_s=event.get("eta_s"), losses=losses)
            self._written_at = now
        if step == total or step % max(1, total // 10) == 0:
            terms = " ".join(f"{k}={v:.4f}" for k, v in (event.get("losses") or {}).items() if v is not None)
            self.log(f"[{stage}] step {step}/{total} {terms} {event.get('examples_per_s') or 0:.1f} ex/s")

    def run_child(self, command: list[str]) -> int:
        """Run a helper process (the benchmark), its output into the log line by
        line; a stop terminates it. Returns its exit code."""
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        self.child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      stdin=subprocess.DEVNULL, env=env, errors="replace")
        try:
            if self.cancel.is_set():
                self.child.terminate()
            for line in self.child.stdout:
                if line.strip():
                    self.log(line.rstrip())
            return self.child.wait()
        finally:
            self.child.stdout.close()
            self.child = None

    def on_stop_signal(self) -> None:
        """Called from the signal handler: only flags and signals, no I/O (a handler
        may interrupt a write of this very process)."""
        self.cancel.set()
        child = self.child
        if child is not None and child.poll() is None:
            child.terminate()

    def close(self) -> None:
        self._log.close()
        self._events.close()


def load_pipeline(target: str):
    """``"package.module:function"`` -> the function."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _user_error_types() -> tuple[type, ...]:
    """Errors that are the user's to fix: one log line, no traceback. Looked up in
    ``sys.modules`` so that this check never imports torch (an exception of a
    module never imported cannot have been raised)."""
    types: list[type] = [FileExistsError, NotImplementedError]
    for module, name in (("hub.data", "DataError"), ("hub.models", "ModelNotFoundError"),
                         ("hub.models", "UntrainedHeadError"), ("hub.jobs.params", "ParamsError")):
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return tuple(types)


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 500 characters."""
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text}"[:500]


def run(folder: str | Path) -> int:
    """Run the job in ``folder``; returns the process exit code."""
    folder = Path(folder)
    cancel = threading.Event()
    holder: dict = {}

    def on_signal(signum, frame):
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C in a terminal: stop at once
        if "ctx" in holder:
            holder["ctx"].on_stop_signal()
        else:
            cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    faulthandler.enable()  # a hard crash dumps every thread's stack into the log (stderr)
    job = json.loads((folder / JOB_FILE).read_text())
    ctx = holder["ctx"] = JobContext(folder, job, cancel)
    # errors of libraries reach the log (stderr); warnings the pipeline reports itself
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    ctx.log(f"job {ctx.name} started (process {os.getpid()})")
    try:
        result = dict(load_pipeline(job.get("pipeline") or DEFAULT_PIPELINE)(ctx) or {})
        result["status"] = result.get("status") or "finished"
        ctx.end_phase()
        if ctx.phases:  # with the machine they were measured on: what the next job's ETAs and estimates read
            from ..hardware import cpu_cores, cpu_model

            result.setdefault("phases", ctx.phases)
            result.setdefault("hardware", {"cpu": cpu_model(), "cores": cpu_cores()})
        write_json(folder / RESULT_FILE, result)
        ctx.log(f"job {result['status']}")
        return EXIT_OK
    except BaseException as exc:  # noqa: BLE001 - every ending leaves a result and a trace
        line = one_line(exc)
        if isinstance(exc, _user_error_types()):
            ctx.log(f"error: {line}")
            write_json(folder / RESULT_FILE, {"status": "failed", "error": line, "user_error": True})
            return EXIT_USER_ERROR
        tb = traceback.format_exc()
        ctx.log(f"failed: {line}\n{tb.rstrip()}")
        write_json(folder / RESULT_FILE, {"status": "failed", "error": line, "traceback": tb})
        return EXIT_CRASH
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not (Path(args[0]) / JOB_FILE).is_file():
        print("usage: python -m hub.jobs.runner JOB_FOLDER (a folder with job.json)", file=sys.stderr)
        return EXIT_USER_ERROR
    return run(args[0])


if __name__ == "__main__":
    sys.exit(main())
