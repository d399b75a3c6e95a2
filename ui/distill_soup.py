"""The Distill tab's "Average students (model soup)": pick finished students of the
tab's task that were distilled from one start (several seeds or learning rates),
queue a ``soup`` job (``hub.jobs.soup_job``): their uniform weight average, scored
on their evaluation set and benchmarked against their teacher, followed in the
run column like any run and listed with the other models afterwards.
"""

from __future__ import annotations

import gradio as gr

from hub import jobs, views
from hub.tasks import TASKS

from . import LABELS, PRIVATE, esc, keyed, refuse
from .distill_form import _is_qa

HELP = (f"Students distilled from one start — the same teacher, student and initial weights, with different seeds "
        f"or learning rates — can be averaged weight by weight (a *model soup*). The average is often better than "
        f"each of them at no cost at inference: on this hub's QA recipe, 16 seed runs keeping 85–92% of the "
        f"teacher's F1 averaged to a student keeping 94.3% (README). Pick 2 to {jobs.MAX_INGREDIENTS} finished "
        "students; the soup is scored on their evaluation set and benchmarked against their teacher.")


CALIBRATE_HELP = ("extractive QA: set the soup's \"no answer\" threshold to the one that agrees most with the "
                  "students' teacher on their training questions, each with its own paragraph and another article's "
                  "(no labels); the soup is scored at it")


def soup_choices(task: str) -> list[tuple[str, str]]:
    """(label, model key) of the finished students of ``task``, newest first; the label shows
    the headline score each was given."""
    head = TASKS[task].headline
    out = []
    for e in jobs.soup_students(task):
        score = (((e.card.get("eval") or {}).get("student")) or {}).get(head)
        out.append((f"{e.key} · {head} {score:.3f}" if isinstance(score, (int, float)) else e.key, e.key))
    return out


def start_soup(task: str, models: list[str] | None, name: str | None, owned: dict | None,
               calibrate: bool = False) -> dict:
    """Check the pick (the ingredients' shapes, tokenizers and start are read here, and for a
    calibration their teacher and training questions, so a bad pick is refused before
    queueing), then queue the job for this browser."""
    from .distill_form import submit

    try:
        params = jobs.validate_soup_params({"task": task, "models": list(models or []),
                                            "name": (name or "").strip() or None,
                                            "calibrate_null": bool(calibrate) and _is_qa(task)})
    except ValueError as exc:
        raise refuse(str(exc)) from None
    paths = {e.key: e.path for e in jobs.soup_students(task)}
    try:
        from hub.jobs.soup_job import check_calibration
        from hub.soup import check_ingredients

        check_ingredients([paths[k] for k in params["models"]], task)
        if params["calibrate_null"]:
            check_calibration(task, params["models"])
    except ValueError as exc:
        message = str(exc)
        for key, path in paths.items():  # server folders as the model names the page shows
            message = message.replace(path, key)
        raise refuse(views.redact_text(message)) from None
    return submit(params, owned, kind="soup")


def soup_estimate_markdown(task: str, models: list[str] | None, calibrate: bool = False) -> str:
    """The soup job's expected time, phase by phase, before it starts ("" until two are picked)."""
    from .distill_estimate import ESTIMATE_PHASES, basis_text

    if len(models or []) < 2:
        return ""
    try:
        e = jobs.soup_estimate({"task": task, "models": list(models),
                                "calibrate_null": bool(calibrate) and _is_qa(task)})
    except ValueError as exc:
        return f"**Cannot estimate yet:** {esc(str(exc))}"
    names = {**ESTIMATE_PHASES, "soup": "average the weights", "evaluate": "evaluate the soup",
             "benchmark": "benchmark it"}
    parts = [f"{names.get(k, k)} ≈ {views.format_seconds(ph['seconds'])}" for k, ph in e["phases"].items()]
    return (f"**Estimated time: ~{views.format_seconds(e['seconds'])}** · basis: {esc(basis_text(e))}<br>"
            + esc("; ".join(parts + [f"start-up and loading ≈ {views.format_seconds(e['overhead_s'])}"])) + ".")


def build(task: str) -> dict:
    """The section's components (inside the tab's left column)."""
    c: dict = {}
    with gr.Accordion("Average students (model soup)", open=False, elem_id="soup-box") as c["soup_box"]:
        gr.Markdown(HELP, elem_classes=["hub-caption"])
        c["soup_models"] = gr.Dropdown(soup_choices(task), multiselect=True, label="Students",
                                       info=f"finished {task} students of this server", elem_id="soup-models",
                                       max_choices=jobs.MAX_INGREDIENTS)
        c["soup_name"] = gr.Textbox(label="Soup name (optional)", max_length=60, placeholder=f"{task}-soup",
                                    elem_id="soup-name")
        c["soup_calibrate"] = gr.Checkbox(False, label=LABELS["calibrate_null"], info=CALIBRATE_HELP,
                                          visible=_is_qa(task), elem_id="soup-calibrate")
        c["soup_estimate"] = gr.Markdown(elem_id="soup-estimate")
        c["soup_start"] = gr.Button("Average them", elem_id="soup-start")
    return c


def wire(c: dict, session: dict) -> None:
    """``c``: the tab's components (``task`` and this section's); ``session``: watch, owned, timer, seen."""
    every = {**c, **session}

    def refresh(task, picked):
        """The task's students now (a run may have finished since); the picks that are still among them stay."""
        choices = soup_choices(task)
        keys = {v for _, v in choices}
        return {c["soup_models"]: gr.Dropdown(choices=choices, value=[k for k in picked or [] if k in keys],
                                              info=f"finished {task} students of this server"),
                c["soup_name"]: gr.Textbox(placeholder=f"{task}-soup"),
                c["soup_calibrate"]: gr.Checkbox(visible=_is_qa(task))}

    inputs, outputs = [c["task"], c["soup_models"]], [c["soup_models"], c["soup_name"], c["soup_calibrate"]]
    gr.on([c["soup_models"].change, c["soup_calibrate"].change], soup_estimate_markdown,
          [c["task"], c["soup_models"], c["soup_calibrate"]], c["soup_estimate"], **PRIVATE, show_progress="hidden",
          trigger_mode="always_last")
    c["task"].change(refresh, inputs, outputs, **PRIVATE, show_progress="hidden")
    c["soup_box"].expand(refresh, inputs, outputs, **PRIVATE, show_progress="hidden")
    c["soup_start"].click(lambda task, models, name, calibrate, owned:
                          keyed(every, start_soup(task, models, name, owned, calibrate)),
                          [c["task"], c["soup_models"], c["soup_name"], c["soup_calibrate"], session["owned"]],
                          [session[k] for k in ("watch", "owned", "timer", "seen")], **PRIVATE,
                          concurrency_limit=1)
