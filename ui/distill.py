"""The Distill tab: choose a teacher, a student, the data and the settings; see
the cost estimate; start, follow, stop and delete a run.

Every field's range and default comes from ``hub.config.JobSettings``; the job
itself is ``hub.jobs``' business (one at a time for the whole server, in a child
process; closing the browser never stops it). A browser owns the runs it
started through a secret token kept in its local storage (``owned``): only it
may stop or delete them. This module builds the tab and wires it; the form's
choices and the job parameters it builds are in ``ui.distill_form``, the cost
estimate in ``ui.distill_estimate``, a job's status as the page shows it in
``ui.run_status``, and averaging finished students in ``ui.distill_soup``.
"""

from __future__ import annotations

import gradio as gr

from hub.config import QA_UPLOAD_SUFFIXES, TASK_JOB_DEFAULTS, UPLOAD_SUFFIXES, JobSettings, base_teacher, spec
from hub.tasks import TASKS

from . import DEFAULT_TASK, LABELS, MESSAGE_LABELS, PRIVATE, distill_soup, implemented_tasks, keyed, run_status
# the form's choices, the job it starts and the estimate live in their own modules, importable from here as before
from .distill_estimate import ESTIMATE_PHASES, api_estimate, basis_text, estimate_markdown, quick_start_estimate
from .distill_form import (ALIAS, CUSTOM_SHAPE, DEFAULT_STUDENT, HUB, LOCAL, MAX_UPLOAD_MB, QUICK_START, ROLE_WORDS,
                           ATTENTION_DROPOUT_CHOICES, OWN_DROPOUT, STUDENTS, UPLOAD, _is_qa, augmentable, data_source,
                           job_params, learning_rate_for, local_datasets, owned_status, page_error, prunable,
                           quick_start, quick_start_params, quick_start_summary, start_job, student_choices, submit,
                           teacher_choices, upload_formats, upload_hint)

__all__ = [
    "ALIAS", "API", "CUSTOM_SHAPE", "DEFAULT_STUDENT", "ESTIMATE_PHASES", "FORM", "HUB", "LOCAL", "MAX_UPLOAD_MB",
    "MESSAGE_LABELS", "QUICK_START", "ROLE_WORDS", "SCHEMA_JOB_DEFAULTS", "STUDENTS", "TASK_DEFAULT_FIELDS", "UPLOAD",
    "UPLOADABLE", "api_estimate", "augmentable", "basis_text", "build", "data_source", "estimate_markdown",
    "job_params", "learning_rate_for", "local_datasets", "owned_status", "page_error", "prunable", "quick_start",
    "quick_start_estimate", "quick_start_params", "quick_start_summary", "start_job", "student_choices", "submit",
    "task_defaults", "teacher_choices", "upload_formats", "upload_hint", "wire",
]


UPLOADABLE = list(dict.fromkeys(UPLOAD_SUFFIXES + QA_UPLOAD_SUFFIXES))  # the server checks the task's own

FORM = ("task", "teacher", "student", "layers", "hidden", "heads", "ffn", "prune_ffn", "source", "local_name", "hub_id",
        "hub_config", "upload_train", "upload_eval", "text_column", "label_column", "finetune_samples",
        "train_samples", "eval_samples", "finetune_epochs", "epochs", "finetune_learning_rate", "learning_rate",
        "batch_size", "max_length", "temperature", "alpha", "stages", "augment", "cloze", "cloze_noise",
        "negatives", "calibrate_null", "precision", "attention_dropout", "name")


API = {"estimate": api_estimate, "job_status": run_status.api_job_status}


# ---------------------------------------------------------------- the tab


TASK_DEFAULT_FIELDS = ("train_samples", "eval_samples", "max_length", "stages")
# the schema's defaults of the settings a task may change (hub.config.TASK_JOB_DEFAULTS)
SCHEMA_JOB_DEFAULTS = {k: spec(JobSettings, k)["default"] for k in ("teacher", *TASK_DEFAULT_FIELDS)}


def task_defaults(task: str) -> list:
    """The settings a task sets when picked: its own defaults (``hub.config.TASK_JOB_DEFAULTS``), else the schema's."""
    d = {**SCHEMA_JOB_DEFAULTS, **TASK_JOB_DEFAULTS.get(task, {})}
    return [list(d[k]) if k == "stages" else d[k] for k in TASK_DEFAULT_FIELDS]


def _slider(name: str, step: float) -> gr.Slider:
    """A slider whose range, default and help come from ``JobSettings``."""
    s = spec(JobSettings, name)
    return gr.Slider(s["lo"], s["hi"], value=s["default"], step=step, label=LABELS[name], info=s["help"] or None)


def _number(name: str, value=None, precision: int | None = None, visible: bool = True, step: float = 1,
            interactive: bool | None = None) -> gr.Number:
    s = spec(JobSettings, name)
    return gr.Number(s["default"] if value is None else value, label=LABELS[name], minimum=s["lo"], maximum=s["hi"],
                     precision=precision, info=s["help"] or None, visible=visible, step=step, interactive=interactive)


def _optional_number(name: str) -> gr.Number:
    """A whole-number setting that may be left out (``JobSettings`` default None): 0 stands
    for "not set". The browser sends 0 for an empty number field, so the field's own
    minimum is 0 (the schema's range is checked on the server for any other value)."""
    s = spec(JobSettings, name)
    return gr.Number(0, label=LABELS[name], minimum=0, maximum=s["hi"], precision=0,
                     info=s["help"].replace("empty:", "0:") or None)


def build() -> dict:
    """The tab's components by name (inside an open ``gr.Tab``)."""
    c: dict = {}
    local = local_datasets(DEFAULT_TASK)
    with gr.Row():
        with gr.Column(scale=3):
            c["task"] = gr.Dropdown(implemented_tasks(), value=DEFAULT_TASK, label=LABELS["task"],
                                    info=TASKS[DEFAULT_TASK].description)
            c["teacher"] = gr.Dropdown(teacher_choices(DEFAULT_TASK), value=ALIAS, allow_custom_value=True,
                                       label=LABELS["teacher"], info="a listed model, or type a Hub id (online)")
            c["student"] = gr.Dropdown(student_choices(DEFAULT_TASK), value=DEFAULT_STUDENT, allow_custom_value=True,
                                       label=LABELS["student"],
                                       info="teacher-layers:K copies K of the teacher's layers; a general student "
                                            "starts from its encoder")
            with gr.Row(visible=False) as c["custom_row"]:
                for key, value in CUSTOM_SHAPE.items():
                    c[key] = _number(key, value, precision=0)
            with gr.Row(visible=prunable(DEFAULT_STUDENT)) as c["prune_row"]:
                c["prune_ffn"] = _optional_number("prune_ffn")
            c["source"] = gr.Radio([LOCAL, HUB, UPLOAD], value=LOCAL if local else HUB, label=LABELS["source"])
            with gr.Group(visible=bool(local)) as c["local_box"]:
                c["local_name"] = gr.Dropdown(list(local), value=next(iter(local), None), label=LABELS["local_name"],
                                              info="from the server's data folder")
            with gr.Row(visible=not local) as c["hub_box"]:
                hub_id, hub_config = (TASKS[DEFAULT_TASK].hub_dataset or ("user/name", None))[:2]
                c["hub_id"] = gr.Textbox(label=LABELS["hub_id"], placeholder=hub_id, max_length=100)
                c["hub_config"] = gr.Textbox(label=LABELS["hub_config"], placeholder=hub_config or "", max_length=100)
            with gr.Group(visible=False) as c["upload_box"]:
                with gr.Row():
                    c["upload_train"] = gr.File(label=LABELS["upload_train"], file_types=UPLOADABLE, type="filepath")
                    c["upload_eval"] = gr.File(label=f"{LABELS['upload_eval']} (optional: else 10% held out)",
                                               file_types=UPLOADABLE, type="filepath")
                c["upload_hint"] = gr.Markdown(upload_hint(DEFAULT_TASK))
            with gr.Row(visible=not _is_qa(DEFAULT_TASK)) as c["columns_row"]:
                c["text_column"] = gr.Textbox(label=LABELS["text_column"], placeholder=TASKS[DEFAULT_TASK].text_column,
                                              max_length=100)
                c["label_column"] = gr.Textbox(label=LABELS["label_column"],
                                               placeholder=TASKS[DEFAULT_TASK].label_column, max_length=100)
            with gr.Accordion("Settings", open=False):
                with gr.Row():
                    c["finetune_samples"] = _slider("finetune_samples", 1)
                    c["train_samples"] = _slider("train_samples", 1)
                    c["eval_samples"] = _slider("eval_samples", 1)
                with gr.Row():
                    c["finetune_epochs"] = _slider("finetune_epochs", 0.1)
                    c["epochs"] = _slider("epochs", 0.1)
                    c["batch_size"] = _slider("batch_size", 1)
                with gr.Row():
                    c["finetune_learning_rate"] = _number("finetune_learning_rate")
                    c["learning_rate"] = _number("learning_rate", learning_rate_for(DEFAULT_STUDENT, DEFAULT_TASK))
                    c["max_length"] = _slider("max_length", 1)
                with gr.Row():
                    c["temperature"] = _slider("temperature", 0.1)
                    c["alpha"] = _slider("alpha", 0.05)
                    s = spec(JobSettings, "stages")
                    c["stages"] = gr.CheckboxGroup(list(s["choices"]), value=list(s["default"]), label=LABELS["stages"],
                                                   info=s["help"])
                with gr.Row():
                    s = spec(JobSettings, "precision")
                    c["precision"] = gr.Dropdown(list(s["choices"]), value=s["default"], label=LABELS["precision"],
                                                 info=s["help"], elem_id="distill-precision")
                    s = spec(JobSettings, "attention_dropout")
                    c["attention_dropout"] = gr.Dropdown(ATTENTION_DROPOUT_CHOICES, value=OWN_DROPOUT,
                                                         label=LABELS["attention_dropout"], info=s["help"],
                                                         elem_id="distill-attention-dropout")
                with gr.Row(visible=augmentable(DEFAULT_TASK)) as c["augment_row"]:
                    c["augment"] = _number("augment", precision=0)
                    c["cloze"] = _number("cloze", precision=0, visible=_is_qa(DEFAULT_TASK))
                    # they shape the cloze questions: editable only while there are some (see wire)
                    c["cloze_noise"] = _number("cloze_noise", visible=_is_qa(DEFAULT_TASK), step=0.1,
                                               interactive=False)
                    c["negatives"] = _number("negatives", precision=0, visible=_is_qa(DEFAULT_TASK), interactive=False)
                c["calibrate_null"] = gr.Checkbox(False, label=LABELS["calibrate_null"],  # a row of its own: its
                                                  info=spec(JobSettings, "calibrate_null")["help"],  # help is long
                                                  visible=_is_qa(DEFAULT_TASK), elem_id="distill-calibrate-null")
            c["name"] = gr.Textbox(label=f"{LABELS['name']} (optional)", max_length=60,
                                   placeholder=f"{DEFAULT_TASK}-{DEFAULT_STUDENT.replace(':', '')}")
            c["estimate"] = gr.Markdown(elem_id="distill-estimate")
            with gr.Row():
                c["start"] = gr.Button("Start distillation", variant="primary", elem_id="distill-start")
                c["stop"] = gr.Button("Stop", variant="stop", interactive=False, elem_id="distill-stop")
            c.update(distill_soup.build(DEFAULT_TASK))
        with gr.Column(scale=2):
            c.update(run_status.build())
    return c


def wire(c: dict, session: dict, demo: gr.Blocks) -> dict:
    """Attach the tab's handlers. ``session``: watch, seen, owned, timer. Returns the
    events other tabs follow (``deleted``: a run's models were deleted)."""
    every = {**c, **session}
    form = {c[k] for k in FORM}

    def by_name(values: dict) -> dict:
        return {k: values[c[k]] for k in FORM}

    def show_estimate(values):
        return estimate_markdown(by_name(values))

    # not "task": a new task updates the teacher and data fields first, whose change then asks again
    # (the estimate never sees a data set of the former task)
    cost = [c[k] for k in ("teacher", "student", "finetune_samples", "train_samples", "finetune_epochs",
                           "epochs", "stages", "batch_size", "source", "local_name", "layers", "hidden", "heads",
                           "prune_ffn", "eval_samples", "max_length", "augment", "cloze", "cloze_noise",
                           "negatives", "calibrate_null", "alpha",
                           "precision", "attention_dropout")]
    gr.on([x.change for x in cost], show_estimate, form, c["estimate"], **PRIVATE, show_progress="hidden",
          trigger_mode="always_last")
    demo.load(show_estimate, form, c["estimate"], **PRIVATE)

    def task_changed(task, student):
        t = TASKS[task]
        local = local_datasets(task)
        students = student_choices(task)
        keep = student if student in {v for _, v in students} else DEFAULT_STUDENT
        return {c["teacher"]: gr.Dropdown(choices=teacher_choices(task), value=base_teacher(task)),
                c["student"]: gr.Dropdown(choices=students, value=keep),
                c["task"]: gr.Dropdown(info=t.description),
                c["local_name"]: gr.Dropdown(choices=list(local), value=next(iter(local), None)),
                c["text_column"]: gr.Textbox(placeholder=t.text_column or "text"),
                c["label_column"]: gr.Textbox(placeholder=t.label_column or "", visible=bool(t.label_column)),
                c["name"]: gr.Textbox(placeholder=f"{task}-{DEFAULT_STUDENT.replace(':', '')}"),
                c["hub_id"]: gr.Textbox(placeholder=(t.hub_dataset or ("user/name",))[0]),
                c["hub_config"]: gr.Textbox(placeholder=(t.hub_dataset or (None, None))[1] or ""),
                c["augment_row"]: gr.Row(visible=augmentable(task)),
                c["cloze"]: gr.Number(visible=_is_qa(task)),
                c["cloze_noise"]: gr.Number(visible=_is_qa(task)),
                c["negatives"]: gr.Number(visible=_is_qa(task)),
                c["calibrate_null"]: gr.Checkbox(visible=_is_qa(task)),
                c["columns_row"]: gr.Row(visible=not _is_qa(task)),
                c["upload_hint"]: gr.Markdown(upload_hint(task)),
                c["learning_rate"]: learning_rate_for(keep, task)}
    c["task"].input(task_changed, [c["task"], c["student"]],
                    [c[k] for k in ("teacher", "student", "task", "local_name", "text_column", "label_column", "name",
                                    "hub_id", "hub_config", "augment_row", "cloze", "cloze_noise", "negatives",
                                    "calibrate_null",
                                    "columns_row",
                                    "upload_hint",
                                    "learning_rate")],
                    **PRIVATE,
                    show_progress="hidden").then(
        # after the data list holds the new task's sets: the settings' own change events send the whole form
        task_defaults, c["task"], [c[k] for k in TASK_DEFAULT_FIELDS], **PRIVATE, show_progress="hidden").then(
        show_estimate, form, c["estimate"], **PRIVATE, show_progress="hidden")
    # a noisy share or made negatives without cloze questions would be dropped from the job: not editable then
    c["cloze"].change(lambda n: {c["cloze_noise"]: gr.Number(interactive=bool(n)),
                                 c["negatives"]: gr.Number(interactive=bool(n))},
                      c["cloze"], [c["cloze_noise"], c["negatives"]], **PRIVATE, show_progress="hidden")
    c["student"].change(lambda s, task: {c["custom_row"]: gr.Row(visible=s == "custom"),
                                         c["prune_row"]: gr.Row(visible=prunable(s)),
                                         c["learning_rate"]: learning_rate_for(s, task)},
                        [c["student"], c["task"]], [c["custom_row"], c["prune_row"], c["learning_rate"]], **PRIVATE,
                        show_progress="hidden")
    c["source"].change(lambda s: {c["local_box"]: gr.Group(visible=s == LOCAL), c["hub_box"]: gr.Row(visible=s == HUB),
                                  c["upload_box"]: gr.Group(visible=s == UPLOAD)},
                       c["source"], [c["local_box"], c["hub_box"], c["upload_box"]], **PRIVATE, show_progress="hidden")

    session_out = [session[k] for k in ("watch", "owned", "timer", "seen")]
    c["start"].click(lambda values: keyed(every, start_job(by_name(values), values[session["owned"]])),
                     form | {session["owned"]}, session_out, **PRIVATE, concurrency_limit=1)
    distill_soup.wire(c, session)
    return run_status.wire(c, session)
