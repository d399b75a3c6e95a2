"""The Distill tab: choose a teacher, a student, the data and the settings; see
the cost estimate; start, follow, stop and delete a run.

Every field's range and default comes from ``hub.config.JobSettings``; the job
itself is ``hub.jobs``' business (one at a time for the whole server, in a child
process; closing the browser never stops it). A browser owns the runs it
started through a secret token kept in its local storage (``owned``): only it
may stop or delete them. The handlers here build job parameters from the form
and turn a job's status into what the page shows.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import gradio as gr

from hub import jobs, views
from hub.config import (AUGMENT_KINDS, QA_UPLOAD_SUFFIXES, STUDENT_PRESETS, TASK_JOB_DEFAULTS, UPLOAD_SUFFIXES,
                        JobSettings, base_teacher, default_learning_rate, spec, student_is_random_init,
                        teaches_as_it_is)
from hub.paths import hub_home
from hub.tasks import TASKS

from . import DEFAULT_TASK, LABELS, MESSAGE_LABELS, PRIVATE, esc, implemented_tasks, keyed, log, refuse, run_status

MAX_UPLOAD_MB = 5
UPLOADABLE = list(dict.fromkeys(UPLOAD_SUFFIXES + QA_UPLOAD_SUFFIXES))  # the server checks the task's own
ALIAS: str = spec(JobSettings, "teacher")["default"]  # minilm-l6: fine-tuned first
DEFAULT_STUDENT: str = spec(JobSettings, "student")["default"]
STUDENTS = list(dict.fromkeys([DEFAULT_STUDENT, "teacher-layers:2", "teacher-layers:4", *STUDENT_PRESETS, "custom"]))
CUSTOM_SHAPE = dict(zip(("layers", "hidden", "heads", "ffn"), next(iter(STUDENT_PRESETS.values()))))
LOCAL, HUB, UPLOAD = "Local data set", "Hub data set", "Upload a file"
ROLE_WORDS = {"train": "training", "eval": "evaluation"}
# Quick start: the schema's defaults (2,000 fine-tuning and 4,000 distillation examples,
# both stages, one epoch each) at 64 tokens, the length of SST-2 sentences
QUICK_START = {"max_length": 64, "name": "quickstart"}

FORM = ("task", "teacher", "student", "layers", "hidden", "heads", "ffn", "prune_ffn", "source", "local_name", "hub_id",
        "hub_config", "upload_train", "upload_eval", "text_column", "label_column", "finetune_samples",
        "train_samples", "eval_samples", "finetune_epochs", "epochs", "finetune_learning_rate", "learning_rate",
        "batch_size", "max_length", "temperature", "alpha", "stages", "augment", "cloze", "name")


def page_error(message: str, files: dict[str, str] | None = None) -> gr.Error:
    """A pipeline error as the page words it (its fields, not CLI flags or server files)."""
    return refuse(views.page_message(message, MESSAGE_LABELS, files))


# ---------------------------------------------------------------- choices


def local_datasets(task: str) -> dict[str, dict]:
    """Data sets this server has for ``task``: name -> job data source.

    The task's own layout (``sst2/train.tsv`` ...) in the data folder
    (``HUB_DATA_DIR``, else ``../shared/data``) comes first, then the sample the
    package embeds (so a fresh machine still has one); for classification, any
    sub-folder with ``train.*`` and ``validation|dev|eval|test.*`` tables too.
    """
    from hub.samples import describe_sample, missing_files, samples_dir

    t = TASKS[task]
    root = views.data_dir()
    found: dict[str, dict] = {}
    if t.local_files and root is not None and root.is_dir() and not missing_files(root, t.local_files):
        found[t.name] = {"data_dir": str(root)}
    if t.local_files and not missing_files(samples_dir(), t.local_files):
        size = describe_sample(t.local_files).split("(", 1)[1].split(";")[0]  # "4,000 train + 872 eval examples"
        found[f"{t.name} (embedded sample: {size})"] = {"data_dir": str(samples_dir())}
    if t.kind != "classification" or root is None or not root.is_dir():
        return found  # other kinds read their own layouts only
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        tables = {f.stem: f for f in sub.iterdir() if f.suffix.lower() in UPLOAD_SUFFIXES}
        ev = next((tables[s] for s in ("validation", "dev", "eval", "test") if s in tables), None)
        if "train" in tables and ev is not None and sub.name not in found:
            found[sub.name] = {"train_file": str(tables["train"]), "eval_file": str(ev)}
    return found


def teacher_choices(task: str) -> list[tuple[str, str]]:
    """The base model (fine-tuned first, unless it teaches as it is) and this server's finished teachers for ``task``."""
    models = jobs.allowed_models(task)
    base = base_teacher(task)
    how = "base model, teaches as it is" if teaches_as_it_is(task, base) else "base model, will be fine-tuned"
    return [(f"{base} ({how})", base)] + [
        (f"{k} (fine-tuned)", k) for k, v in models.items() if v["role"] == "teacher" and v["status"] == "finished"]


def student_choices(task: str) -> list[tuple[str, str]]:
    """The student specs, then this server's finished general-distillation students
    for a task that can start from one (``hub.jobs.general_students``): the job
    passes the student's folder, which gets a fresh task head."""
    return [(s, s) for s in STUDENTS] + [(v["label"], k) for k, v in jobs.general_students(task).items()]


# ---------------------------------------------------------------- starting a run


def _teacher_trained(teacher: str, task: str) -> bool | None:
    """False for the base model, True for a listed teacher, None for a Hub id (it may lack a head)."""
    if teaches_as_it_is(task, teacher):
        return True
    if teacher == ALIAS:
        return False
    return True if teacher in jobs.allowed_models(task) else None


def data_source(form: dict) -> dict:
    """The job's data source from the form (uploads are copied into the hub's home)."""
    task, source = form["task"], form["source"]
    if source == LOCAL:
        found = local_datasets(task)
        if form.get("local_name") not in found:
            raise refuse("Choose one of the local data sets (or another data source).")
        return found[form["local_name"]]
    if source == HUB:
        hub_id = form.get("hub_id")
        if not isinstance(hub_id, str) or not hub_id.strip():
            raise refuse("Type a Hub data set id, e.g. glue (config sst2) or user/name.")
        return {"dataset": hub_id.strip(), "dataset_config": (form.get("hub_config") or "").strip() or None}
    if source == UPLOAD:
        up_train, up_eval = form.get("upload_train"), form.get("upload_eval")
        qa = _is_qa(task)
        if not up_train:
            raise refuse(f"Upload a training file ({upload_formats(task)}).")
        suffixes = QA_UPLOAD_SUFFIXES if qa else UPLOAD_SUFFIXES
        for f in (up_train, up_eval):
            if f and Path(f).suffix.lower() not in suffixes:
                raise refuse(f"Only {', '.join(suffixes)} files are accepted for this task.")
        from hub.data import DataError

        dest = hub_home() / "uploads" / secrets.token_hex(8)
        stage = jobs.stage_squad_upload if qa else jobs.stage_upload
        try:
            return stage(up_train, up_eval or None, dest)
        except DataError as exc:
            raise page_error(str(exc)) from None
    raise refuse("Choose a data source.")


def learning_rate_for(student: str | None, task: str | None) -> float:
    """The distillation learning rate the form proposes: the task kind's, else by the student's initialisation."""
    return default_learning_rate(student or DEFAULT_STUDENT, TASKS[task].kind if task in TASKS else None)


def _is_qa(task: str | None) -> bool:
    return task in TASKS and TASKS[task].kind == "qa"


def upload_formats(task: str | None) -> str:
    """The file formats the upload fields take for ``task``."""
    if _is_qa(task):
        return "SQuAD JSON v1.1 or v2.0, or JSONL/Parquet rows with id, title, context, question, answers"
    return "CSV, TSV, JSONL or Parquet"


def upload_hint(task: str | None) -> str:
    """The line under the upload fields: formats and limits (SQuAD data for extractive QA, tables otherwise)."""
    if _is_qa(task):
        return (f"{upload_formats(task)}; at most {MAX_UPLOAD_MB} MB and {jobs.MAX_UPLOAD_ROWS:,} questions. "
                "Without an evaluation file, whole paragraphs are held out.")
    return f"{upload_formats(task)}, at most {MAX_UPLOAD_MB} MB and {jobs.MAX_UPLOAD_ROWS:,} rows."


def prunable(student: str | None) -> bool:
    """Whether a student starts from trained weights (teacher-layers:K, a general
    student), so that its feed-forward layers can be pruned; presets and custom
    shapes start from random weights."""
    return bool(student) and not student_is_random_init(student)


def _pruning(form: dict) -> dict:
    """``{"prune_ffn": N}`` when the form's student can be pruned and N is given (the
    field is hidden, and a value left in it ignored, for the other students)."""
    return {"prune_ffn": form["prune_ffn"]} if prunable(form.get("student")) and form.get("prune_ffn") else {}


def augmentable(task: str | None) -> bool:
    """Whether a task's examples can be augmented (``hub.augment``: text classification, extractive QA)."""
    return task in TASKS and TASKS[task].kind in AUGMENT_KINDS


def _augmenting(form: dict) -> dict:
    """``{"augment": N}`` when the form's task can be augmented and N > 0 (the field is
    hidden, and a value left in it ignored, for the other tasks)."""
    return {"augment": int(form["augment"])} if augmentable(form.get("task")) and form.get("augment") else {}


def _cloze(form: dict) -> dict:
    """``{"cloze": N}`` for an extractive-QA form with N > 0 (the field is hidden, and
    a value left in it ignored, for the other tasks)."""
    return {"cloze": int(form["cloze"])} if _is_qa(form.get("task")) and form.get("cloze") else {}


def job_params(form: dict, data: dict | None) -> dict:
    """Job parameters (``JobSettings`` fields) from the form."""
    keys = ("task", "teacher", "student", "text_column", "label_column", "finetune_samples", "train_samples",
            "eval_samples", "finetune_epochs", "epochs", "finetune_learning_rate", "learning_rate", "batch_size",
            "max_length", "temperature", "alpha")
    params = {k: form.get(k) for k in keys}
    if _is_qa(form.get("task")):  # SQuAD's fields are fixed: the (hidden) column fields do not apply
        params["text_column"] = params["label_column"] = None
    if form.get("student") == "custom":
        params.update({k: form.get(k) for k in CUSTOM_SHAPE})
    else:
        params.update(_pruning(form))
    params["stages"] = form.get("stages") or ()
    params.update(_augmenting(form))
    params.update(_cloze(form))
    params["data"] = data
    pruned = f"-ffn{int(params['prune_ffn'])}" if params.get("prune_ffn") else ""
    params["name"] = form.get("name") or f"{form.get('task')}-{str(form.get('student') or '').replace(':', '')}{pruned}"
    return params


def _file_names(data: dict) -> dict[str, str]:
    """Server file names of a data source -> what the page calls them."""
    names = {}
    for key, what in (("train_file", "the training file"), ("eval_file", "the evaluation file")):
        if data.get(key):
            names[Path(data[key]).name] = what
    return names


def start_job(form: dict, owned: dict | None) -> dict:
    """Check the form, read a few rows of the data (bad columns fail before queueing),
    queue the job for this browser. Returns session updates by name."""
    from hub.data import DataError

    task = form.get("task")
    if task not in implemented_tasks():
        raise refuse(f"Unknown task; choose one of {', '.join(implemented_tasks())}.")
    data = data_source(form)
    try:
        params = jobs.validate_params(job_params(form, data))
        if _teacher_trained(form.get("teacher"), task) is None:  # a Hub id: offline, say so before queueing
            from hub.models import resolve_model_ref

            resolve_model_ref(params["teacher"])
        if TASKS[task].kind == "classification" and "dataset" not in params["data"]:
            from hub.data import load_classification

            load_classification(TASKS[task], **jobs.data_kwargs(params), max_train_samples=50, max_eval_samples=50)
    except (ValueError, DataError) as exc:
        staged = Path(data.get("train_file") or "").parent
        if staged.parent == hub_home() / "uploads":
            shutil.rmtree(staged, ignore_errors=True)  # the upload of a refused job is not kept
        files = _file_names(data)
        if TASKS[task].local_files:
            files.update({Path(f).name: f"the {ROLE_WORDS.get(role, role)} file of the data set"
                          for role, f in TASKS[task].local_files.items()})
        raise page_error(_teacher_message(str(exc)), files) from None
    return submit(params, owned)


def _teacher_message(message: str) -> str:
    """The model loader's offline message, for the page (no CLI commands)."""
    if "cannot be reached" in message:
        return ("That Hub model is not in this server's cache and the Hugging Face Hub cannot be reached "
                "(offline?): pick a listed teacher.")
    return message


def submit(params: dict, owned: dict | None) -> dict:
    """Queue the job for this browser (its secret token, made on first use, may stop it)."""
    owned = dict(owned or {})
    owned["token"] = owned.get("token") or secrets.token_urlsafe(16)
    queue = jobs.default_queue()
    try:
        job_id = queue.submit("distill", params, owner=owned["token"])
    except jobs.QueueFull as exc:
        raise refuse(str(exc)) from None
    pos = queue.position(job_id)
    if pos <= 1 and (queue.current() is None or queue.current()["id"] == job_id):
        gr.Info("Training started. You can close this page: the run goes on, and reopening shows it.")
    else:
        gr.Info(f"Queued: position {pos}. It starts when the runs ahead finish.")
    owned["job"] = job_id
    log.info("job %s queued", job_id)
    return {"watch": job_id, "owned": owned, "timer": gr.Timer(active=True), "seen": None}


def owned_status(owned: dict | None) -> dict | None:
    """The public status of this browser's last run, or None."""
    job_id = (owned or {}).get("job")
    try:
        return views.public_status(jobs.default_queue().status(job_id)) if job_id else None
    except KeyError:
        return None


def quick_start_params() -> dict:
    """The Quick start job: the task's local data (the embedded sample on a fresh machine)
    and the schema's defaults with ``QUICK_START``. The estimate shown uses the same dict."""
    data = next(iter(local_datasets(DEFAULT_TASK).values()), None)  # the data folder's, else the embedded sample
    return {"task": DEFAULT_TASK, "teacher": ALIAS, **QUICK_START, "data": data}


def quick_start_summary() -> str:
    """What the Quick start does, in words, from the same settings it runs with."""
    d = {k: spec(JobSettings, k)["default"] for k in ("finetune_samples", "train_samples", "student")}
    return (f"fine-tune `{ALIAS}` on {d['finetune_samples']:,} {DEFAULT_TASK} examples and distill a "
            f"`{d['student']}` student from it on {d['train_samples']:,}")


def quick_start(owned: dict | None) -> dict:
    """Queue the Quick start (the queue refuses a second active run of one browser)."""
    return submit(quick_start_params(), owned)


def quick_start_estimate() -> str:
    """The Quick start's expected time on this server (``hub.jobs.estimate`` of its own params)."""
    try:
        e = jobs.estimate(quick_start_params(), teacher_trained=False)
    except ValueError as exc:
        log.info("no quick start estimate: %s", exc)
        return ""
    return f"about {views.format_seconds(e['seconds'])} here ({basis_text(e)})"


# ---------------------------------------------------------------- the estimate


ESTIMATE_PHASES = {"evaluate-teacher": "evaluate the teacher", "augment": "augment the training data",
                   "cloze": "make cloze questions",
                   "teacher-logits": "cache the teacher's logits",
                   "evaluate": "evaluate the student", "benchmark": "benchmark both"}


def basis_text(e: dict) -> str:
    """What an estimate rests on: "measured on N earlier runs on this machine" or "default guess"."""
    used = list(e["phases"].values())
    measured = [ph for ph in used if ph.get("basis") == "measured"]
    if not measured:
        return "default guess: no earlier run like this one on this machine"
    runs = {ph["source"].split(",")[0].removeprefix("measured: ") for ph in measured}
    guess = "" if len(measured) == len(used) else ", the rest a default guess"
    return f"measured on {len(runs)} earlier run{'s' if len(runs) > 1 else ''} on this machine{guess}"


def estimate_markdown(form: dict) -> str:
    """The cost estimate of the form's job, with its basis, before it starts."""
    task, teacher = form.get("task"), form.get("teacher")
    params = {k: form.get(k) for k in ("task", "student", "finetune_samples", "train_samples", "eval_samples",
                                       "finetune_epochs", "epochs", "batch_size", "max_length")}
    params.update(teacher=teacher, stages=form.get("stages") or (), **{k: v for k, v in CUSTOM_SHAPE.items()})
    if form.get("student") == "custom":
        params.update({k: form.get(k) or v for k, v in CUSTOM_SHAPE.items()})
    else:
        params.update(_pruning(form))
    params.update(_augmenting(form))
    params.update(_cloze(form))
    source = form.get("source")
    if source == LOCAL and form.get("local_name") in local_datasets(task or DEFAULT_TASK):
        params["data"] = local_datasets(task)[form["local_name"]]
    elif source == HUB and form.get("hub_id"):
        params["data"] = {"dataset": form["hub_id"], "dataset_config": form.get("hub_config") or None}
    elif source == UPLOAD and form.get("upload_train"):  # gradio's own upload paths: rows are counted
        params["data"] = {"train_file": form["upload_train"],
                          "eval_file": form.get("upload_eval") or form["upload_train"]}
    try:
        e = jobs.estimate(params, teacher_trained=_teacher_trained(teacher, task) if teacher else None)
    except ValueError as exc:
        return f"**Cannot estimate yet:** {esc(views.page_message(str(exc), MESSAGE_LABELS))}"
    parts = []
    for name, ph in e["phases"].items():
        took = views.format_seconds(ph["seconds"])
        if name in ("finetune", "distill"):
            r, tokens = e["rates"][name], e.get("block_tokens")
            if tokens:  # packed text: count and rate in tokens
                n = (e["finetune_examples"] if name == "finetune" else e["distill_examples"]) * tokens
                what = f"{'fine-tune' if name == 'finetune' else 'distill'} {n:,.0f} tokens ({e['unit']})"
                parts.append(f"{what} at {r['examples_per_s'] * tokens:.0f} tokens/s ≈ {took}")
                continue
            what = (f"fine-tune {e['finetune_examples']:,.0f} examples" if name == "finetune" else
                    f"distill {e['distill_examples']:,.0f} example-passes")
            parts.append(f"{what} at {r['examples_per_s']:.0f}/s ≈ {took}")
        else:
            parts.append(f"{ESTIMATE_PHASES.get(name, name)} ≈ {took}")
    parts.append(f"start-up and loading ≈ {views.format_seconds(e.get('overhead_s'))}")
    note = "" if _teacher_trained(teacher, task) is not None else " (plus fine-tuning if this Hub model has no head)"
    return (f"**Estimated time: ~{views.format_seconds(e['seconds'])}**{note} · basis: "
            f"{esc(basis_text(e))}<br>" + esc("; ".join(parts)) + ".")


# ---------------------------------------------------------------- API


def api_estimate(task: str, teacher: str, student: str, finetune_samples: int, train_samples: int,
                 finetune_epochs: float, epochs: float, stages: list[str]) -> dict:
    """Seconds a distillation job would take on this server, before starting it, and
    what the number rests on (``basis``: "measured" or "default guess").

    Args:
        task: a task name, e.g. "sst2".
        teacher: "minilm-l6" (fine-tuned first), a teacher name from /models, or a Hub id.
        student: tinybert-4l-312, tinybert-6l-768, teacher-layers:K or custom.
        finetune_samples: training examples for fine-tuning a teacher without a head (16 to 100,000).
        train_samples: training examples for distillation (16 to 100,000).
        finetune_epochs: epochs of fine-tuning (0.1 to 10).
        epochs: epochs per distillation stage (0.1 to 10).
        stages: a subset of ["intermediate", "prediction"].
    """
    if task not in implemented_tasks():
        raise refuse(f"Unknown task; choose one of {', '.join(implemented_tasks())}.")
    params = {"task": task, "teacher": teacher, "student": student, "finetune_samples": finetune_samples,
              "train_samples": train_samples, "finetune_epochs": finetune_epochs, "epochs": epochs,
              "stages": stages, **CUSTOM_SHAPE}
    try:
        return jobs.estimate(params, teacher_trained=_teacher_trained(teacher, task) if isinstance(teacher, str)
                             else None)
    except ValueError as exc:
        raise refuse(views.redact_text(str(exc))) from None


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


def _number(name: str, value=None, precision: int | None = None, visible: bool = True) -> gr.Number:
    s = spec(JobSettings, name)
    return gr.Number(s["default"] if value is None else value, label=LABELS[name], minimum=s["lo"], maximum=s["hi"],
                     precision=precision, info=s["help"] or None, visible=visible)


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
                with gr.Row(visible=augmentable(DEFAULT_TASK)) as c["augment_row"]:
                    c["augment"] = _number("augment", precision=0)
                    c["cloze"] = _number("cloze", precision=0, visible=_is_qa(DEFAULT_TASK))
            c["name"] = gr.Textbox(label=f"{LABELS['name']} (optional)", max_length=60,
                                   placeholder=f"{DEFAULT_TASK}-{DEFAULT_STUDENT.replace(':', '')}")
            c["estimate"] = gr.Markdown(elem_id="distill-estimate")
            with gr.Row():
                c["start"] = gr.Button("Start distillation", variant="primary", elem_id="distill-start")
                c["stop"] = gr.Button("Stop", variant="stop", interactive=False, elem_id="distill-stop")
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
                           "prune_ffn", "eval_samples", "max_length", "augment", "cloze", "alpha")]
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
                c["columns_row"]: gr.Row(visible=not _is_qa(task)),
                c["upload_hint"]: gr.Markdown(upload_hint(task)),
                c["learning_rate"]: learning_rate_for(keep, task)}
    c["task"].input(task_changed, [c["task"], c["student"]],
                    [c[k] for k in ("teacher", "student", "task", "local_name", "text_column", "label_column", "name",
                                    "hub_id", "hub_config", "augment_row", "cloze", "columns_row", "upload_hint",
                                    "learning_rate")],
                    **PRIVATE,
                    show_progress="hidden").then(
        # after the data list holds the new task's sets: the settings' own change events send the whole form
        task_defaults, c["task"], [c[k] for k in TASK_DEFAULT_FIELDS], **PRIVATE, show_progress="hidden").then(
        show_estimate, form, c["estimate"], **PRIVATE, show_progress="hidden")
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
    return run_status.wire(c, session)
