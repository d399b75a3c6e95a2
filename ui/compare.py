"""The Compare tab: two trained models side by side. A shared header (task,
models A and B, the Quick start for an empty server) and one section per task
kind below it, shown for the chosen task's kind.

Sections are the modules listed in ``SECTIONS`` by task kind
(``ui.compare_classification``, ``ui.compare_qa``, ``ui.compare_fill_mask`` for
``mlm``, ``ui.compare_generation``); one that is not there yet is skipped, and a
kind without a section says so. A section module has:

* ``TITLE`` — its heading;
* ``build() -> dict`` — its components by name (inside a column this module opens);
* ``wire(s, header)`` — its handlers (``header``: this module's components);
* ``API`` — ``{api_name: fn}``, public endpoints the app registers
  (classification: ``compare``, ``compare_batch``; later ``compare_qa``,
  ``compare_fill_mask``, ``compare_generate``);
* optionally ``on_task(task) -> dict`` (updates by name when the task changes),
  ``LINK_INPUT`` (the name of the component a shared link's ``text`` fills),
  ``from_link(task, a, b, text) -> dict`` (the comparison a shared link shows)
  and ``LINK_OUTPUTS`` (the names ``from_link`` updates).

Shared checks for sections: :func:`check_task`, :func:`model_path`,
:func:`predictors` (each predictor has ``runtime``: "PyTorch", "ONNX Runtime int8").

The model lists (:func:`compare_models`) hold this server's trained models, the
ONNX Runtime variants of those that have an export (``quickstart/student · onnx
int8``), and, when the Hub is reachable, the published pairs of ``hub.published``;
the header's "Published pairs" list picks both models of one at once and is
hidden offline.
"""

from __future__ import annotations

import importlib
import weakref

import gradio as gr

from hub import jobs, published, views
from hub.tasks import TASKS, Task

from . import DEFAULT_TASK, PRIVATE, esc, fault, implemented_tasks, keyed, refuse, run_status
from .distill_estimate import quick_start_estimate
from .distill_form import quick_start, quick_start_summary

# task kind (``Task.kind``) -> its section module ``ui.<name>``
SECTIONS = {"classification": "compare_classification", "qa": "compare_qa", "mlm": "compare_fill_mask",
            "generation": "compare_generation"}
_WARM: weakref.WeakSet = weakref.WeakSet()


def sections() -> dict:
    """kind -> section module, for the sections that exist."""
    out = {}
    for kind, name in SECTIONS.items():
        try:
            out[kind] = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
    return out


def section_apis() -> dict:
    """The public endpoints the sections declare: api name -> function."""
    return {name: fn for module in sections().values() for name, fn in getattr(module, "API", {}).items()}


def link_inputs() -> dict[str, str]:
    """kind -> the component name (``<kind>:<name>``) a shared link's text fills."""
    return {k: f"{k}:{m.LINK_INPUT}" for k, m in sections().items() if getattr(m, "LINK_INPUT", None)}


def link_outputs() -> list[str]:
    """Component names a shared link's comparison may update, over all sections."""
    return [f"{k}:{n}" for k, m in sections().items() for n in getattr(m, "LINK_OUTPUTS", ())]


def from_link(task: str, a: str, b: str, text: str) -> dict:
    """The comparison a shared link shows, by component name; {} when the task's
    section has none."""
    kind = TASKS[task].kind if task in TASKS else None
    module = sections().get(kind)
    if module is None or not hasattr(module, "from_link"):
        return {}
    return {f"{kind}:{k}": v for k, v in module.from_link(task, a, b, text).items()}


# ---------------------------------------------------------------- checks shared by sections


def check_task(task, kind: str | None = None) -> Task:
    """The task record of an implemented task (of ``kind`` when given), or a clean error."""
    if not isinstance(task, str) or task not in implemented_tasks():
        raise refuse(f"Unknown task; choose one of {', '.join(implemented_tasks())}.")
    t = TASKS[task]
    if kind is not None and t.kind != kind:
        endpoint = next((n for n in getattr(sections().get(t.kind), "API", {})), None)
        where = f" (use /{endpoint})" if endpoint else ""
        raise refuse(f"Task {task} is a {t.kind} task, not {kind}{where}.")
    return t


def trained_models(task: str) -> dict[str, dict]:
    """This server's trained models for ``task`` (``hub.jobs.allowed_models``), without
    runs whose run.json still says running: their weights are not final."""
    return {k: v for k, v in jobs.allowed_models(task).items() if v.get("status") != "running"}


def compare_models(task: str) -> dict[str, dict]:
    """Every model the Compare tab offers for ``task``: the trained ones, each followed
    by its ONNX Runtime variants (``hub.jobs.onnx_variants``), then the published
    Hub models (``hub.published``; none offline)."""
    trained = trained_models(task)
    variants = jobs.onnx_variants(trained)
    out: dict[str, dict] = {}
    for key, info in trained.items():
        out[key] = info
        out.update({k: v for k, v in variants.items() if v["base"] == key})
    for key, info in published.models(task).items():
        out.setdefault(key, info)
    return out


def model_entry(key, task: str, which: str) -> dict:
    """A listed model's info (path, role, runtime, ...), or a clean error (never the raw input)."""
    models = compare_models(task)
    if not isinstance(key, str) or key not in models:
        raise refuse(f"Model {which} is not one of this server's {task} models; pick one from the list.")
    return models[key]


def model_path(key, task: str, which: str) -> str:
    """The server folder (or published Hub id) of a model name, or a clean error."""
    return model_entry(key, task, which)["path"]


def runtime(predictor) -> str:
    """How a loaded predictor runs ("PyTorch", "ONNX Runtime int8"), for the page."""
    return getattr(predictor, "runtime", "PyTorch")


def predictors(task: Task, a: str, b: str, warm=None) -> tuple:
    """Both models loaded (``hub.inference.load_predictor``: a small LRU shared by all
    sections), each warmed up once by ``warm(predictor)`` so latencies shown exclude
    the first slow calls. A model that cannot load is a fault, reported in one line."""
    from hub.inference import load_predictor

    ea, eb = model_entry(a, task.name, "A"), model_entry(b, task.name, "B")
    try:
        out = tuple(load_predictor(e["path"], task, id2label=e.get("id2label")) for e in (ea, eb))
    except Exception as exc:  # noqa: BLE001 - a broken model folder must not take the server down
        raise fault("Loading the models", exc) from None
    for p in out:
        if warm is not None and p not in _WARM:
            warm(p)
            _WARM.add(p)
    return out


def api_models(task: str) -> dict:
    """Model names this server accepts for a task, and the default (teacher, student) pair.

    Args:
        task: a task name, e.g. "sst2".
    """
    check_task(task)
    models = compare_models(task)
    a, b = default_pair(task, models)
    return {"task": task, "models": [{"name": k, "role": v["role"], "runtime": runtime_words(v),
                                      "published": bool(v.get("published"))} for k, v in models.items()],
            "published_pairs": [{"model_a": published.model_key(p.teacher), "model_b": published.model_key(p.student),
                                 "why": p.why} for p in published.pairs(task)],
            "default": {"model_a": a, "model_b": b}}


def runtime_words(info: dict) -> str:
    """How a listed model runs: "PyTorch", "ONNX Runtime fp32" or "ONNX Runtime int8"."""
    return f"ONNX Runtime {info.get('quantization', 'fp32')}" if info.get("runtime") == "onnx" else "PyTorch"


def default_pair(task: str, models: dict[str, dict]) -> tuple[str | None, str | None]:
    """The pair shown first: this server's newest teacher/student pair when it has two
    trained models, else the first published pair (online), else whatever there is."""
    trained = {k: v for k, v in models.items() if not v.get("published") and v.get("runtime", "torch") == "torch"}
    pairs = published.pairs(task)
    if len(trained) < 2 and pairs:
        return published.model_key(pairs[0].teacher), published.model_key(pairs[0].student)
    return jobs.default_pair(models)


def pair_choices(task: str) -> list[tuple[str, int]]:
    """(label, index) of the task's published pairs (none offline)."""
    return [(p.label, i) for i, p in enumerate(published.pairs(task))]


def pick_pair(task: str, index) -> dict:
    """Models A and B set to a published pair's teacher and student, with why they pair; {} for no choice."""
    pairs = published.pairs(task) if isinstance(task, str) else ()
    if not isinstance(index, int) or not 0 <= index < len(pairs):
        return {}
    p = pairs[index]
    models = model_updates(task, published.model_key(p.teacher), published.model_key(p.student))
    return {"model_a": models["model_a"], "model_b": models["model_b"],
            "pair_note": gr.Markdown(f"Published on the Hub; loaded on first use (a few hundred MB each). "
                                     f"Why this pair: {esc(p.why)}.", visible=True)}


# ---------------------------------------------------------------- header views


def notice_text(task: str, n_models: int) -> str:
    """What to do while fewer than two models exist: the Quick start (default task), else the Distill tab."""
    have = f"No trained {task} models" if not n_models else f"Only one trained {task} model"
    if task != DEFAULT_TASK:
        return f"**{have} on this server yet.** Train a teacher and a student for it in the Distill tab."
    when = quick_start_estimate()
    return (f"**{have} on this server yet.** Press **Quick start** to {quick_start_summary()}"
            f"{f' — {esc(when)}' if when else ''}. The progress shows here and in the Distill tab; "
            "the pair appears in the lists when it is done.")


def model_updates(task: str, a: str | None = None, b: str | None = None) -> dict:
    """Models A and B for ``task`` (kept when still listed, else the default pair), the
    notice and the Quick start row (shown while fewer than two trained models exist)
    and the published pairs (hidden when there are none: offline)."""
    models = compare_models(task)
    choices = [(views.model_label(k, v), k) for k, v in models.items()]
    da, db = default_pair(task, models)
    n_trained = len(trained_models(task))
    empty = n_trained < 2
    pairs = pair_choices(task)
    return {"model_a": gr.Dropdown(choices=choices, value=a if a in models else da),
            "model_b": gr.Dropdown(choices=choices, value=b if b in models else db),
            "notice": gr.Markdown(notice_text(task, n_trained) if empty else "", visible=empty),
            "qs_row": gr.Row(visible=empty and task == DEFAULT_TASK),
            "pairs": gr.Dropdown(choices=pairs, value=None, visible=bool(pairs)),
            "pair_note": gr.Markdown("", visible=False)}


def task_updates(task: str, a: str | None = None, b: str | None = None) -> dict:
    """Everything that follows the task: models, which section shows, the section's own updates."""
    if task not in implemented_tasks():
        task = DEFAULT_TASK
    kind = TASKS[task].kind
    out = model_updates(task, a, b)
    for k, module in sections().items():
        out[f"section:{k}"] = gr.Column(visible=k == kind)
        if k == kind and hasattr(module, "on_task"):
            out.update({f"{k}:{name}": v for name, v in module.on_task(task).items()})
    out["no_section"] = gr.Markdown(visible=kind not in sections(),
                                    value=f"No side-by-side demo for {kind} tasks yet.")
    return out


def job_updates(mine: dict | None, ended: bool) -> dict:
    """The header's view of this browser's own run: Quick start disabled while it is
    queued or running, its progress, and a visible "done" message (with the new pair
    selected) when it ends."""
    active = mine is not None and mine["state"] in jobs.ACTIVE_STATES
    out = {"quick": gr.Button(interactive=not active)}
    if mine is not None and active:
        out["qs_status"] = gr.HTML(run_status.progress_html(mine), visible=True)
    elif mine is not None and ended:
        took = run_status.seconds_between(mine.get("started_at"), mine.get("finished_at"))
        name = esc(mine["name"])
        if mine["state"] == jobs.FINISHED:
            msg = (f"✅ <b>Done:</b> {name} finished in {views.format_seconds(took)}. Its teacher and student "
                   "are selected below: type a sentence and press <b>Compare</b>.")
            gr.Info(f"{mine['name']} is done: its models are in the Compare lists.")
        elif mine["state"] == jobs.STOPPED:
            msg = f"⏹ <b>Stopped:</b> {name}. The model saved so far is kept."
        else:
            msg = f"❌ <b>Failed:</b> {name}: {esc(views.redact_text(mine.get('error') or 'unknown error'))}"
        out["qs_status"] = gr.HTML(f"<div class='hub-status'>{msg}</div>", visible=True)
        task = (mine.get("params") or {}).get("task") or DEFAULT_TASK
        out.update(model_updates(task))
    return out


# ---------------------------------------------------------------- the tab


def build() -> dict:
    """The header and every section's components; section components are named
    ``<kind>:<name>`` in the returned dict."""
    models = compare_models(DEFAULT_TASK)
    a, b = default_pair(DEFAULT_TASK, models)
    choices = [(views.model_label(k, v), k) for k, v in models.items()]
    n_trained = len(trained_models(DEFAULT_TASK))
    empty = n_trained < 2
    pairs = pair_choices(DEFAULT_TASK)
    c: dict = {}
    c["notice"] = gr.Markdown(notice_text(DEFAULT_TASK, n_trained) if empty else "", visible=empty,
                              elem_id="compare-notice")
    with gr.Row(visible=empty) as c["qs_row"]:
        c["quick"] = gr.Button("Quick start", variant="primary", scale=0, min_width=160, elem_id="quick-start")
    c["qs_status"] = gr.HTML(visible=False, elem_id="quick-start-status")
    with gr.Row():
        c["task"] = gr.Dropdown(implemented_tasks(), value=DEFAULT_TASK, label="Task", scale=1, elem_id="compare-task")
        c["model_a"] = gr.Dropdown(choices, value=a, label="Model A (e.g. the teacher)", scale=2, elem_id="compare-a")
        c["model_b"] = gr.Dropdown(choices, value=b, label="Model B (e.g. the student)", scale=2, elem_id="compare-b")
    c["pairs"] = gr.Dropdown(pairs, value=None, visible=bool(pairs), elem_id="compare-pairs",
                             label="Published pairs (Hugging Face Hub): pick one to compare a teacher and its "
                                   "distilled student without training")
    c["pair_note"] = gr.Markdown(visible=False, elem_id="compare-pair-note")
    kind = TASKS[DEFAULT_TASK].kind
    c["no_section"] = gr.Markdown(visible=kind not in sections())
    for k, module in sections().items():
        with gr.Column(visible=k == kind) as c[f"section:{k}"]:
            c.update({f"{k}:{name}": comp for name, comp in module.build().items()})
    return c


def section(c: dict, kind: str) -> dict:
    """A section's components by their own names."""
    prefix = f"{kind}:"
    return {k[len(prefix):]: v for k, v in c.items() if k.startswith(prefix)}


def wire(c: dict, session: dict) -> None:
    """Attach the header's handlers and each section's."""
    every = {**c, **session}
    follows_task = [v for k, v in c.items() if k in ("model_a", "model_b", "notice", "qs_row", "no_section", "pairs",
                                                     "pair_note")
                    or ":" in k]  # the sections and what their on_task updates
    c["task"].input(lambda t: keyed(c, {k: v for k, v in task_updates(t).items() if k in c}), c["task"],
                    follows_task, **PRIVATE, show_progress="hidden")
    c["quick"].click(lambda owned: keyed(every, quick_start(owned)), session["owned"],
                     [session[k] for k in ("watch", "owned", "timer", "seen")], **PRIVATE, concurrency_limit=1)
    c["pairs"].input(lambda t, i: keyed(c, pick_pair(t, i)), [c["task"], c["pairs"]],
                     [c["model_a"], c["model_b"], c["pair_note"]], **PRIVATE, show_progress="hidden")
    header = {k: v for k, v in c.items() if ":" not in k}
    for kind, module in sections().items():
        module.wire(section(c, kind), header)


POLL_OUTPUTS = ("quick", "qs_status", "model_a", "model_b", "notice", "qs_row", "pairs", "pair_note")
