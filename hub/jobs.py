"""The app's training queue: one worker thread runs one job at a time for the
whole server, whoever submitted it, and keeps running when browsers close.

A job is "fine-tune the teacher if it has no trained head, distill it into a
student, then benchmark both for the leaderboard" (``run_distill_job``); the
runner is a constructor argument so tests can pass a fast fake. Each job's
state (progress, loss curves, log, result or error) lives in memory and in
``hub_home()/jobs/<id>.json``, rewritten atomically on every state change and
at most every ``PERSIST_EVERY_S`` seconds while it trains. A new process that
finds a job still "running" or "queued" in its file (its server died) marks it
failed with the reason; its model folders and checkpoints stay on disk.

This module also owns the layout of what jobs produce, ``models_dir()/<job
name>/{teacher,student}`` (``trained_models`` lists it), the job parameters and
their ranges (``PARAMS``, ``validate_params``) and the cost estimate shown
before a run starts (``estimate``). Nothing here imports gradio, and torch is
only imported when a job runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import secrets
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .paths import hub_home, models_dir

QUEUED, RUNNING, FINISHED, STOPPED, FAILED = "queued", "running", "finished", "stopped", "failed"
ACTIVE_STATES = (QUEUED, RUNNING)
FINAL_STATES = (FINISHED, STOPPED, FAILED)
RESTARTED = "server restarted"

# loss terms a job's curves can hold: fine-tuning's "ce", then hub.distill.LOSS_TERMS
LOSS_CURVES = ("ce", "embedding", "attention", "hidden", "prediction")
MAX_LOG_LINES = 400
MAX_CURVE_POINTS = 1000  # per loss term; older points are thinned 2:1 beyond this
PERSIST_EVERY_S = 2.0
_JOB_ID = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9]{6}-[0-9a-f]{4}$")  # sorts by time
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class QueueFull(RuntimeError):
    """The queue already holds ``max_size`` jobs (running + waiting)."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Param:
    """One job parameter: default, inclusive range for numbers, type."""

    default: Any
    lo: float | None = None
    hi: float | None = None
    kind: type = float
    help: str = ""


STAGE_NAMES = ("intermediate", "prediction")  # hub.distill.STAGES, without importing torch here
STUDENT_PRESET_NAMES = ("tinybert-4l-312", "tinybert-6l-768")  # hub.models.STUDENT_PRESETS, likewise
PARAMS: dict[str, Param] = {
    "task": Param("sst2", kind=str, help="sst2 or classification"),
    "teacher": Param("minilm-l6", kind=str, help="alias, model folder or Hub id"),
    "student": Param("teacher-layers:3", kind=str,
                     help="tinybert-4l-312 | tinybert-6l-768 | teacher-layers:K | custom"),
    "layers": Param(None, 1, 24, int, "custom student: layers"),
    "hidden": Param(None, 16, 1024, int, "custom student: hidden size"),
    "heads": Param(None, 1, 16, int, "custom student: attention heads"),
    "ffn": Param(None, 16, 4096, int, "custom student: feed-forward size"),
    "data": Param(None, kind=dict, help="{'data_dir'} | {'train_file', 'eval_file'} | {'dataset', 'dataset_config'}"),
    "text_column": Param(None, kind=str),
    "label_column": Param(None, kind=str),
    "finetune_samples": Param(2000, 16, 100_000, int, "training examples to fine-tune a teacher without a head"),
    "train_samples": Param(4000, 16, 100_000, int, "training examples for distillation"),
    "eval_samples": Param(872, 16, 5000, int, "evaluation examples"),
    "finetune_epochs": Param(1.0, 0.1, 10.0, float, "epochs of teacher fine-tuning"),
    "epochs": Param(1.0, 0.1, 10.0, float, "epochs per distillation stage"),
    "finetune_learning_rate": Param(1e-4, 1e-6, 1e-2, float),
    "learning_rate": Param(1e-4, 1e-6, 1e-2, float),
    "batch_size": Param(32, 1, 128, int),
    "max_length": Param(128, 16, 512, int),
    "temperature": Param(1.0, 0.1, 20.0, float),
    "alpha": Param(0.5, 0.0, 1.0, float, "weight of hard-label CE; 1 - alpha weighs the KD term"),
    "stages": Param(STAGE_NAMES, kind=tuple),
    "max_steps": Param(-1, -1, 1_000_000, int, "cap on steps per stage (quick runs)"),
    "save_steps": Param(200, 1, 1_000_000, int, "checkpoint every N steps"),
    "seed": Param(42, 0, 2**31 - 1, int),
    "name": Param(None, kind=str, help="folder name under models_dir()"),
    "benchmark": Param(True, kind=bool, help="benchmark the models for the leaderboard afterwards"),
}
_HUB_DATASET = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def validate_params(params: dict, need_data: bool = True) -> dict:
    """Defaults filled in, types coerced, ranges checked; unknown keys and bad values
    raise ``ValueError`` with a message naming the parameter (never echoing the input).
    ``need_data=False`` skips the data source (for estimates)."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ValueError(f"unknown job parameter(s): {', '.join(map(str, unknown))[:200]}")
    out = {}
    for key, spec in PARAMS.items():
        value = params.get(key, spec.default)
        out[key] = _coerce(key, spec, value)
    from .tasks import TASKS

    task = TASKS.get(out["task"])
    if task is None or not task.implemented or task.kind != "classification":
        ok = [n for n, t in TASKS.items() if t.implemented and t.kind == "classification"]
        raise ValueError(f"task must be one of {ok}")
    if not out["teacher"]:
        raise ValueError("choose a teacher model")
    stages = tuple(out["stages"] or ())
    if not stages or any(s not in STAGE_NAMES for s in stages):
        raise ValueError(f"stages must be a non-empty subset of {list(STAGE_NAMES)}")
    out["stages"] = [s for s in STAGE_NAMES if s in stages]  # a list: the same after a JSON round trip
    student = out["student"] or ""
    if student == "custom":
        missing = [k for k in ("layers", "hidden", "heads") if out[k] is None]
        if missing:
            raise ValueError(f"a custom student needs {', '.join(missing)}")
        if out["hidden"] % out["heads"]:
            raise ValueError(f"hidden size {out['hidden']} is not divisible by {out['heads']} attention heads")
    elif student.startswith("teacher-layers:"):
        k = student.split(":", 1)[1]
        if not k.isdigit() or not 1 <= int(k) <= 24:
            raise ValueError("teacher-layers:K needs K between 1 and 24")
    elif student not in STUDENT_PRESET_NAMES:
        raise ValueError(f"student must be {', '.join(STUDENT_PRESET_NAMES)}, teacher-layers:K or custom")
    if need_data:
        out["data"] = _check_data(out["data"])
    if out["name"] is not None:
        out["name"] = safe_name(out["name"])
    return out


def _coerce(key: str, spec: Param, value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return spec.default
    if spec.kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{key} must be a number")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number")
        if spec.kind is int:
            if number != int(number):
                raise ValueError(f"{key} must be a whole number")
            number = int(number)
        if (spec.lo is not None and number < spec.lo) or (spec.hi is not None and number > spec.hi):
            raise ValueError(f"{key} must be between {spec.lo:g} and {spec.hi:g}")
        return number
    if spec.kind is bool:
        return bool(value)
    if spec.kind is str:
        if not isinstance(value, str) or len(value) > 200:
            raise ValueError(f"{key} must be a short text")
        return value.strip()
    if spec.kind is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(value)
    if spec.kind is dict and not isinstance(value, dict):
        raise ValueError(f"{key} must be a dict")
    return dict(value)


def _check_data(data: dict | None) -> dict:
    if not data:
        raise ValueError("choose a data source: a local data set, a Hub data set or an uploaded file")
    allowed = {"data_dir", "train_file", "eval_file", "dataset", "dataset_config"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"unknown data key(s): {sorted(unknown)}")
    data = {k: v for k, v in data.items() if v}
    if "dataset" in data:
        if set(data) - {"dataset", "dataset_config"}:
            raise ValueError("give exactly one data source")
        if not _HUB_DATASET.match(str(data["dataset"])) or ".." in data["dataset"]:
            raise ValueError("the Hub data set id looks wrong (expected e.g. glue or user/name)")
        if data.get("dataset_config") and not _HUB_DATASET.match(str(data["dataset_config"])):
            raise ValueError("the Hub data set config looks wrong")
    elif "data_dir" in data:
        if set(data) != {"data_dir"} or not Path(data["data_dir"]).is_dir():
            raise ValueError("the local data folder does not exist")
    else:
        if not data.get("train_file") or not data.get("eval_file"):
            raise ValueError("a file data source needs a training file and an evaluation file")
        for k in ("train_file", "eval_file"):
            if not Path(data[k]).is_file():
                raise ValueError(f"{k.replace('_', ' ')} does not exist")
    return data


def safe_name(name: str) -> str:
    """A folder-safe job name: letters, digits, '.', '_' and '-', at most 60 characters."""
    cleaned = _NAME.sub("-", str(name)).strip(".-_")[:60]
    if not cleaned:
        raise ValueError("the run name needs at least one letter or digit")
    return cleaned


def data_kwargs(params: dict) -> dict:
    """Keyword arguments of ``hub.data.load_classification`` for the job's data source."""
    kw = dict(params["data"])
    return {**kw, "text_column": params.get("text_column"), "label_column": params.get("label_column")}


def plan_steps(n_examples: int, epochs: float, batch_size: int, max_steps: int = -1) -> int:
    """Optimisation steps of one Trainer run (what the progress hook reports as total)."""
    if max_steps and max_steps > 0:
        return int(max_steps)
    return max(1, math.ceil(math.ceil(n_examples / batch_size) * epochs))


# ---------------------------------------------------------------- trained models


@dataclass(frozen=True)
class ModelEntry:
    """One trained model folder under ``models_dir()`` (it has a run.json)."""

    key: str  # path relative to models_dir(), e.g. "quickstart-1127-2305/student"
    path: str
    task: str | None
    role: str  # "teacher" | "student"
    status: str
    teacher: str | None  # the teacher's folder, resolved, when recorded
    created_at: str
    card: dict = field(repr=False, compare=False, default_factory=dict)


def trained_models(task: str | None = None, root: str | Path | None = None) -> list[ModelEntry]:
    """Saved models (folders with run.json, config.json and weights) up to two levels
    below ``models_dir()``, newest first; failed runs without weights are left out."""
    root = Path(root) if root is not None else models_dir()
    if not root.is_dir():
        return []
    out = []
    for card_path in [*root.glob("*/run.json"), *root.glob("*/*/run.json")]:
        folder = card_path.parent
        if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
            continue
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(card, dict) or (task is not None and card.get("task") != task):
            continue
        teacher = card.get("teacher")
        if teacher:
            teacher = _resolve_relative(teacher, folder)
        out.append(ModelEntry(
            key=folder.relative_to(root).as_posix(), path=str(folder.resolve()), task=card.get("task"),
            role="student" if card.get("kind") == "student" else "teacher", status=str(card.get("status", "")),
            teacher=teacher, created_at=str(card.get("created_at", "")), card=card,
        ))
    out.sort(key=lambda e: (e.created_at, e.key), reverse=True)
    return out


def _resolve_relative(ref: str, folder: Path) -> str:
    """A recorded teacher path made absolute (cards store it as given, maybe relative)."""
    p = Path(ref).expanduser()
    if p.is_absolute():
        return str(p.resolve())
    for base in (Path.cwd(), folder.parent):
        if (base / p).is_dir():
            return str((base / p).resolve())
    return ref


# ---------------------------------------------------------------- cost estimate

# examples/s for minilm-l6 at max_length 128 on a 2-core CPU (measured in this
# project: fine-tuning ~80 ex/s; a 3-layer student's distillation stages ~120).
DEFAULT_RATES = {"finetune": 80.0, "distill": 120.0}
OVERHEAD_S = 30.0  # loading, evaluation and the quick benchmark


def measured_rates(teacher: str | None = None, root: str | Path | None = None) -> dict:
    """Training examples/s from earlier finished runs on this machine (same CPU model
    and core count), preferring runs from the same teacher; missing kinds fall back
    to ``DEFAULT_RATES``. Returns {"finetune": (rate, source), "distill": (rate, source)}."""
    from .hardware import cpu_cores, cpu_model

    here = (cpu_model(), cpu_cores())
    best: dict[str, tuple[int, float, str]] = {}
    for e in trained_models(root=root):
        rate = e.card.get("train_examples_per_s")
        hw = e.card.get("hardware") or {}
        if not rate or e.status != "finished" or (hw.get("cpu"), hw.get("cores")) != here:
            continue
        kind = "finetune" if e.role == "teacher" else "distill"
        base = e.card.get("base_model") if kind == "finetune" else e.card.get("teacher")
        score = int(bool(teacher) and base == teacher)
        if kind not in best or score > best[kind][0]:  # newest first: first hit wins a tie
            best[kind] = (score, float(rate), f"measured: {e.key}")
    return {k: (best[k][1], best[k][2]) if k in best else (v, "default for a 2-core CPU")
            for k, v in DEFAULT_RATES.items()}


def estimate(params: dict, teacher_trained: bool | None = None, root: str | Path | None = None) -> dict:
    """Seconds a job will take: examples x epochs (x stages) / examples per second,
    plus a fixed overhead. ``teacher_trained`` False/None counts a fine-tuning phase."""
    p = validate_params(params, need_data=False)
    rates = measured_rates(p["teacher"], root)
    ft_examples = 0 if teacher_trained else p["finetune_samples"] * p["finetune_epochs"]
    kd_examples = p["train_samples"] * p["epochs"] * len(p["stages"])
    ft_s = ft_examples / rates["finetune"][0]
    kd_s = kd_examples / rates["distill"][0]
    return {
        "seconds": round(ft_s + kd_s + OVERHEAD_S, 1),
        "finetune_s": round(ft_s, 1),
        "distill_s": round(kd_s, 1),
        "finetune_examples": ft_examples,
        "distill_examples": kd_examples,
        "rates": {k: {"examples_per_s": r, "source": s} for k, (r, s) in rates.items()},
    }


# ---------------------------------------------------------------- jobs


@dataclass
class Job:
    id: str
    kind: str
    params: dict
    name: str
    state: str = QUEUED
    created_at: str = field(default_factory=utc_now)
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict = field(default_factory=dict)
    losses: dict = field(default_factory=dict)  # term -> [[step, value], ...]
    log: list = field(default_factory=list)
    result: dict | None = None
    error: str | None = None
    outputs: dict = field(default_factory=dict)  # role -> model folder (checkpoints inside)
    plan: list = field(default_factory=list)  # [[stage, steps], ...]
    owner_hash: str | None = None
    process: str = ""  # "pid:start time" of the server that owns it

    def to_dict(self) -> dict:
        return asdict(self)

    def add_log(self, line: str) -> None:
        """Append a time-stamped line, keeping the last ``MAX_LOG_LINES``."""
        self.log.append(f"{datetime.now():%H:%M:%S} {line}")
        del self.log[:-MAX_LOG_LINES]

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class JobContext:
    """What a runner sees: its parameters, the cancel flag and hooks that record
    progress, log lines, the plan of stages and the folders it writes."""

    def __init__(self, queue: "JobQueue", job: Job, cancel: threading.Event):
        self._queue, self._job, self.cancel = queue, job, cancel
        self._stage: str | None = None
        self._offset = 0
        self._last_total = 0
        self._stride = 1
        self._saved_at = 0.0

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def params(self) -> dict:
        return self._job.params

    def log(self, line: str) -> None:
        with self._queue._lock:
            self._job.add_log(line)
            self._queue._save(self._job)

    def set_plan(self, stages: list[tuple[str, int]]) -> None:
        with self._queue._lock:
            self._job.plan = [[s, int(n)] for s, n in stages]

    def phase(self, stage: str) -> None:
        """Mark a phase without steps (e.g. "benchmark") in the progress."""
        with self._queue._lock:
            self._job.progress.update(stage=stage, eta_s=None)

    def output(self, role: str, folder: str | Path) -> None:
        with self._queue._lock:
            self._job.outputs[role] = str(folder)
            self._queue._save(self._job)

    def progress(self, event: dict) -> None:
        """The ``hub.distill`` progress hook: step counters, ETA, loss curves, log."""
        stage = event.get("stage")
        if stage == "evaluate":
            self.phase("evaluate")
            self.log("evaluating ...")
            return
        if stage == "teacher-logits":  # caching before the prediction stage: no optimisation steps
            self.phase("caching the teacher's logits")
            if event.get("step") == event.get("total"):
                self.log(f"cached the teacher's logits for {event.get('total')} training examples")
            return
        step, total = int(event.get("step") or 0), int(event.get("total") or 0)
        new_stage = stage != self._stage
        with self._queue._lock:
            job = self._job
            if new_stage:
                if self._stage is not None:
                    self._offset += self._last_total
                self._stage = stage
            self._last_total = total
            for item in job.plan:
                if item[0] == stage:
                    item[1] = total  # the Trainer's own count wins over the plan's guess
            x = self._offset + step
            for term, value in (event.get("losses") or {}).items():
                if term == "total" or value is None or not math.isfinite(value):
                    continue
                if x % self._stride == 0 or step == total:
                    job.losses.setdefault(term, []).append([x, round(float(value), 6)])
            if max((len(v) for v in job.losses.values()), default=0) > MAX_CURVE_POINTS:
                self._stride *= 2
                for term, points in job.losses.items():
                    job.losses[term] = [p for i, p in enumerate(points) if i % 2 == 0 or i == len(points) - 1]
            job.progress = self._overall(stage, step, total, event)
        if new_stage:
            self.log(f"{stage}: {total} steps")
        if step == total or step % max(1, total // 10) == 0:
            terms = " ".join(f"{k}={v:.4f}" for k, v in (event.get("losses") or {}).items() if v is not None)
            self.log(f"[{stage}] step {step}/{total} {terms} {event.get('examples_per_s') or 0:.1f} ex/s")
        elif time.monotonic() - self._saved_at > PERSIST_EVERY_S:
            with self._queue._lock:
                self._queue._save(self._job)
            self._saved_at = time.monotonic()

    def _overall(self, stage: str, step: int, total: int, event: dict) -> dict:
        plan = self._job.plan
        names = [s for s, _ in plan]
        eta = event.get("eta_s")
        sec_per_step = eta / (total - step) if eta and total > step else None
        if stage in names:
            i = names.index(stage)
            done = sum(n for _, n in plan[:i]) + step
            left_after = sum(n for _, n in plan[i + 1:])
            fraction = done / max(sum(n for _, n in plan), 1)
            stage_index, n_stages = i + 1, len(plan)
        else:
            left_after, fraction = 0, step / max(total, 1)
            stage_index, n_stages = 1, 1
        total_eta = (total - step + left_after) * sec_per_step if sec_per_step is not None else eta
        return {
            "stage": stage, "step": step, "total": total, "epoch": event.get("epoch"),
            "examples_per_s": event.get("examples_per_s"), "eta_s": total_eta, "stage_eta_s": eta,
            "fraction": min(max(fraction, 0.0), 1.0), "stage_index": stage_index, "n_stages": n_stages,
        }


Runner = Callable[[JobContext], dict]


class JobQueue:
    """One worker thread, one job at a time; ``max_size`` counts running + waiting jobs.

    ``runner(ctx) -> result dict`` does the work (default ``run_distill_job``);
    it should stop soon after ``ctx.cancel`` is set. ``root`` is where job files
    live (default ``hub_home()/jobs``), read at construction: earlier jobs show
    up in ``jobs()``, and those a dead server left active are marked failed.
    """

    def __init__(self, max_size: int = 5, runner: Runner | None = None, root: str | Path | None = None):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.runner = runner or run_distill_job
        self.root = Path(root) if root is not None else hub_home() / "jobs"
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []
        self._running: str | None = None
        self._cancel: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self._me = _process_tag()
        self._load()

    # ---- public API ------------------------------------------------------

    def submit(self, kind: str, params: dict, owner: str | None = None, name: str | None = None) -> str:
        """Queue a job; returns its id. ``owner`` is a secret that ``cancel`` will ask for."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the queue is closed")
            if len(self._waiting) + (self._running is not None) >= self.max_size:
                raise QueueFull(f"the training queue is full ({self.max_size} runs); try again later")
            job_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}-{secrets.token_hex(2)}"
            job = Job(
                id=job_id, kind=kind, params=dict(params), name=self._unique_name(name or params.get("name") or kind),
                owner_hash=_hash(owner) if owner else None, process=self._me,
            )
            self._jobs[job_id] = job
            self._cancel[job_id] = threading.Event()
            self._waiting.append(job_id)
            self._save(job)
            self._ensure_worker()
            self._wake.notify_all()
            return job_id

    def position(self, job_id: str) -> int:
        """0 = running, n = nth waiting, -1 = not in the queue (finished, stopped, failed)."""
        with self._lock:
            self._get(job_id)
            if job_id == self._running:
                return 0
            if job_id in self._waiting:
                return self._waiting.index(job_id) + 1
            return -1

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Remove a waiting job, or ask the running one to stop at its next step.
        When the job has an owner and ``owner`` is given, it must match
        (``PermissionError``). Returns False when the job had already ended."""
        with self._lock:
            job = self._get(job_id)
            if job.owner_hash and owner is not None and not secrets.compare_digest(job.owner_hash, _hash(owner)):
                raise PermissionError("only the browser that started this run can stop it")
            if job_id in self._waiting:
                self._waiting.remove(job_id)
                job.state, job.finished_at = STOPPED, utc_now()
                job.add_log("cancelled before it started")
                self._save(job)
                return True
            if job_id == self._running:
                self._cancel[job_id].set()
                job.add_log("stop requested: stopping at the next step ...")
                self._save(job)
                return True
            return False

    def status(self, job_id: str) -> dict:
        """Everything about one job (a copy): state, position, progress, loss curves,
        log lines, result card(s) and error."""
        with self._lock:
            job = self._get(job_id)
            d = copy.deepcopy(job.to_dict())
            d.pop("owner_hash", None)
            d["position"] = self.position(job_id)
            d["stopping"] = job.state == RUNNING and self._cancel.get(job_id, threading.Event()).is_set()
            return d

    def jobs(self) -> list[dict]:
        """Summaries of all known jobs, newest first."""
        with self._lock:
            keys = ("id", "kind", "name", "state", "created_at", "started_at", "finished_at", "error")
            out = [{k: getattr(j, k) for k in keys} | {"position": self.position(j.id),
                                                         "fraction": j.progress.get("fraction")}
                   for j in self._jobs.values()]
        return out[::-1]  # insertion order is time order (files load sorted by id)

    def current(self) -> dict | None:
        """Status of the running job, or None."""
        with self._lock:
            return self.status(self._running) if self._running else None

    def is_owner(self, job_id: str, owner: str | None) -> bool:
        with self._lock:
            job = self._get(job_id)
            return bool(owner) and job.owner_hash is not None and secrets.compare_digest(job.owner_hash, _hash(owner))

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """Block until the job ends (or the timeout passes); returns its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._wake:
            while self._get(job_id).state in ACTIVE_STATES:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._wake.wait(timeout=0.2 if left is None else min(left, 0.2))
            return self.status(job_id)

    def close(self, cancel_running: bool = False, timeout: float | None = 30.0) -> None:
        """Stop accepting jobs, drop waiting ones (stopped) and let the worker end after
        the running job (stopped too when ``cancel_running``)."""
        with self._wake:
            self._closed = True
            for job_id in list(self._waiting):
                self.cancel(job_id)
            if cancel_running and self._running:
                self.cancel(self._running)
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    # ---- worker --------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # daemon: never keeps the process alive; independent of any request
            self._thread = threading.Thread(target=self._work, name="hub-job-worker", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return
                job_id = self._waiting.pop(0)
                job = self._jobs[job_id]
                job.state, job.started_at, self._running = RUNNING, utc_now(), job_id
                cancel = self._cancel[job_id]
                self._save(job)
            ctx = JobContext(self, job, cancel)
            result, error = None, None
            try:
                result = self.runner(ctx)
            except Exception as exc:  # a failing job must never take the worker down
                error = f"{type(exc).__name__}: {exc}"
                ctx.log("failed: " + error)
                ctx.log(traceback.format_exc(limit=3).strip().splitlines()[-1])
            with self._wake:
                if error is not None:
                    job.state = FAILED
                elif cancel.is_set() or (result or {}).get("status") == STOPPED:
                    job.state = STOPPED
                else:
                    job.state = FINISHED
                job.result, job.error, job.finished_at = result, error, utc_now()
                if job.state == FINISHED:
                    job.progress.update(fraction=1.0, eta_s=0.0, stage="done")
                self._running = None
                self._save(job)
                self._wake.notify_all()

    # ---- persistence ---------------------------------------------------

    def _save(self, job: Job) -> None:
        """Write the job file atomically (temp file + rename)."""
        self.root.mkdir(parents=True, exist_ok=True)
        dest = self.root / f"{job.id}.json"
        tmp = dest.with_name(f".{job.id}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(job.to_dict(), default=str))
        os.replace(tmp, dest)

    def _load(self) -> None:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            try:
                job = Job.from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # a foreign or broken file is not ours to fix
            if not _JOB_ID.match(job.id) or path.stem != job.id:
                continue
            if job.state in ACTIVE_STATES and not _process_alive(job.process, self._me):
                was = job.state
                job.state, job.finished_at = FAILED, job.finished_at or utc_now()
                job.error = RESTARTED if was == RUNNING else f"{RESTARTED} before the run started"
                kept = ", ".join(short_name(o) for o in job.outputs.values())
                note = f"; checkpoints kept in {kept}" if kept else ""
                job.add_log(f"{job.error}{note}")
                self._save(job)
            self._jobs[job.id] = job

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


def _hash(secret: str) -> str:
    return hashlib.sha256(str(secret).encode()).hexdigest()


def _process_tag(pid: int | None = None) -> str:
    """``pid:start-time``: a pid alone can be reused by a later process."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def _process_alive(tag: str, me: str) -> bool:
    """Whether the server process that owns a job is still running (not this one)."""
    if not tag or tag == me:
        return False  # this process did not start it: its owner was an earlier run of us
    try:
        pid = int(tag.split(":", 1)[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _process_tag(pid) == tag


_DEFAULT: dict[Path, JobQueue] = {}
_DEFAULT_LOCK = threading.Lock()


def default_queue() -> JobQueue:
    """The process-wide queue for the current ``hub_home()`` (created on first use)."""
    root = hub_home() / "jobs"
    with _DEFAULT_LOCK:
        if root not in _DEFAULT:
            _DEFAULT[root] = JobQueue(root=root)
        return _DEFAULT[root]


# ---------------------------------------------------------------- uploads

UPLOAD_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
MAX_UPLOAD_ROWS = 50_000
EVAL_FRACTION, MAX_SPLIT_EVAL = 0.1, 1000


def stage_upload(train_path: str | Path, eval_path: str | Path | None, dest: str | Path,
                 max_rows: int = MAX_UPLOAD_ROWS, seed: int = 42) -> dict:
    """Copy uploaded table(s) into ``dest`` (CSV) and return the job's data source.

    Only CSV/TSV/JSONL/Parquet, at most ``max_rows`` rows each; without an eval
    file, a seeded 10% (at most 1,000 rows) of the training file is held out.
    Raises ``hub.data.DataError`` with a message that names no server path.
    """
    from .data import DataError, read_table

    frames = []
    for label, path in (("training file", train_path), ("evaluation file", eval_path)):
        if path is None:
            frames.append(None)
            continue
        path = Path(path)
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise DataError(f"the {label} must be one of {', '.join(UPLOAD_SUFFIXES)}")
        try:
            df = read_table(path)
        except DataError as exc:
            raise DataError(f"the {label} could not be read: {str(exc).replace(str(path), path.suffix)}") from None
        if len(df) > max_rows:
            raise DataError(f"the {label} has {len(df):,} rows; the limit is {max_rows:,}")
        frames.append(df)
    train_df, eval_df = frames
    if eval_df is None:
        if len(train_df) < 20:
            raise DataError("the training file needs at least 20 rows to hold out an evaluation split")
        n_eval = min(MAX_SPLIT_EVAL, max(1, int(len(train_df) * EVAL_FRACTION)))
        shuffled = train_df.sample(frac=1.0, random_state=seed)
        eval_df, train_df = shuffled.iloc[:n_eval], shuffled.iloc[n_eval:]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, df in (("train_file", train_df), ("eval_file", eval_df)):
        f = dest / f"{key.split('_')[0]}.jsonl"
        df.to_json(f, orient="records", lines=True, force_ascii=False)
        out[key] = str(f)
    return out


# ---------------------------------------------------------------- the default runner


def run_distill_job(ctx: JobContext) -> dict:
    """Fine-tune the teacher when it lacks a trained head, distill the student, then
    benchmark both with the quick protocol and add them to the leaderboard.

    Models go to ``models_dir()/<job name>/{teacher,student}``. A stopped or failed
    phase still stores its model's row, marked so and never ranked.
    """
    from .data import load_classification
    from .distill import DistillConfig, TrainConfig, distill, finetune
    from .models import load_model, parse_student
    from .tasks import get_task

    p = validate_params(ctx.params)
    task = get_task(p["task"])
    out = models_dir() / ctx.name
    spec = parse_student(p["student"], p["layers"], p["hidden"], p["heads"], p["ffn"])
    result: dict = {"name": ctx.name, "status": FINISHED, "teacher": None, "student": None, "rows": []}

    ctx.log(f"loading teacher {short_name(p['teacher'])} ...")
    teacher_model, trained = load_model(p["teacher"], task)
    labels = None
    if trained:
        labels = [teacher_model.config.id2label[i] for i in range(teacher_model.config.num_labels)]
    del teacher_model
    kw = data_kwargs(p)
    ft_data = None
    if not trained:
        ft_data = load_classification(task, **kw, max_train_samples=p["finetune_samples"],
                                      max_eval_samples=p["eval_samples"])
        labels = ft_data.label_names
    kd_data = load_classification(task, **kw, max_train_samples=p["train_samples"],
                                  max_eval_samples=p["eval_samples"], label_names=labels)
    ctx.log(f"data: {len(kd_data.train_texts):,} training / {len(kd_data.eval_texts):,} evaluation examples, "
            f"labels {kd_data.label_names[:10]}")
    plan = [] if trained else [("finetune", plan_steps(len(ft_data.train_texts), p["finetune_epochs"],
                                                        p["batch_size"], p["max_steps"]))]
    plan += [(s, plan_steps(len(kd_data.train_texts), p["epochs"], p["batch_size"], p["max_steps"]))
             for s in p["stages"]]
    ctx.set_plan(plan)

    def cfg(epochs, lr):
        return TrainConfig(epochs=epochs, batch_size=p["batch_size"], learning_rate=lr, max_length=p["max_length"],
                           seed=p["seed"], save_steps=p["save_steps"], max_steps=p["max_steps"])

    teacher_ref, new_teacher = p["teacher"], not trained
    if new_teacher:
        teacher_dir = out / "teacher"
        ctx.output("teacher", teacher_dir)
        ctx.log(f"{short_name(p['teacher'])} has no trained {task.name} head: fine-tuning it on "
                f"{len(ft_data.train_texts):,} examples ...")
        try:
            card = finetune(task, p["teacher"], ft_data, str(teacher_dir),
                            cfg(p["finetune_epochs"], p["finetune_learning_rate"]),
                            progress=ctx.progress, cancel=ctx.cancel)
        except Exception:
            _store_card_rows(ctx, task, [teacher_dir], teacher_dir)
            raise
        result["teacher"] = _summary(card, teacher_dir)
        teacher_ref = str(teacher_dir)
        if card["status"] != FINISHED:
            result["status"] = card["status"]
            result["rows"] = _store_card_rows(ctx, task, [teacher_dir], teacher_dir)
            return result

    student_dir = out / "student"
    ctx.output("student", student_dir)
    ctx.log(f"distilling into {spec.label} ({', '.join(p['stages'])}) ...")
    dcfg = DistillConfig(stages=p["stages"], temperature=p["temperature"], alpha=p["alpha"])
    try:
        card = distill(task, teacher_ref, spec, kd_data, str(student_dir), cfg(p["epochs"], p["learning_rate"]), dcfg,
                       progress=ctx.progress, cancel=ctx.cancel)
    except Exception:
        _store_card_rows(ctx, task, [student_dir], teacher_ref)
        raise
    result["student"] = _summary(card, student_dir)
    if card["status"] != FINISHED or ctx.cancel.is_set():
        result["status"] = STOPPED
        result["rows"] = _store_card_rows(ctx, task, [student_dir], teacher_ref)
        return result
    if p["benchmark"]:
        result["rows"] = _benchmark(ctx, task, teacher_ref, student_dir, kd_data)
    return result


def _summary(card: dict, folder: Path) -> dict:
    return {"key": short_name(folder), "path": str(folder), "status": card.get("status"), "eval": card.get("eval"),
            "params": card.get("params"), "wall_time_s": card.get("wall_time_s"),
            "train_examples_per_s": card.get("train_examples_per_s")}


def short_name(ref: str | Path) -> str:
    """How logs name a model: its key under models_dir(), a folder's name, or the alias/Hub id."""
    return _display_name(ref, Path(ref).name if Path(ref).is_dir() else str(ref))


def _display_name(ref: str | Path, fallback: str | None) -> str | None:
    """``<job>/<role>`` for folders under models_dir(), else ``fallback``."""
    try:
        return Path(ref).resolve().relative_to(models_dir().resolve()).as_posix()
    except (ValueError, OSError):
        return fallback


def _benchmark(ctx: JobContext, task, teacher_ref: str, student_dir: Path, data) -> list[dict]:
    """The quick benchmark of teacher and student, stored under their model keys."""
    from .benchmark import Protocol, run_benchmark

    ctx.log("benchmarking teacher and student (quick protocol) ...")
    ctx.phase("benchmark")
    refs = [teacher_ref, str(student_dir)]
    rows = run_benchmark(task, [str(student_dir)], teacher=teacher_ref, data=data, protocol=Protocol.quick(),
                         log=ctx.log, names={r: short_name(r) for r in refs})
    stored = [{k: row.get(k) for k in ("row_id", "name", "role", "status", "accuracy", "f1", "retention",
                                       "agreement", "latency_p50_ms", "speedup_p50")} for row in rows]
    ctx.log(f"leaderboard: {len(stored)} row(s) added")
    return stored


def _store_card_rows(ctx: JobContext, task, folders: list[Path], teacher_ref) -> list[dict]:
    """Leaderboard rows from run cards alone (no timing) for stopped or failed models."""
    from .hardware import hardware_tag
    from .leaderboard import LeaderboardStore

    store, stored = LeaderboardStore(), []
    for folder in folders:
        card_path = Path(folder) / "run.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        status = card.get("status") if card.get("status") in FINAL_STATES else FAILED
        if status == FINISHED and ctx.cancel.is_set():
            status = STOPPED  # stopped after training ended: not benchmarked, so not ranked
        scores = (card.get("eval") or {}).get("student" if card.get("kind") == "student" else "model") or {}
        row = {
            "model": str(folder), "name": short_name(folder), "task": task.name,
            "role": "student" if card.get("kind") == "student" else "teacher",
            "teacher": str(teacher_ref) if card.get("kind") == "student" else None,
            "status": status, "ranked": 0, "accuracy": scores.get("accuracy"), "f1": scores.get("f1"),
            "params": card.get("params"), "run_card": card,
            "hardware": hardware_tag(card["hardware"]) if card.get("hardware") else None,
            "hardware_json": card.get("hardware"),
        }
        row_id = store.add(row)
        stored.append({"row_id": row_id, "name": row["name"], "role": row["role"], "status": status,
                       "accuracy": row["accuracy"]})
    if stored:
        ctx.log(f"leaderboard: {len(stored)} unranked row(s) added ({', '.join(r['status'] for r in stored)})")
    return stored
