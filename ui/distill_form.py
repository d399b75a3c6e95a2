"""What the Distill form offers and the job it starts: the teacher, student and
data-set choices, the form's values turned into job parameters (uploads staged,
bad data refused before queueing), the submission for this browser and its last
run's status, and the Quick start.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import gradio as gr

from hub import jobs, views
from hub.config import (AUGMENT_KINDS, QA_UPLOAD_SUFFIXES, STUDENT_PRESETS, UPLOAD_SUFFIXES, JobSettings,
                        base_teacher, default_learning_rate, spec, student_is_random_init, teaches_as_it_is)
from hub.tasks import TASKS

from . import DEFAULT_TASK, MESSAGE_LABELS, implemented_tasks, log, refuse

MAX_UPLOAD_MB = 5
ALIAS: str = spec(JobSettings, "teacher")["default"]  # minilm-l6: fine-tuned first
DEFAULT_STUDENT: str = spec(JobSettings, "student")["default"]
STUDENTS = list(dict.fromkeys([DEFAULT_STUDENT, "teacher-layers:2", "teacher-layers:4", *STUDENT_PRESETS, "custom"]))
CUSTOM_SHAPE = dict(zip(("layers", "hidden", "heads", "ffn"), next(iter(STUDENT_PRESETS.values()))))
LOCAL, HUB, UPLOAD = "Local data set", "Hub data set", "Upload a file"
ROLE_WORDS = {"train": "training", "eval": "evaluation"}
# Quick start: the schema's defaults (2,000 fine-tuning and 4,000 distillation examples,
# both stages, one epoch each) at 64 tokens, the length of SST-2 sentences
QUICK_START = {"max_length": 64, "name": "quickstart"}


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

        dest = jobs.new_upload_dir()
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


def _arithmetic(form: dict) -> dict:
    """The form's training arithmetic as job parameters: ``precision``, and
    ``attention_dropout`` (the field's "the model's own" is None)."""
    drop = form.get("attention_dropout")
    return {"precision": form.get("precision") or "fp32", "attention_dropout": None if drop in (None, OWN_DROPOUT) else drop}


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
    """``{"cloze": N}`` for an extractive-QA form with N > 0, with ``cloze_noise`` when
    its share is above 0 and ``negatives`` when above 0 (the fields are hidden, and
    values left in them ignored, for the other tasks)."""
    if not (_is_qa(form.get("task")) and form.get("cloze")):
        return {}
    noise = {"cloze_noise": float(form["cloze_noise"])} if form.get("cloze_noise") else {}
    negatives = {"negatives": int(form["negatives"])} if form.get("negatives") else {}
    return {"cloze": int(form["cloze"]), **noise, **negatives}


def _calibrating(form: dict) -> dict:
    """``{"calibrate_null": True}`` for an extractive-QA form with the box ticked (hidden,
    and ignored, for the other tasks)."""
    return {"calibrate_null": True} if _is_qa(form.get("task")) and form.get("calibrate_null") else {}


OWN_DROPOUT = "own"
# the attention-dropout field: the model's own value (None in the job) or 0 (the fused attention kernel runs)
ATTENTION_DROPOUT_CHOICES = [("the model's own (0.1 for BERT)", OWN_DROPOUT), ("0 (faster)", "0")]


def job_params(form: dict, data: dict | None) -> dict:
    """Job parameters (``JobSettings`` fields) from the form."""
    keys = ("task", "teacher", "student", "text_column", "label_column", "finetune_samples", "train_samples",
            "eval_samples", "finetune_epochs", "epochs", "finetune_learning_rate", "learning_rate", "batch_size",
            "max_length", "temperature", "alpha")
    params = {k: form.get(k) for k in keys}
    params.update(_arithmetic(form))
    if _is_qa(form.get("task")):  # SQuAD's fields are fixed: the (hidden) column fields do not apply
        params["text_column"] = params["label_column"] = None
    if form.get("student") == "custom":
        params.update({k: form.get(k) for k in CUSTOM_SHAPE})
    else:
        params.update(_pruning(form))
    params["stages"] = form.get("stages") or ()
    params.update(_augmenting(form))
    params.update(_cloze(form))
    params.update(_calibrating(form))
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
        if staged.parent == jobs.uploads_root():
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


def submit(params: dict, owned: dict | None, kind: str = "distill") -> dict:
    """Queue the job (``kind``: distill, or soup) for this browser (its secret token, made on
    first use, may stop it)."""
    owned = dict(owned or {})
    owned["token"] = owned.get("token") or secrets.token_urlsafe(16)
    queue = jobs.default_queue()
    try:
        job_id = queue.submit(kind, params, owner=owned["token"])
    except jobs.QueueFull as exc:
        raise refuse(str(exc)) from None
    pos = queue.position(job_id)
    if pos <= 1 and (queue.current() is None or queue.current()["id"] == job_id):
        gr.Info(f"{'Averaging' if kind == 'soup' else 'Training'} started. You can close this page: the run goes "
                "on, and reopening shows it.")
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
