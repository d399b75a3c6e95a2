"""The Distill tab's "Average students (model soup)": pick finished students of the
tab's task that were distilled from one start (several seeds or learning rates),
queue a ``soup`` job (``hub.jobs.soup_job``): their uniform weight average, scored
on their evaluation set and benchmarked against their teacher, followed in the
run column like any run and listed with the other models afterwards. A *greedy* soup
first chooses which of the picked students to average, on a selection file the
browser uploads (``hub.soup_select``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import gradio as gr

from hub import jobs, views
from hub.config import QA_UPLOAD_SUFFIXES, UPLOAD_SUFFIXES
from hub.soup_select import GREEDY_KINDS, check_greedy
from hub.tasks import TASKS

from . import LABELS, PRIVATE, esc, keyed, refuse
from .distill_form import _is_qa, page_error, upload_formats

HELP = (f"Students distilled from one start — the same teacher, student and initial weights, with different seeds "
        f"or learning rates — can be averaged weight by weight (a *model soup*). The average is often better than "
        f"each of them at no cost at inference: on this hub's QA recipe, 16 seed runs keeping 85–92% of the "
        f"teacher's F1 averaged to a student keeping 94.3% (README). Pick 2 to {jobs.MAX_INGREDIENTS} finished "
        "students; the soup is scored on their evaluation set and benchmarked against their teacher.")


GREEDY_HELP = ("a *greedy soup* (Wortsman et al.): the students are ranked on a held-out file you upload (never "
               "their evaluation set), the best first, and each next one is averaged in only when the soup's score "
               "on that file does not fall — a student that would pull the soup down is left out")
SELECT_TEACHER_HELP = ("score on the file by agreement with the students' teacher: its labels are not used for the "
                       "score (the file must still be valid data of the task: rule-made questions will do); unticked: "
                       "the task's metric against its labels")


def _staged_selection(task: str, path: str | None) -> dict:
    """The uploaded selection file checked and copied into the hub's home: ``{select_file, size}``."""
    from hub.data import DataError

    if not path:
        raise refuse(f"Upload a selection file ({upload_formats(task)}) to choose the students on, or untick "
                     "'choose greedily'.")
    try:
        return jobs.stage_selection_upload(path, _is_qa(task), jobs.new_upload_dir())
    except DataError as exc:
        raise page_error(str(exc)) from None


def _selection_size(task: str, path: str | None) -> int | None:
    """Examples in an uploaded selection file (for the estimate), None when it cannot be read."""
    if not path:
        return None
    try:
        return _counted(task, str(path), Path(path).stat().st_mtime_ns)
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def _counted(task: str, path: str, stamp: int) -> int | None:
    """Examples in a file, once per file version (each change of the section asks again)."""
    try:
        return len(jobs.read_upload(path, _is_qa(task)))
    except Exception:  # the estimate only; start_soup gives the file's error
        return None


CALIBRATE_HELP = ("extractive QA: set the soup's \"no answer\" threshold to the one that agrees most with the "
                  "students' teacher on their training questions, each with its own paragraph and another article's "
                  "(no labels); the soup is scored at it")


def _greedy_kind(task: str | None) -> bool:
    return task in TASKS and TASKS[task].kind in GREEDY_KINDS and bool(TASKS[task].head)


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
               calibrate: bool = False, greedy: bool = False, select_path: str | None = None,
               select_teacher: bool = True) -> dict:
    """Check the pick (the ingredients' shapes, tokenizers and start are read here, and for a
    calibration their teacher and training questions, so a bad pick is refused before
    queueing; a greedy soup's selection file is checked and copied), then queue the job for
    this browser."""
    import shutil

    from .distill_form import submit

    request = {"task": task, "models": list(models or []), "name": (name or "").strip() or None,
               "calibrate_null": bool(calibrate) and _is_qa(task)}
    try:
        jobs.validate_soup_params(request)  # a bad pick is refused before the file is copied
        if greedy:
            check_greedy(TASKS[task])
    except ValueError as exc:
        raise refuse(str(exc)) from None
    if greedy:
        request.update(select_file=_staged_selection(task, select_path)["select_file"],
                       select_teacher=bool(select_teacher))
    try:
        params = _checked(task, request)
    except BaseException:
        if request.get("select_file"):  # the upload of a refused soup is not kept
            shutil.rmtree(Path(request["select_file"]).parent, ignore_errors=True)
        raise
    return submit(params, owned, kind="soup")


def _checked(task: str, request: dict) -> dict:
    """The soup job's parameters, checked as the job will check them (a refusal names the page's models)."""
    try:
        params = jobs.validate_soup_params(request)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    paths = {e.key: e.path for e in jobs.soup_students(task)}
    try:
        from hub.jobs.soup_job import check_calibration, check_selection
        from hub.soup import check_ingredients

        check_ingredients([paths[k] for k in params["models"]], task)
        if params["calibrate_null"]:
            check_calibration(task, params["models"])
        if params.get("select_file"):
            check_selection(task, params["models"], params["select_file"], params["select_teacher"])
    except ValueError as exc:
        message = str(exc).replace(str(Path(params.get("select_file") or "/nowhere").parent) + "/", "")
        for key, path in paths.items():  # server folders as the model names the page shows
            message = message.replace(path, key)
        raise refuse(views.redact_text(message)) from None
    return params


def soup_estimate_markdown(task: str, models: list[str] | None, calibrate: bool = False, greedy: bool = False,
                           select_path: str | None = None, select_teacher: bool = True) -> str:
    """The soup job's expected time, phase by phase, before it starts ("" until two are picked)."""
    from .distill_estimate import ESTIMATE_PHASES, basis_text

    if len(models or []) < 2:
        return ""
    size = _selection_size(task, select_path) if greedy else None
    try:
        e = jobs.soup_estimate({"task": task, "models": list(models), "calibrate_null": bool(calibrate) and _is_qa(task),
                                "select_teacher": bool(select_teacher)}, select_size=size)
    except ValueError as exc:
        return f"**Cannot estimate yet:** {esc(str(exc))}"
    names = {**ESTIMATE_PHASES, "select": "choose the students on the selection file", "soup": "average the weights",
             "evaluate": "evaluate the soup", "benchmark": "benchmark it"}
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
        c["soup_greedy"] = gr.Checkbox(False, label="choose the students greedily on held-out data", info=GREEDY_HELP,
                                       visible=_greedy_kind(task), elem_id="soup-greedy")
        with gr.Group(visible=False) as c["soup_select_box"]:
            c["soup_select_file"] = gr.File(label="Selection file", type="filepath",
                                            file_types=list(dict.fromkeys(UPLOAD_SUFFIXES + QA_UPLOAD_SUFFIXES)),
                                            elem_id="soup-select-file")
            c["soup_select_teacher"] = gr.Checkbox(True, label="score by agreement with the teacher",
                                                   info=SELECT_TEACHER_HELP, elem_id="soup-select-teacher")
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
                c["soup_calibrate"]: gr.Checkbox(visible=_is_qa(task)),
                # hidden for a task that cannot choose greedily, and then unticked (a ticked one stays)
                c["soup_greedy"]: gr.Checkbox(visible=True) if _greedy_kind(task) else gr.Checkbox(visible=False,
                                                                                                   value=False)}

    inputs = [c["task"], c["soup_models"]]
    outputs = [c["soup_models"], c["soup_name"], c["soup_calibrate"], c["soup_greedy"]]
    choice = [c["soup_calibrate"], c["soup_greedy"], c["soup_select_file"], c["soup_select_teacher"]]
    gr.on([c["soup_models"].change, *(x.change for x in choice)], soup_estimate_markdown,
          [c["task"], c["soup_models"], *choice], c["soup_estimate"], **PRIVATE, show_progress="hidden",
          trigger_mode="always_last")
    c["soup_greedy"].change(lambda on: gr.Group(visible=bool(on)), c["soup_greedy"], c["soup_select_box"],
                            **PRIVATE, show_progress="hidden")
    c["task"].change(refresh, inputs, outputs, **PRIVATE, show_progress="hidden")
    c["soup_box"].expand(refresh, inputs, outputs, **PRIVATE, show_progress="hidden")
    c["soup_start"].click(lambda task, models, name, calibrate, greedy, path, by_teacher, owned:
                          keyed(every, start_soup(task, models, name, owned, calibrate, greedy, path, by_teacher)),
                          [c["task"], c["soup_models"], c["soup_name"], *choice, session["owned"]],
                          [session[k] for k in ("watch", "owned", "timer", "seen")], **PRIVATE,
                          concurrency_limit=1)
