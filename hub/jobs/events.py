"""Reading a job's files as the child writes them: :class:`EventView` over
``events.jsonl`` (plan, outputs, phases, progress, loss curves; each poll reads only
what was appended) and :func:`log_tail` for ``log.txt``. No torch."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

MAX_LOG_LINES = 400
MAX_CURVE_POINTS = 1000  # per loss term in a status; real points, evenly thinned


class EventView:
    """What a job's ``events.jsonl`` says so far: plan, outputs, data, progress and
    loss curves; ``update()`` reads what was appended since the last call."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0
        self.plan: list = []
        self.outputs: dict[str, str] = {}
        self.data: dict | None = None
        self.losses: dict[str, list] = {}
        self.last: dict = {}  # the newest progress event
        self.phase: dict | None = None  # the newest phase event, while no training step came after it
        self.warnings: list[str] = []

    def update(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # a line the child is writing waits for the next read
        self.offset += end
        for raw in chunk[:end].splitlines():
            try:
                self.apply(json.loads(raw))
            except (ValueError, TypeError, KeyError):
                continue  # a damaged line is skipped, the rest still counts

    def apply(self, e: dict) -> None:
        kind = e.get("type")
        if kind == "plan":
            self.plan = [[str(s), int(n)] for s, n in e["stages"]]
        elif kind == "output":
            self.outputs[str(e["role"])] = str(e["folder"])
        elif kind == "data":
            self.data = {k: e.get(k) for k in ("kind", "description")}
        elif kind == "phase":
            self.phase = e
        elif kind == "warning":
            self.warnings.append(str(e.get("message")))
        elif kind == "progress":
            self.phase = None
            self.last = e
            for item in self.plan:
                if item[0] == e.get("stage"):
                    item[1] = int(e.get("total") or item[1])  # the Trainer's own count wins over the plan
            for term, value in (e.get("losses") or {}).items():
                self.losses.setdefault(term, []).append([int(e["x"]), float(value)])

    def curves(self, max_points: int = MAX_CURVE_POINTS) -> dict[str, list]:
        """Loss curves with at most ``max_points`` real points per term (every k-th, and the last)."""
        out = {}
        for term, points in self.losses.items():
            k = max(1, math.ceil(len(points) / max_points))
            out[term] = [list(p) for i, p in enumerate(points) if i % k == 0 or i == len(points) - 1]
        return out

    def progress(self, now: float | None = None) -> dict:
        """Stage, step, ETA and the overall fraction over the planned phases. In a
        phase without steps (evaluation, caching, benchmark) the stage is the
        phase's, with ``phase_started_at``, ``phase_step``/``phase_total`` when it
        counts examples, and ``eta_s`` its own seconds left (counted down from its
        last event; None once spent, or when unknown); the fraction stays where
        training left it."""
        e = self.last
        phase = self._phase_progress(time.time() if now is None else now) if self.phase else {}
        if not e:
            return phase
        stage, step, total = e.get("stage"), int(e.get("step") or 0), int(e.get("total") or 0)
        names = [s for s, _ in self.plan]
        eta = e.get("eta_s")
        per_step = eta / (total - step) if eta and total > step else None
        if stage in names:
            i = names.index(stage)
            done = sum(n for _, n in self.plan[:i]) + step
            left_after = sum(n for _, n in self.plan[i + 1:])
            fraction = done / max(sum(n for _, n in self.plan), 1)
            stage_index, n_stages = i + 1, len(self.plan)
        else:
            left_after, fraction, stage_index, n_stages = 0, step / max(total, 1), 1, 1
        return {
            "stage": stage, "step": step, "total": total, "epoch": e.get("epoch"),
            "examples_per_s": e.get("examples_per_s"),
            "eta_s": (total - step + left_after) * per_step if per_step is not None else eta,
            "stage_eta_s": eta, "fraction": min(max(fraction, 0.0), 1.0),
            "stage_index": stage_index, "n_stages": n_stages, **phase,
        }

    def _phase_progress(self, now: float) -> dict:
        ph = self.phase or {}
        started = ph.get("started_at") if ph.get("started_at") is not None else ph.get("t")  # older files: t
        eta = ph.get("eta_s")
        if eta is not None and ph.get("t") is not None:
            eta = float(eta) - max(now - float(ph["t"]), 0.0)
            eta = eta if eta > 0 else None  # spent: the page shows the time so far
        out = {"stage": ph.get("stage"), "phase_started_at": started, "eta_s": eta, "stage_eta_s": eta}
        if ph.get("total"):
            out.update(phase_step=int(ph.get("step") or 0), phase_total=int(ph["total"]))
        return out


def log_tail(path: Path, lines: int = MAX_LOG_LINES, max_bytes: int = 256_000) -> list[str]:
    """The last ``lines`` lines of a log file (reading at most its last ``max_bytes``)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = text.splitlines()
    if size > max_bytes:
        out = out[1:]  # the first line is cut
    return [line for line in out if line.strip()][-lines:]
