"""A run's status on the page: the Distill tab's right column (run list, progress
bar with phase and ETA, smoothed loss curves, outcome, log, Delete) and its
handlers (watch, stop, delete, the poll). Reads ``hub.jobs``' queue; the outcome
comes from each model's run.json (one truth per run).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import gradio as gr
import pandas as pd

from hub import jobs, views
from hub.tasks import TASKS, retention

from . import DEFAULT_TASK, MESSAGE_LABELS, PRIVATE, esc, keyed, refuse

POLL_S = 1.0
EMA_ALPHA = 0.1
PHASES = {
    "finetune": "fine-tuning the teacher", "intermediate": "distilling the intermediate layers",
    "prediction": "distilling the prediction layer", "teacher-outputs": "caching the teacher's outputs",
    "loading": "loading the distillation's models and data",
    "teacher-logits": "caching the teacher's outputs", "caching the teacher's logits": "caching the teacher's outputs",
    "evaluate": "evaluating on the eval set", "evaluate-teacher": "evaluating the teacher",
    "benchmark": "benchmarking for the leaderboard", "augment": "augmenting the training data",
    "cloze": "making cloze questions", "calibrate": "calibrating \"no answer\" to the teacher",
    "rescore": "scoring again at the new threshold", "soup": "averaging the students' weights",
    "select": "choosing the students on the selection file", "done": "done",
}
TRAINING = ("finetune", "intermediate", "prediction")


def job_choices() -> list[tuple[str, str]]:
    return [(f"{j['name']} · {j['state']} · {str(j['created_at'])[:16].replace('T', ' ')}", j["id"])
            for j in jobs.default_queue().jobs()]




def stop_job(job_id: str | None, owned: dict | None) -> dict:
    if not job_id:
        raise refuse("No run selected.")
    try:
        ok = jobs.default_queue().cancel(job_id, owner=(owned or {}).get("token") or "")
    except PermissionError as exc:
        raise refuse(str(exc)) from None
    except KeyError:
        raise refuse("Unknown run.") from None
    gr.Info("Stopping at the next step; the model saved so far is kept." if ok else "This run has already ended.")
    return {"stop": gr.Button(interactive=False)}


def delete_job(job_id: str | None, owned: dict | None) -> dict:
    """Delete the models of an ended run of this browser (and their leaderboard rows);
    the run stays in the list, marked so."""
    if not job_id:
        return {}  # nothing selected, or the confirmation was declined
    try:
        out = jobs.default_queue().delete_models(job_id, owner=(owned or {}).get("token") or "")
    except PermissionError:
        raise refuse("Only the browser that started this run can delete it.") from None
    except KeyError:
        raise refuse("Unknown run.") from None
    except jobs.JobActive as exc:
        raise refuse(str(exc)) from None
    gr.Info(f"Deleted {', '.join(out['deleted']) or 'nothing'}: {out['freed_mb']:.0f} MB freed, "
            f"{out['leaderboard_rows']} leaderboard row(s) removed.")
    return {"seen": None, "timer": gr.Timer(active=True), "delete": gr.Button(visible=False)}




def api_job_status(job_id: str) -> dict:
    """State, queue position, progress, loss curves, log and result of one training job.

    Args:
        job_id: the id of a job (shown in the Distill tab's run list).
    """
    try:
        return views.public_status(jobs.default_queue().status(job_id))
    except KeyError:
        raise refuse("Unknown job id.") from None




def _queue_line(queue) -> str:
    running = queue.current()
    waiting = sum(1 for j in queue.jobs() if j["state"] == jobs.QUEUED)
    return f"Queue: {'1 run training' if running else 'idle'}, {waiting} waiting (at most {queue.max_size})."


def phase_label(stage: str | None) -> str:
    return PHASES.get(stage or "", stage or "")


def progress_html(status: dict | None, queue_line: str = "") -> str:
    """The progress bar, phase, ETA and queue position of a (public) job status; text escaped."""
    e = esc
    muted = f"<br><span class='muted'>{e(queue_line)}</span>" if queue_line else ""
    if status is None:
        return f"<div class='hub-status'>No run yet.{muted}</div>"
    p = status.get("progress") or {}
    state = status["state"]
    frac = 1.0 if state == jobs.FINISHED else float(p.get("fraction") or 0.0)
    head = f"<b>{e(status['name'])}</b> — {e(state)}" + (" (stopping…)" if status.get("stopping") else "")
    if state == jobs.QUEUED:
        pos = status.get("position") or 1
        detail = ("Next in the queue: starts when the current run ends." if pos <= 1 else
                  f"Waiting in the queue: position {pos}.")
    elif state == jobs.RUNNING:
        detail = running_detail(p)
    elif state == jobs.FAILED:
        detail = f"Failed: {e(views.page_message(status.get('error') or 'unknown error', MESSAGE_LABELS))}"
    elif state == jobs.STOPPED and not status.get("started_at"):
        detail = "Cancelled before it started."
    elif state == jobs.STOPPED:
        why = f" ({e(views.redact_text(status['error']).removeprefix('stopped: '))})" if status.get("error") else ""
        detail = f"Stopped{why}. The model saved so far is kept (unranked on the leaderboard)."
    else:
        took = seconds_between(status.get("started_at"), status.get("finished_at"))
        detail = f"Done: finished in {views.format_seconds(took)}."
    return (f"<div class='hub-status'>{head}<div class='hub-bar'><div style='width:{100 * frac:.1f}%'></div></div>"
            f"{detail}{muted}</div>")


ETA_AFTER_STEPS = 5  # a Quick start's step 1 projected 17 min for a 4-min run


def running_detail(p: dict, now: float | None = None) -> str:
    """One line for a running job: phase (stage i/n while training), steps, speed, ETA;
    a phase without steps (caching, evaluation, benchmark) shows its own ETA or elapsed time."""
    stage = p.get("stage")
    if not stage:
        return "Preparing: loading the teacher and the data …"
    label = esc(phase_label(stage))
    if stage in TRAINING and p.get("n_stages"):
        parts = [f"Stage {p.get('stage_index')}/{p['n_stages']}: {label}"]
        if p.get("total"):
            parts.append(f"step {p.get('step', 0)}/{p['total']}")
        if p.get("examples_per_s"):
            parts.append(f"{p['examples_per_s']:.0f} examples/s")
    else:
        parts = [label[:1].upper() + label[1:] + " …"]
        if p.get("phase_total"):
            done, total = int(p.get("phase_step") or 0), int(p["phase_total"])
            parts.append(f"{done:,}/{total:,} examples ({100 * done / total:.0f}%)")
    warming_up = stage in TRAINING and int(p.get("step") or 0) < min(ETA_AFTER_STEPS, int(p.get("total") or 0))
    if warming_up:  # the first steps run slow (allocation, thread start-up): an ETA from them reads 4x too long
        parts.append("ETA after a few steps")
    elif p.get("eta_s") is not None and (stage in TRAINING or p.get("phase_started_at") is not None):
        parts.append(f"ETA {views.format_seconds(p['eta_s'])}")
    elif p.get("phase_started_at") is not None:
        elapsed = (now or datetime.now().timestamp()) - float(p["phase_started_at"])
        parts.append(f"{views.format_seconds(max(elapsed, 0))} so far")
    return " · ".join(parts)


def seconds_between(start: str | None, end: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def loss_frame(status: dict | None) -> pd.DataFrame | None:
    """Loss curves, smoothed (EMA), one series per term; every term of ``jobs.LOSS_CURVES``
    is always present.

    Gradio's plots fix their colour domain when first drawn, so a term that appears
    later (a new stage) would never be drawn; a term without points gets one point
    on top of an existing one, which draws nothing (a line needs two). Plots draw
    nothing after an empty frame, so no data is None."""
    losses = (status or {}).get("losses") or {}
    if not any(losses.values()):
        return None
    first = next(views.ema(pts, EMA_ALPHA)[0] for pts in losses.values() if pts)
    rows = []
    for term in [*jobs.LOSS_CURVES, *(t for t in losses if t not in jobs.LOSS_CURVES)]:
        pts = losses.get(term)
        rows += [(int(x), float(v), term) for x, v in (views.ema(pts, EMA_ALPHA) if pts else [first])]
    return pd.DataFrame(rows, columns=["step", "loss", "term"]).astype({"step": "int64", "loss": "float64",
                                                                         "term": "str"})


def log_text(status: dict | None, lines: int = 200) -> str:
    return "\n".join(views.redact_text(line) for line in ((status or {}).get("log") or [])[-lines:])


def result_markdown(status: dict | None, cards: dict[str, dict]) -> str:
    """A run's outcome from its models' run.json (status, headline metric, retention as a
    percentage), its warnings (e.g. a teacher near chance) and a link to compare them."""
    if not status or status["state"] in jobs.ACTIVE_STATES:
        return ""
    if status.get("models_deleted"):
        return f"The models of this run were deleted ({', '.join(status['models_deleted'])})."
    task = TASKS.get((status.get("params") or {}).get("task") or DEFAULT_TASK, TASKS[DEFAULT_TASK])
    head = task.headline
    lines, warnings = [], list(status.get("warnings") or [])
    names = {role: jobs.short_name(folder) for role, folder in (status.get("outputs") or {}).items()}
    for role in ("teacher", "student"):
        card = cards.get(role)
        if not card:
            continue
        ev = card.get("eval") or {}
        score = (ev.get("student" if role == "student" else "model") or {}).get(head)
        text = f"- **{role}** `{names[role]}` — {esc(str(card.get('status', '?')))}"
        if score is not None:
            text += f" · {head} {score:.3f}"
        if role == "student":
            r = ev.get("retention")
            if r is None:
                r = retention(task, score, (ev.get("teacher") or {}).get(head))
            if r is not None:
                text += f" · retention {views.format_percent(r)} of the teacher"
            speed = next((row.get("speedup_p50") for row in (status.get("result") or {}).get("rows") or []
                          if isinstance(row, dict) and row.get("role") == "student" and row.get("speedup_p50")), None)
            if speed:
                text += f" · {speed:.2f}× faster (p50)"
            text += soup_line(card, head) + calibration_line(card, head)
        lines.append(text)
        warnings += card.get("warnings") or []
    lines += [f"- ⚠️ **Warning:** {esc(views.redact_text(w))}" for w in dict.fromkeys(warnings)]
    student = cards.get("student")
    if student and student.get("status") == "finished" and "teacher" not in names and student.get("soup"):
        models = jobs.allowed_models(task.name)
        folder = (models.get(names["student"]) or {}).get("teacher")  # resolved by the registry
        teacher = next((k for k, v in models.items() if folder and v["path"] == folder and v["role"] == "teacher"),
                       None)
        if teacher:  # a soup job writes the student only: compare it with its students' teacher
            names["teacher"] = teacher
    if student and student.get("status") == "finished" and "teacher" in names:
        lines.append(f"- [Compare them side by side](?tab=compare&task={quote(task.name)}&a={quote(names['teacher'])}"
                     f"&b={quote(names['student'])})")
    return "\n".join(lines)


def calibration_line(card: dict, head: str) -> str:
    """For a QA model whose "no answer" threshold was calibrated to its teacher: the threshold,
    and the score it had before when that was recorded.

    >>> calibration_line({"null_calibration": {"threshold": -2.048, "agreement": 0.8587},
    ...                   "eval_before_calibration": {"student": {"f1": 27.26}}}, "f1")
    ' · "no answer" calibrated to the teacher: threshold -2.05 (agreement 0.859; f1 27.260 at 0 before)'
    """
    c = card.get("null_calibration")
    if not c:
        return ""
    before = ((card.get("eval_before_calibration") or {}).get("student") or {}).get(head)
    was = f"; {head} {before:.3f} at {c.get('before') or 0:g} before" if isinstance(before, (int, float)) else ""
    return (f" · \"no answer\" calibrated to the teacher: threshold {c['threshold']:.3g} "
            f"(agreement {c.get('agreement') or 0:.3f}{was})")


def soup_line(card: dict, head: str) -> str:
    """For a soup: how many students it averages and the range of their scores (what averaging gained)."""
    ingredients = (card.get("soup") or {}).get("ingredients") or []
    if not ingredients:
        return ""
    scores = [(i.get("eval") or {}).get(head) for i in ingredients]
    scores = [s for s in scores if isinstance(s, (int, float))]
    spread = f" ({head} {min(scores):.3f}–{max(scores):.3f})" if scores else ""
    chosen = (card.get("soup") or {}).get("selection")
    among = f", chosen greedily among {len(chosen.get('ingredients') or [])}" if chosen else ""
    if len(ingredients) == 1:
        return f" · one student kept{among}: averaging others in lowered its score on the selection file"
    return f" · the average of {len(ingredients)} students{spread}{among}"


def _status(queue, job_id: str | None) -> dict | None:
    try:
        return queue.status(job_id) if job_id else None
    except KeyError:
        return None


def _signature(status: dict | None):
    if status is None:
        return None
    return [status["id"], status["state"], len(status.get("log") or []), (status.get("log") or [""])[-1],
            sum(len(v) for v in (status.get("losses") or {}).values()), status.get("position"),
            bool(status.get("stopping")), len(status.get("models_deleted") or [])]


def poll(job_id: str | None, owned: dict | None, seen: dict | None) -> tuple[dict, dict | None, bool]:
    """Timer tick: the watched job's view (updates by name), this browser's own job
    (public status, or None) and whether that one just ended."""
    queue = jobs.default_queue()
    owned, seen = owned or {}, seen or {}
    status = _status(queue, job_id)
    mine = status if job_id and owned.get("job") == job_id else _status(queue, owned.get("job"))
    active = bool(status) and status["state"] in jobs.ACTIVE_STATES
    mine_active = bool(mine) and mine["state"] in jobs.ACTIVE_STATES
    before = seen.get("mine") or [None, None]
    mine_ended = bool(mine) and before[0] == mine["id"] and before[1] in jobs.ACTIVE_STATES and not mine_active
    is_owner = bool(status) and queue.is_owner(status["id"], owned.get("token"))
    deletable = bool(status) and is_owner and not active and bool(status.get("outputs")) \
        and not status.get("models_deleted")
    sig = _signature(status)
    public = views.public_status(status) if status else None
    updates = {
        "progress": progress_html(public, _queue_line(queue)),
        "stop": gr.Button(interactive=active and is_owner and not status.get("stopping")),
        "delete": gr.Button(visible=deletable),
        "timer": gr.Timer(active=active or mine_active),
        "seen": {"watch": sig, "mine": [mine["id"], mine["state"]] if mine else None},
    }
    if sig != seen.get("watch"):
        # a soup job trains nothing: no loss curves to draw
        curves = (status or {}).get("kind") != "soup"
        updates.update(plot=gr.LinePlot(loss_frame(status), visible=curves), plot_caption=gr.Markdown(visible=curves),
                       log=log_text(public),
                       result=result_markdown(status, views.run_cards(status) if status else {}),
                       runs=gr.Dropdown(choices=job_choices(), value=job_id))
    return updates, (views.public_status(mine) if mine else None), mine_ended


def watch_job(job_id: str | None) -> dict:
    return {"watch": job_id, "timer": gr.Timer(active=True), "seen": None}


def init_session(owned: dict | None) -> dict:
    """Page load: watch this browser's last run, else the running one, else the newest."""
    queue = jobs.default_queue()
    owned = owned or {}
    job_id = owned.get("job") if _status(queue, owned.get("job")) else None
    if job_id is None or _status(queue, job_id)["state"] not in jobs.ACTIVE_STATES:
        current = queue.current()
        if current:
            job_id = current["id"]
        elif job_id is None:
            listed = queue.jobs()
            job_id = listed[0]["id"] if listed else None
    return {"watch": job_id, "timer": gr.Timer(active=job_id is not None), "seen": None,
            "runs": gr.Dropdown(choices=job_choices(), value=job_id)}




# ---------------------------------------------------------------- the column


def build() -> dict:
    """The run list, progress, curves, outcome, log and Delete (inside an open column)."""
    c: dict = {}
    c["runs"] = gr.Dropdown(job_choices(), label="Run", info="the current and past runs", elem_id="distill-runs")
    c["progress"] = gr.HTML(progress_html(None), elem_id="distill-progress")
    c["plot"] = gr.LinePlot(None, x="step", y="loss", color="term", title="Losses (smoothed)", height=260,
                            x_title="step (all stages)", elem_id="distill-plot")
    c["plot_caption"] = gr.Markdown(f"Curves are an exponential moving average (α = {EMA_ALPHA}) of the per-step "
                                    "losses: batches are grouped by length, so the raw values zig-zag (the log has "
                                    "them).", elem_classes=["hub-caption"], elem_id="distill-plot-caption")
    c["result"] = gr.Markdown(elem_id="distill-result")
    c["log"] = gr.Textbox(label="Log (newest at the bottom)", lines=10, max_lines=10, autoscroll=True,
                          interactive=False, elem_id="distill-log")
    c["delete"] = gr.Button("Delete run", variant="stop", visible=False, size="sm", elem_id="distill-delete")
    return c


# the Log box shows its newest lines: after every update, and when its tab is shown again
# (a textarea that was hidden while it changed keeps scrollTop 0; gradio's autoscroll follows typing only)
SCROLL_LOG_JS = """() => { setTimeout(() => { const t = document.querySelector('#distill-log textarea');
  if (t) { t.scrollTop = t.scrollHeight; } }, 50); }"""
DELETE_JS = """(job, owned) => confirm('Delete the models of this run and their leaderboard rows?') ?
  [job, owned] : [null, owned]"""
POLL_OUTPUTS = ("progress", "stop", "delete", "plot", "plot_caption", "log", "result", "runs")


def wire(c: dict, session: dict) -> dict:
    """``c``: this column's components plus the Stop button; ``session``: watch, seen, owned, timer.
    Returns the events other tabs follow (``deleted``)."""
    every = {**c, **session}
    c["stop"].click(lambda job, owned: keyed(every, stop_job(job, owned)), [session["watch"], session["owned"]],
                    c["stop"], **PRIVATE)
    deleted = c["delete"].click(lambda job, owned: keyed(every, delete_job(job, owned)),
                                [session["watch"], session["owned"]], [session["seen"], session["timer"], c["delete"]],
                                js=DELETE_JS, **PRIVATE)
    c["runs"].input(lambda job: keyed(every, watch_job(job)), c["runs"],
                    [session["watch"], session["timer"], session["seen"]], **PRIVATE)
    c["log"].change(None, None, None, js=SCROLL_LOG_JS, **PRIVATE)
    return {"deleted": deleted}
