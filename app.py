"""Distill Hub web app: distill a teacher into a student, compare them side by
side, and browse the quality x speed leaderboard.

``build_demo()`` returns the Blocks; ``launch_kwargs()`` the safe launch
settings used by ``python app.py`` and the tests. Handlers are thin calls into
``hub``: training runs in ``hub.jobs``' one worker thread (closing the browser
never stops a run), predictions come from ``hub.inference``, the table from
``hub.leaderboard``. Nothing heavy happens at import or build time; models load
on the first comparison. Every value that arrives from a browser or an API
client is checked here again: model names against the server's list, text and
batch sizes against the limits below, numbers against ``hub.jobs.PARAMS``.

Public API endpoints (``gradio_client``): ``/compare``, ``/compare_batch``,
``/models``, ``/leaderboard``, ``/run_card``, ``/estimate``, ``/job_status``.
"""

from __future__ import annotations

import html
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote

import gradio as gr
import pandas as pd

from hub import jobs
from hub.leaderboard import COLUMNS_BY_NAME, DISPLAY_COLUMNS, JSON_COLUMNS, LeaderboardStore, decode_json_columns
from hub.paths import hub_home
from hub.tasks import TASKS

REPO = Path(__file__).resolve().parent
MAX_TEXT_CHARS = 2_000
MAX_BATCH_LINES = 200
MAX_UPLOAD = "5mb"
MAX_LOADED_MODELS = 4
POLL_S = 1.0
ALIAS = "minilm-l6"
ALL = "All"
CLASSIFICATION_TASKS = [n for n, t in TASKS.items() if t.implemented and t.kind == "classification"]
STUDENTS = ["teacher-layers:3", "teacher-layers:2", "teacher-layers:4", "tinybert-4l-312", "tinybert-6l-768", "custom"]
DATA_SOURCES = ["Local data set", "Hub data set", "Upload a file"]
UPLOAD_TYPES = list(jobs.UPLOAD_SUFFIXES)
TABS = ("distill", "compare", "leaderboard")
# leaderboard columns shown by default (all DISPLAY_COLUMNS can be picked)
DEFAULT_TABLE_COLUMNS = ("name", "task", "role", "status", "accuracy", "f1", "retention", "agreement",
                         "latency_p50_ms", "latency_p90_ms", "speedup_p50", "memory_mb", "params", "size_mb")
QUICK_START = {
    "task": "sst2", "teacher": ALIAS, "student": "teacher-layers:3", "finetune_samples": 2000,
    "train_samples": 4000, "eval_samples": 872, "finetune_epochs": 1, "epochs": 1, "batch_size": 32,
    "max_length": 64, "finetune_learning_rate": 1e-4, "learning_rate": 1e-4, "name": "quickstart",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

CSS = """
.hub-bar {height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; margin: 6px 0;}
.hub-bar > div {height: 100%; background: var(--color-accent); transition: width .5s;}
.hub-status {font-size: 0.95em; line-height: 1.5;}
.hub-status .muted {color: var(--body-text-color-subdued);}
.hub-notice {border-left: 4px solid var(--color-accent); padding-left: 8px;}
"""


def launch_kwargs() -> dict:
    """Safe settings for ``launch()``: local address, upload cap, the data folder
    blocked from the file route, no extra allowed paths, no share link, no monitoring."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "max_file_size": MAX_UPLOAD,
        "blocked_paths": [str(hub_home())],
        "allowed_paths": [],
        "enable_monitoring": False,
        "show_error": True,
        "share": False,
        "run_history": False,
        "mcp_server": False,
        "footer_links": ["api", "gradio"],
        "css": CSS,
    }


def data_dir() -> Path | None:
    """``HUB_DATA_DIR``, else ``../shared/data`` next to the repository when it exists."""
    env = os.environ.get("HUB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    default = REPO.parent / "shared" / "data"
    return default.resolve() if default.is_dir() else None


def local_datasets(task: str) -> dict[str, dict]:
    """Data sets found under the data folder: name -> job data source.

    A task's own layout (``sst2/train.tsv`` ...) comes first; any sub-folder with
    ``train.*`` and ``validation|dev|eval|test.*`` tables is offered as files.
    """
    root = data_dir()
    if root is None or not root.is_dir():
        return {}
    found: dict[str, dict] = {}
    t = TASKS[task]
    if t.local_files and all((root / f).is_file() for f in t.local_files.values()):
        found[t.name] = {"data_dir": str(root)}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        tables = {f.stem: f for f in sub.iterdir() if f.suffix.lower() in jobs.UPLOAD_SUFFIXES}
        ev = next((tables[s] for s in ("validation", "dev", "eval", "test") if s in tables), None)
        if "train" in tables and ev is not None and sub.name not in found:
            found[sub.name] = {"train_file": str(tables["train"]), "eval_file": str(ev)}
    return found


# ---------------------------------------------------------------- models the UI may use


def allowed_models(task: str) -> dict[str, dict]:
    """Trained models a browser may pick for ``task``: key -> {path, role, teacher}.

    Models saved by jobs (``models_dir()``) under their folder name, then
    leaderboard models with a local folder elsewhere under their display name.
    Keys are what dropdowns, links and API clients send; paths never leave the server.
    """
    out: dict[str, dict] = {}
    for e in jobs.trained_models(task):
        out[e.key] = {"path": e.path, "role": e.role, "teacher": e.teacher, "created_at": e.created_at,
                      "status": e.status}
    known = {v["path"] for v in out.values()}
    try:
        rows = LeaderboardStore().rows(task=task)
    except Exception:  # noqa: BLE001 - a broken store must not break the Compare tab
        rows = []
    for r in rows:
        path = Path(r["model"] or "")
        if r["role"] not in ("teacher", "student") or not path.is_absolute() or not (path / "config.json").is_file():
            continue
        path = str(path.resolve())
        if path in known:
            continue
        key, n = r["name"] or Path(path).name, 2
        while key in out:
            key, n = f"{r['name']}-{n}", n + 1
        out[key] = {"path": path, "role": r["role"], "teacher": r["teacher"], "created_at": r["created_at"] or "",
                    "status": r["status"]}
        known.add(path)
    return out


def default_pair(models: dict[str, dict]) -> tuple[str | None, str | None]:
    """The newest finished student whose teacher is also listed: (teacher key, student key)."""
    by_path = {v["path"]: k for k, v in models.items()}
    students = sorted((k for k, v in models.items() if v["role"] == "student"),
                      key=lambda k: (models[k]["status"] == "finished", models[k]["created_at"]), reverse=True)
    for s in students:
        t = models[s]["teacher"]
        if t and str(Path(t).resolve()) in by_path:
            return by_path[str(Path(t).resolve())], s
    keys = list(models)
    return (keys[0] if keys else None), (keys[1] if len(keys) > 1 else None)


def model_choices(models: dict[str, dict]) -> list[tuple[str, str]]:
    """Dropdown (label, key) pairs: the role, and the status when the run did not finish."""
    def label(k, v):
        extra = "" if v["status"] in ("finished", None, "") else f", {v['status']}"
        return f"{k} ({v['role']}{extra})"
    return [(label(k, v), k) for k, v in models.items()]


def check_model(key: str, task: str, which: str) -> str:
    """The server path of a model key, or a clean error (never the raw input)."""
    models = allowed_models(task)
    if not isinstance(key, str) or key not in models:
        raise gr.Error(f"Model {which} is not one of this server's trained {task} models; pick one from the list.")
    return models[key]["path"]


def check_task(task: str) -> str:
    if task not in CLASSIFICATION_TASKS:
        raise gr.Error(f"Unknown task; choose one of {', '.join(CLASSIFICATION_TASKS)}.")
    return task


def check_text(text, what: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise gr.Error(f"Type a {what} first.")
    if len(text) > MAX_TEXT_CHARS:
        raise gr.Error(f"The {what} is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}).")
    return text.strip()


_CLASSIFIERS: OrderedDict = OrderedDict()
_CLASSIFIERS_LOCK = threading.Lock()


def classifier(path: str, task: str):
    """A loaded ``hub.inference.Classifier``, kept in a small LRU cache."""
    from hub.inference import Classifier

    with _CLASSIFIERS_LOCK:
        key = (path, task)
        if key not in _CLASSIFIERS:
            clf = Classifier(path, TASKS[task])
            for _ in range(2):  # warm-up: the first calls are slow, latency shown must not include them
                clf.predict("warm-up")
            _CLASSIFIERS[key] = clf
            while len(_CLASSIFIERS) > MAX_LOADED_MODELS:
                _CLASSIFIERS.popitem(last=False)
        _CLASSIFIERS.move_to_end(key)
        return _CLASSIFIERS[key]


# ---------------------------------------------------------------- API functions (also used by the UI)


def api_models(task: str) -> dict:
    """Model names this server accepts for a task, and the default (teacher, student) pair.

    Args:
        task: "sst2" or "classification".
    """
    check_task(task)
    models = allowed_models(task)
    a, b = default_pair(models)
    return {"task": task, "models": [{"name": k, "role": v["role"]} for k, v in models.items()],
            "default": {"model_a": a, "model_b": b}}


def api_compare(task: str, model_a: str, model_b: str, text: str) -> dict:
    """Both models on one text: label, probabilities and latency of each, whether they
    agree, and KL(a || b) in nats.

    Args:
        task: "sst2" or "classification".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        text: the input, at most 2,000 characters.
    """
    from hub.inference import compare

    check_task(task)
    text = check_text(text)
    pa, pb = check_model(model_a, task, "A"), check_model(model_b, task, "B")
    result = _run_models(compare, pa, pb, task, text)
    return {"task": task, "model_a": model_a, "model_b": model_b, **result}


def _run_models(fn, path_a: str, path_b: str, task: str, inputs):
    """``fn(classifier A, classifier B, inputs)``; a broken model folder becomes a clean error."""
    try:
        return fn(classifier(path_a, task), classifier(path_b, task), inputs)
    except Exception as exc:  # noqa: BLE001 - say so and keep serving
        raise gr.Error(f"Could not run the models ({html.escape(type(exc).__name__)}).") from None


def api_compare_batch(task: str, model_a: str, model_b: str, lines: str) -> dict:
    """Many texts, one per line (at most 200): agreement rate, both throughputs
    (texts/s) and the lines where the models disagree.

    Args:
        task: "sst2" or "classification".
        model_a: a model name from /models.
        model_b: a model name from /models.
        lines: one text per line, at most 200 lines of at most 2,000 characters.
    """
    from hub.inference import compare_batch

    check_task(task)
    if not isinstance(lines, str):
        raise gr.Error("Paste one text per line.")
    texts = [t.strip() for t in lines.splitlines() if t.strip()]
    if not texts:
        raise gr.Error("Paste one text per line first.")
    if len(texts) > MAX_BATCH_LINES:
        raise gr.Error(f"Too many lines ({len(texts):,}); the limit is {MAX_BATCH_LINES}.")
    long = [i + 1 for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if long:
        raise gr.Error(f"Line(s) {long[:5]} are longer than {MAX_TEXT_CHARS:,} characters.")
    pa, pb = check_model(model_a, task, "A"), check_model(model_b, task, "B")
    result = _run_models(compare_batch, pa, pb, task, texts)
    return {"task": task, "model_a": model_a, "model_b": model_b, **result}


def api_leaderboard(task: str = ALL, hardware: str = ALL) -> dict:
    """Leaderboard rows (display columns, numbers unformatted) filtered by task and hardware.

    Args:
        task: a task name, or "All".
        hardware: a hardware tag as shown in the rows, or "All".
    """
    store = LeaderboardStore()
    task_f = _filter_value(task, store.tasks(), "task")
    hw_f = _filter_value(hardware, store.hardware_tags(), "hardware")
    rows = store.rows(task=task_f, hardware=hw_f)
    cols = ["row_id", *DISPLAY_COLUMNS]
    return {"columns": cols, "rows": [redact_paths({k: r.get(k) for k in cols}) for r in rows]}


def _filter_value(value, known: list[str], what: str) -> str | None:
    if value in (None, "", ALL):
        return None
    if value not in known and not (what == "task" and value in TASKS):
        raise gr.Error(f"Unknown {what} filter; choose one from the list.")
    return value


def redact_paths(value):
    """Server paths never leave the server: the data folder and ``HUB_HOME`` become
    ``$HUB_DATA_DIR``/``$HUB_HOME``, any other absolute path keeps its last two parts."""
    if isinstance(value, dict):
        return {k: redact_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_paths(v) for v in value]
    if not isinstance(value, str) or not value.startswith("/") or "\n" in value:
        return value
    roots = [(hub_home(), "$HUB_HOME")] + ([(data_dir(), "$HUB_DATA_DIR")] if data_dir() else [])
    for root, name in roots:
        try:
            return f"{name}/{Path(value).relative_to(root).as_posix()}"
        except ValueError:
            continue
    parts = Path(value).parts
    return "…/" + "/".join(parts[-2:]) if len(parts) > 2 else value


def api_run_card(row_id: int) -> dict:
    """One leaderboard row with its run card and benchmark details.

    Args:
        row_id: the row's id (the "row_id" of /leaderboard).
    """
    try:
        row = LeaderboardStore().get(int(row_id))
    except (TypeError, ValueError, OverflowError):
        row = None
    if row is None:
        raise gr.Error("No leaderboard row with that id.")
    return redact_paths(decode_json_columns(row))


def api_estimate(task: str, teacher: str, student: str, finetune_samples: int, train_samples: int,
                 finetune_epochs: float, epochs: float, stages: list[str]) -> dict:
    """Seconds a distillation job would take on this server, before starting it.

    Args:
        task: "sst2" or "classification".
        teacher: "minilm-l6" (fine-tuned first), a teacher name from /models, or a Hub id.
        student: tinybert-4l-312, tinybert-6l-768, teacher-layers:K or custom.
        finetune_samples: training examples for fine-tuning a teacher without a head (16 to 100,000).
        train_samples: training examples for distillation (16 to 100,000).
        finetune_epochs: epochs of fine-tuning (0.1 to 10).
        epochs: epochs per distillation stage (0.1 to 10).
        stages: a subset of ["intermediate", "prediction"].
    """
    check_task(task)
    params = {"task": task, "teacher": teacher, "student": student, "finetune_samples": finetune_samples,
              "train_samples": train_samples, "finetune_epochs": finetune_epochs, "epochs": epochs,
              "stages": stages, "layers": 2, "hidden": 64, "heads": 2}
    try:
        return jobs.estimate(params, teacher_trained=_teacher_trained(teacher, task))
    except ValueError as exc:
        raise gr.Error(html.escape(str(exc))) from None


def api_job_status(job_id: str) -> dict:
    """State, queue position, progress, loss curves, log and result of one training job.

    Args:
        job_id: the id of a job (shown in the Distill tab's run list).
    """
    try:
        return public_status(jobs.default_queue().status(job_id))
    except KeyError:
        raise gr.Error("Unknown job id.") from None


def public_status(status: dict) -> dict:
    """A job's status without server paths (data files, model folders)."""
    out = {k: v for k, v in status.items() if k not in ("outputs", "process")}
    params = dict(out.get("params") or {})
    data = params.pop("data", None) or {}
    params["data"] = "hub" if "dataset" in data else ("local" if "data_dir" in data else "files")
    params["teacher"] = jobs.short_name(params.get("teacher") or "")
    out["params"] = params
    out["log"] = [_no_paths(line) for line in out.get("log") or []]
    out["error"] = _no_paths(out["error"]) if out.get("error") else None
    if out.get("result"):
        out["result"] = {k: ({kk: vv for kk, vv in v.items() if kk != "path"} if isinstance(v, dict) else v)
                         for k, v in out["result"].items()}
    return out


# ---------------------------------------------------------------- Distill tab


def teacher_choices(task: str) -> list[tuple[str, str]]:
    models = allowed_models(task)
    return [(f"{ALIAS} (base model, will be fine-tuned)", ALIAS)] + [
        (f"{k} (fine-tuned)", k) for k, v in models.items() if v["role"] == "teacher"]


def _teacher_trained(teacher: str, task: str) -> bool | None:
    if teacher == ALIAS:
        return False
    if teacher in allowed_models(task):
        return True
    return None  # a Hub model: fine-tuned if it has no head


def resolve_teacher(teacher: str, task: str) -> str:
    """The alias, a listed model's folder, or a Hub id (checked to exist, offline too)."""
    from hub.models import ModelNotFoundError, resolve_model_ref

    if not isinstance(teacher, str) or not teacher.strip():
        raise gr.Error("Choose a teacher.")
    teacher = teacher.strip()
    if teacher == ALIAS:
        return ALIAS
    models = allowed_models(task)
    if teacher in models:
        return models[teacher]["path"]
    if len(teacher) > 100 or ".." in teacher or not _HUB_ID.match(teacher):
        raise gr.Error("The teacher must be one of the listed models or a Hugging Face Hub id like user/model.")
    try:
        return resolve_model_ref(teacher)
    except ModelNotFoundError as exc:
        raise gr.Error(html.escape(str(exc))) from None


def data_source(task, source, local_name, hub_id, hub_config, up_train, up_eval) -> dict:
    if source == "Local data set":
        found = local_datasets(task)
        if local_name not in found:
            raise gr.Error("Choose one of the local data sets (or another data source).")
        return found[local_name]
    if source == "Hub data set":
        if not isinstance(hub_id, str) or not hub_id.strip():
            raise gr.Error("Type a Hub data set id, e.g. glue (config sst2).")
        return {"dataset": hub_id.strip(), "dataset_config": (hub_config or "").strip() or None}
    if source == "Upload a file":
        if not up_train:
            raise gr.Error("Upload a training file (CSV, TSV, JSONL or Parquet).")
        for f in (up_train, up_eval):
            if f and Path(f).suffix.lower() not in UPLOAD_TYPES:
                raise gr.Error(f"Only {', '.join(UPLOAD_TYPES)} files are accepted.")
        from hub.data import DataError

        dest = hub_home() / "uploads" / secrets.token_hex(8)
        try:
            return jobs.stage_upload(up_train, up_eval or None, dest)
        except DataError as exc:
            raise gr.Error(html.escape(str(exc))) from None
    raise gr.Error("Choose a data source.")


def start_job(task, teacher, student, layers, hidden, heads, ffn, source, local_name, hub_id, hub_config,
              up_train, up_eval, text_col, label_col, ft_samples, train_samples, eval_samples, ft_epochs, epochs,
              ft_lr, lr, batch, max_len, temperature, alpha, stages, name, owned):
    from hub.data import DataError, load_classification

    check_task(task)
    params = {
        "task": task, "teacher": resolve_teacher(teacher, task), "student": student,
        "layers": layers, "hidden": hidden, "heads": heads, "ffn": ffn,
        "data": data_source(task, source, local_name, hub_id, hub_config, up_train, up_eval),
        "text_column": text_col, "label_column": label_col, "finetune_samples": ft_samples,
        "train_samples": train_samples, "eval_samples": eval_samples, "finetune_epochs": ft_epochs,
        "epochs": epochs, "finetune_learning_rate": ft_lr, "learning_rate": lr, "batch_size": batch,
        "max_length": max_len, "temperature": temperature, "alpha": alpha, "stages": stages or (),
        "name": name or f"{task}-{str(student or '').replace(':', '')}",
    }
    try:
        params = jobs.validate_params(params)
        if "dataset" not in params["data"]:  # read a few rows now: bad columns fail before queueing
            load_classification(TASKS[task], **jobs.data_kwargs(params), max_train_samples=50, max_eval_samples=50)
    except (ValueError, DataError) as exc:
        staged = Path(params["data"].get("train_file") or "").parent
        if staged.parent == hub_home() / "uploads":
            shutil.rmtree(staged, ignore_errors=True)  # the upload of a refused job is not kept
        raise gr.Error(html.escape(_no_paths(str(exc)))) from None
    return _submit(params, owned)


def _no_paths(message: str) -> str:
    """Error text without server paths (upload folders, data folders)."""
    for p in filter(None, [str(hub_home()), str(data_dir() or ""), tempfile.gettempdir()]):
        message = message.replace(p, "…")
    return message


def _submit(params: dict, owned: dict | None):
    """Queue the job for this browser (its secret token, made on first use, may stop it)."""
    owned = dict(owned or {})
    owned["token"] = owned.get("token") or secrets.token_urlsafe(16)
    queue = jobs.default_queue()
    try:
        job_id = queue.submit("distill", params, owner=owned["token"])
    except jobs.QueueFull as exc:
        raise gr.Error(str(exc)) from None
    pos = queue.position(job_id)
    current = queue.current()
    if pos == 0 or (pos == 1 and (current is None or current["id"] == job_id)):
        gr.Info("Training started. You can close this page: the run goes on, and reopening shows it.")
    else:
        gr.Info(f"Queued: position {pos}. It starts when the runs ahead finish.")
    owned["job"] = job_id
    return job_id, owned, gr.Timer(active=True)


def student_learning_rate(student: str) -> float:
    """The CLI's default learning rate for this kind of student (random init learns faster)."""
    from hub.distill import default_learning_rate
    from hub.models import StudentSpec

    kind = "shape" if student == "custom" or student in jobs.STUDENT_PRESET_NAMES else "teacher-layers"
    return default_learning_rate(StudentSpec(kind))


def quick_start(owned):
    found = local_datasets("sst2")
    data = found.get("sst2") or {"dataset": "glue", "dataset_config": "sst2"}
    return _submit(jobs.validate_params({**QUICK_START, "data": data}), owned)


def stop_job(job_id, owned):
    if not job_id:
        raise gr.Error("No run selected.")
    try:
        ok = jobs.default_queue().cancel(job_id, owner=(owned or {}).get("token") or "")
    except PermissionError as exc:
        raise gr.Error(str(exc)) from None
    except KeyError:
        raise gr.Error("Unknown run.") from None
    gr.Info("Stopping at the next step; the model saved so far is kept." if ok else "This run has already ended.")


def _percent(status: dict | None) -> str:
    return f"{100 * float(((status or {}).get('progress') or {}).get('fraction') or 0):.0f}%"


def _fmt_s(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def estimate_text(task, teacher, student, ft_samples, train_samples, ft_epochs, epochs, stages) -> str:
    try:
        e = api_estimate(task, teacher, student, ft_samples, train_samples, ft_epochs, epochs, stages)
    except gr.Error as exc:
        return f"**Cannot estimate:** {exc.message}"
    parts = []
    if e["finetune_s"]:
        r = e["rates"]["finetune"]
        parts.append(f"fine-tune {e['finetune_examples']:,.0f} examples at {r['examples_per_s']:.0f}/s "
                     f"({html.escape(r['source'])}) ≈ {_fmt_s(e['finetune_s'])}")
    r = e["rates"]["distill"]
    parts.append(f"distill {e['distill_examples']:,.0f} example-passes at {r['examples_per_s']:.0f}/s "
                 f"({html.escape(r['source'])}) ≈ {_fmt_s(e['distill_s'])}")
    parts.append(f"evaluation and benchmark ≈ {_fmt_s(jobs.OVERHEAD_S)}")
    note = "" if _teacher_trained(teacher, task) is not None else " (plus fine-tuning if this Hub model has no head)"
    return f"**Estimated time: ~{_fmt_s(e['seconds'])}**{note} — " + "; ".join(parts) + "."


def progress_html(status: dict | None) -> str:
    """The progress bar, stage, ETA and queue position of a job (all text escaped)."""
    queue = jobs.default_queue()
    running = queue.current()
    waiting = sum(1 for j in queue.jobs() if j["state"] == jobs.QUEUED)
    qline = (f"Queue: {'1 run training' if running else 'idle'}, {waiting} waiting "
             f"(at most {queue.max_size}).")
    if status is None:
        return f"<div class='hub-status'>No run yet. <span class='muted'>{qline}</span></div>"
    e = html.escape
    p = status.get("progress") or {}
    state = status["state"]
    frac = 1.0 if state == jobs.FINISHED else float(p.get("fraction") or 0.0)
    head = f"<b>{e(status['name'])}</b> — {e(state)}"
    if status.get("stopping"):
        head += " (stopping…)"
    if state == jobs.QUEUED:
        pos = status["position"]
        current = f"the current run ({_percent(running)} done)" if running else "the current run"
        detail = (f"Next in the queue: starts when {current} ends." if pos <= 1 else
                  f"Waiting in the queue: position {pos}, behind {current} and {pos - 1} other(s).")
    elif state == jobs.RUNNING:
        detail = _running_detail(p)
    elif state == jobs.FAILED:
        detail = f"Failed: {e(_no_paths(status.get('error') or 'unknown error'))}"
    elif state == jobs.STOPPED and not status.get("started_at"):
        detail = "Cancelled before it started."
    elif state == jobs.STOPPED:
        detail = "Stopped. The model saved so far is kept (unranked on the leaderboard)."
    else:
        detail = f"Finished in {_fmt_s(_seconds_between(status.get('started_at'), status.get('finished_at')))}."
    return (f"<div class='hub-status'>{head}<div class='hub-bar'><div style='width:{100 * frac:.1f}%'></div></div>"
            f"{detail}<br><span class='muted'>{qline}</span></div>")


PHASES = {"evaluate": "evaluating on the eval set", "benchmark": "benchmarking for the leaderboard"}


def _running_detail(p: dict) -> str:
    stage = p.get("stage")
    if not stage:
        return "Preparing: loading the teacher and the data …"
    where = f"Stage {p.get('stage_index', 1)}/{p.get('n_stages', 1)}"
    if stage in PHASES:
        return f"{PHASES[stage]} …"
    detail = f"{where}: {html.escape(stage)} · step {p.get('step', 0)}/{p.get('total', '?')}"
    if p.get("examples_per_s"):
        detail += f" · {p['examples_per_s']:.0f} examples/s"
    if p.get("eta_s") is not None:
        detail += f" · ETA {_fmt_s(p['eta_s'])} (training)"
    return detail


def _frame(rows: list, columns: dict[str, str]) -> pd.DataFrame | None:
    """Plot data with fixed dtypes, or None when there is none: gradio's plots draw
    nothing after they were given an empty frame, so they must start from None."""
    if not rows:
        return None
    return pd.DataFrame(rows, columns=list(columns)).astype(columns)


def _seconds_between(start: str | None, end: str | None) -> float | None:
    from datetime import datetime

    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


def loss_frame(status: dict | None) -> pd.DataFrame | None:
    """Loss curves, one series per term, every term of ``jobs.LOSS_CURVES`` always present.

    Gradio's plots fix their colour domain when first drawn, so a term that appears
    later (a new stage) would never be drawn; a term without points gets one point
    on top of an existing one, which draws nothing (a line needs two)."""
    losses = (status or {}).get("losses") or {}
    if not any(losses.values()):
        return None
    first = next(pts[0] for pts in losses.values() if pts)
    rows = []
    for term in [*jobs.LOSS_CURVES, *(t for t in losses if t not in jobs.LOSS_CURVES)]:
        rows += [(x, v, term) for x, v in losses.get(term) or [first]]
    return _frame(rows, {"step": "int64", "loss": "float64", "term": "str"})


def result_markdown(status: dict | None) -> str:
    if not status or not status.get("result"):
        return ""
    res = status["result"]
    lines = []
    for role in ("teacher", "student"):
        r = res.get(role)
        if r:
            ev = (r.get("eval") or {}).get("student" if role == "student" else "model") or {}
            acc = f"{ev['accuracy']:.3f}" if ev.get("accuracy") is not None else "–"
            lines.append(f"- **{role}** `{html.escape(r['key'])}` ({r.get('status')}): accuracy {acc}")
    for row in res.get("rows") or []:
        if row.get("role") == "student" and row.get("speedup_p50"):
            lines.append(f"- leaderboard: retention {row.get('retention') or 0:.1%}, "
                         f"speedup {row['speedup_p50']:.2f}× at p50")
    t, s = res.get("teacher"), res.get("student")
    if s and s.get("status") == jobs.FINISHED:
        a = (t or {}).get("key") or ""
        link = f"?tab=compare&task={quote(status['params'].get('task', 'sst2'))}&a={quote(a)}&b={quote(s['key'])}"
        lines.append(f"- [Compare them side by side]({link})" if a else "")
    return "\n".join(line for line in lines if line)


def job_choices() -> list[tuple[str, str]]:
    return [(f"{j['name']} · {j['state']} · {j['created_at'][:16].replace('T', ' ')}", j["id"])
            for j in jobs.default_queue().jobs()]


def poll(job_id, owned, seen):
    """Timer tick: progress of the watched job; refresh model lists when it ends."""
    queue = jobs.default_queue()
    try:
        status = public_status(queue.status(job_id)) if job_id else None
    except KeyError:
        status = None
    sig = None if status is None else (status["id"], status["state"], len(status["log"]),
                                       sum(len(v) for v in status["losses"].values()), status["position"])
    active = status is not None and status["state"] in jobs.ACTIVE_STATES
    ended_now = status is not None and seen and seen[0] == status["id"] and seen[1] in jobs.ACTIVE_STATES \
        and not active
    is_owner = bool(status) and queue.is_owner(status["id"], (owned or {}).get("token"))
    skip = gr.skip()
    changed = sig != (tuple(seen) if seen else None)
    bar = progress_html(status)
    outputs = [
        bar, bar,
        loss_frame(status) if changed else skip,
        "\n".join((status or {}).get("log", [])[-200:]) if changed else skip,
        result_markdown(status) if changed else skip,
        gr.Button(interactive=active and is_owner and not status.get("stopping")),
        gr.Timer(active=active),
        list(sig) if sig else None,
        gr.Dropdown(choices=job_choices(), value=job_id) if changed else skip,
    ]
    if ended_now:
        outputs += _compare_model_updates("sst2" if not status else status["params"].get("task", "sst2"))
    else:
        outputs += [skip, skip, skip, skip]
    return outputs


def watch_job(job_id):
    return job_id, gr.Timer(active=True), None


# ---------------------------------------------------------------- Compare tab


def _compare_model_updates(task: str, a: str | None = None, b: str | None = None):
    """Dropdown updates for models A and B, the no-models notice and the quick start row."""
    models = allowed_models(task)
    choices = model_choices(models)
    da, db = default_pair(models)
    a = a if a in models else da
    b = b if b in models else db
    empty = len(models) < 2
    have = "No trained models" if not models else "Only one trained model"
    notice = (f"**{have} on this server yet.** Press **Quick start** to fine-tune `minilm-l6` on 2,000 SST-2 "
              "sentences and distill a 3-layer student from it on 4,000 (a few minutes on 2 CPU cores); the "
              "progress shows here and in the Distill tab, and the pair appears in the lists when it is done."
              if empty else "")
    return [gr.Dropdown(choices=choices, value=a), gr.Dropdown(choices=choices, value=b),
            gr.Markdown(notice, visible=empty), gr.Row(visible=empty)]


def compare_task_changed(task):
    t = TASKS.get(task)
    examples = list(t.examples) if t else []
    return [*_compare_model_updates(task), gr.Dropdown(choices=examples, value=None)]


def run_compare(task, a, b, text):
    r = api_compare(task, a, b, text)
    ra, rb = r["a"], r["b"]
    agree = "**The models agree.**" if r["agree"] else "**The models disagree.**"
    md = (f"{agree} KL(A‖B) = {r['kl']:.4f} nats · latency A {ra['latency_ms']:.1f} ms, "
          f"B {rb['latency_ms']:.1f} ms (single text, includes tokenization)")
    return (gr.Label(value=ra["probabilities"], label=f"A · {a} · {ra['latency_ms']:.1f} ms"),
            gr.Label(value=rb["probabilities"], label=f"B · {b} · {rb['latency_ms']:.1f} ms"), md)


def compare_from_link(task, a, b, text, request: gr.Request):
    """A shared Compare link shows its result at once (the inputs were restored first)."""
    params = dict(request.query_params) if request is not None else {}
    if params.get("tab") != "compare" or not params.get("text") or not (a and b and text):
        return gr.skip(), gr.skip(), gr.skip()
    try:
        return run_compare(task, a, b, text)
    except gr.Error:
        return gr.skip(), gr.skip(), gr.skip()  # the link notice already says what was wrong


def run_compare_batch(task, a, b, lines):
    r = api_compare_batch(task, a, b, lines)
    md = (f"**Agreement {r['agreement']:.1%}** on {r['n']} lines · throughput A {r['throughput_a']:.0f}/s, "
          f"B {r['throughput_b']:.0f}/s · {len(r['disagreements'])} disagreement(s)")
    df = pd.DataFrame(r["disagreements"], columns=["line", "text", "a", "b"])
    return md, df


# ---------------------------------------------------------------- Leaderboard tab


def _round(value, fmt: str | None):
    if value is None or fmt is None or not isinstance(value, (int, float)):
        return value
    m = re.search(r"\.(\d+)f", fmt)
    return round(value, int(m.group(1))) if m else value


def _task_filter_choices(store: LeaderboardStore, task: str | None = None) -> list[str]:
    """``All``, the tasks in the store, and ``task`` when it is a known task without rows yet."""
    tasks = store.tasks()
    return [ALL, *tasks, *([task] if task in TASKS and task not in tasks else [])]


def write_csv(rows: list[dict], dest: Path) -> None:
    """The rows as shown (filters and order), every column, server paths redacted."""
    import csv
    import json

    from hub.leaderboard import COLUMN_NAMES

    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMN_NAMES)
        writer.writeheader()
        for row in rows:
            row = redact_paths(decode_json_columns(row))
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v
                             for k, v in row.items() if k in COLUMN_NAMES})


def leaderboard_view(task, hardware, columns, ranked_only):
    """Table, Pareto plot data and CSV file for the filters."""
    store = LeaderboardStore()
    tasks, tags = _task_filter_choices(store, task)[1:], store.hardware_tags()
    task_f = task if task in tasks else None
    hw_f = hardware if hardware in tags else None
    rows = store.rows(task=task_f, hardware=hw_f, ranked_only=bool(ranked_only))
    rows.sort(key=lambda r: (-(r["ranked"] or 0), -(r["accuracy"] or 0)))
    rows = [{**r, "model": redact_paths(r["model"]), "teacher": redact_paths(r["teacher"])} for r in rows]
    cols = [c for c in DISPLAY_COLUMNS if c in (columns or DEFAULT_TABLE_COLUMNS)]
    table = pd.DataFrame(
        [[r["row_id"], *(_round(r.get(c), COLUMNS_BY_NAME[c].fmt) for c in cols)] for r in rows],
        columns=["ID", *(COLUMNS_BY_NAME[c].label for c in cols)],
    )
    datatypes = ["number", *("number" if COLUMNS_BY_NAME[c].sql_type.split()[0] in ("REAL", "INTEGER")
                             else "str" for c in cols)]
    export = _export_dir() / secrets.token_hex(4) / f"leaderboard-{task_f or 'all'}.csv"
    write_csv(rows, export)
    empty = ("No results yet. Every finished run of the Distill tab is benchmarked and added here; "
             "`python -m hub bench` adds models from the command line." if not rows else "")
    return (gr.Dataframe(value=table, datatype=datatypes), pareto_frame(rows), str(export),
            gr.Markdown(empty, visible=not rows),
            gr.Dropdown(choices=[ALL, *tasks], value=task_f or ALL),
            gr.Dropdown(choices=[ALL, *tags], value=hw_f or ALL))


_EXPORT: list[Path] = []


def _export_dir() -> Path:
    """A private temp folder for CSV exports (gradio copies them into its cache to serve)."""
    if not _EXPORT:
        _EXPORT.append(Path(tempfile.mkdtemp(prefix="distill-hub-export-")))
    for old in sorted(_EXPORT[0].iterdir(), key=lambda p: p.stat().st_mtime)[:-20]:  # keep it small
        shutil.rmtree(old, ignore_errors=True)
    return _EXPORT[0]


def pareto_frame(rows: list[dict]) -> pd.DataFrame | None:
    """Accuracy vs p50 latency of ranked rows; teachers are the reference, the rest
    are marked Pareto-optimal when no other model is both faster and better."""
    pts = [r for r in rows if r["ranked"] and r["accuracy"] is not None and r["latency_p50_ms"]]
    out = []
    for r in pts:
        dominated = any(o is not r and o["latency_p50_ms"] <= r["latency_p50_ms"] and o["accuracy"] >= r["accuracy"]
                        and (o["latency_p50_ms"] < r["latency_p50_ms"] or o["accuracy"] > r["accuracy"])
                        for o in pts)
        kind = "teacher (reference)" if r["role"] == "teacher" else ("Pareto-optimal" if not dominated else "other")
        out.append((round(r["latency_p50_ms"], 3), round(r["accuracy"], 4), kind, r["name"] or ""))
    return _frame(out, {"p50 latency (ms)": "float64", "accuracy": "float64", "kind": "str", "model": "str"})


def pareto_legend(task, hardware, columns, ranked_only):
    """Second step of a leaderboard refresh: the plot's legend lists the kinds present,
    which makes gradio redraw it with its new colour domain (see ``loss_frame``)."""
    store = LeaderboardStore()
    rows = store.rows(task=task if task in store.tasks() else None,
                      hardware=hardware if hardware in store.hardware_tags() else None, ranked_only=bool(ranked_only))
    df = pareto_frame(rows)
    return gr.ScatterPlot(colors_in_legend=list(dict.fromkeys(df["kind"])) if df is not None else None)


def show_run_card(evt: gr.SelectData):
    try:
        row_id = int((evt.row_value or [None])[0])
    except (TypeError, ValueError):
        return gr.skip()
    row = LeaderboardStore().get(row_id)
    if row is None:
        return None
    row = redact_paths(decode_json_columns(row))
    return {"row": {k: v for k, v in row.items() if k not in JSON_COLUMNS},
            "run_card": row.get("run_card"), "benchmark": row.get("bench_json")}


# ---------------------------------------------------------------- shareable links


def restore_from_link(request: gr.Request):
    """Apply ``?tab=&task=&a=&b=&text=&hw=`` to the UI; bad values fall back to defaults
    with a notice that never repeats the raw value."""
    q = dict(request.query_params) if request is not None else {}
    notes = []
    tab = q.get("tab") or None
    if tab is not None and tab not in TABS:
        notes.append("unknown tab in the link")
        tab = None
    if tab is None and any(k in q for k in ("a", "b", "text")):
        tab = "compare"
    task = q.get("task")
    c_task = "sst2"
    lb_task, lb_hw = ALL, ALL
    store = LeaderboardStore()
    if tab == "leaderboard":
        if task and task != ALL:
            if task in store.tasks() or task in TASKS:
                lb_task = task
            else:
                notes.append("unknown task in the link")
        hw = q.get("hw")
        if hw and hw != ALL:
            if hw in store.hardware_tags():
                lb_hw = hw
            else:
                notes.append("unknown hardware tag in the link")
    elif task:
        if task in CLASSIFICATION_TASKS:
            c_task = task
        else:
            notes.append("unknown task in the link")
    models = allowed_models(c_task)
    a, b = q.get("a"), q.get("b")
    for which, value in (("A", a), ("B", b)):
        if value and value not in models:
            notes.append(f"model {which} in the link is not on this server")
    text = q.get("text") or ""
    if len(text) > MAX_TEXT_CHARS:
        notes.append(f"the text in the link is longer than {MAX_TEXT_CHARS:,} characters")
        text = ""
    notice = ""
    if notes:
        notice = "Link: " + "; ".join(notes) + " — using the defaults instead."
        gr.Warning(notice)
    updates = _compare_model_updates(c_task, a if a in models else None, b if b in models else None)
    return [gr.Tabs(selected=tab or "distill"), c_task, *updates, text,
            gr.Markdown(notice, visible=bool(notice)),
            gr.Dropdown(choices=_task_filter_choices(store, lb_task), value=lb_task),
            gr.Dropdown(choices=[ALL, *store.hardware_tags()], value=lb_hw)]


COPY_COMPARE_JS = """(task, a, b, text) => {
  const u = new URL(window.location.pathname, window.location.origin);
  u.searchParams.set('tab', 'compare');
  if (task) u.searchParams.set('task', task);
  if (a) u.searchParams.set('a', a);
  if (b) u.searchParams.set('b', b);
  if (text) u.searchParams.set('text', text.slice(0, %d));
  const s = u.toString();
  try { navigator.clipboard.writeText(s).catch(() => {}); } catch (e) {}
  return s;
}""" % MAX_TEXT_CHARS

COPY_LEADERBOARD_JS = """(task, hw) => {
  const u = new URL(window.location.pathname, window.location.origin);
  u.searchParams.set('tab', 'leaderboard');
  if (task && task !== 'All') u.searchParams.set('task', task);
  if (hw && hw !== 'All') u.searchParams.set('hw', hw);
  const s = u.toString();
  try { navigator.clipboard.writeText(s).catch(() => {}); } catch (e) {}
  return s;
}"""


def init_session(owned, request: gr.Request):
    """Page load: watch this browser's last run, else the running one, else the newest."""
    queue = jobs.default_queue()
    owned = owned or {}
    job_id = None
    mine = owned.get("job")
    try:
        if mine and queue.status(mine):
            job_id = mine
    except KeyError:
        job_id = None
    if job_id is None or queue.status(job_id)["state"] not in jobs.ACTIVE_STATES:
        current = queue.current()
        if current:
            job_id = current["id"]
        elif job_id is None:
            listed = queue.jobs()
            job_id = listed[0]["id"] if listed else None
    return (job_id, gr.Timer(active=job_id is not None), None, gr.Dropdown(choices=job_choices(), value=job_id),
            gr.Dropdown(choices=teacher_choices("sst2")))


# ---------------------------------------------------------------- layout


def build_demo() -> gr.Blocks:
    """The app. Cheap: lists folders and reads the store, loads no model."""
    private = {"api_visibility": "private"}
    with gr.Blocks(title="Distill Hub", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Distill Hub\nDistill BERT teachers into TinyBERT students, compare them side by side, "
                    "and rank them by quality × speed.")
        link_notice = gr.Markdown(visible=False, elem_classes=["hub-notice"], elem_id="link-notice")
        watch = gr.State(None)
        seen = gr.State(None)
        owned = gr.BrowserState({}, storage_key="distill-hub-owner")
        timer = gr.Timer(POLL_S, active=False)

        with gr.Tabs() as tabs:
            # ------------------------------------------------------------ Distill
            with gr.Tab("Distill", id="distill"):
                with gr.Row():
                    with gr.Column(scale=3):
                        d_task = gr.Radio(CLASSIFICATION_TASKS, value="sst2", label="Task")
                        d_teacher = gr.Dropdown(teacher_choices("sst2"), value=ALIAS, allow_custom_value=True,
                                                label="Teacher", info="a listed model, or type a Hub id (online)")
                        with gr.Row():
                            d_student = gr.Dropdown(STUDENTS, value="teacher-layers:3", allow_custom_value=True,
                                                    label="Student",
                                                    info="teacher-layers:K copies K of the teacher's layers")
                        with gr.Row(visible=False) as custom_row:
                            def shape(key, value):  # ranges come from the job schema
                                s = jobs.PARAMS[key]
                                return gr.Number(value, label=key, minimum=s.lo, maximum=s.hi, precision=0)
                            d_layers, d_hidden = shape("layers", 4), shape("hidden", 312)
                            d_heads, d_ffn = shape("heads", 12), shape("ffn", 1200)
                        local = local_datasets("sst2")
                        d_source = gr.Radio(DATA_SOURCES, value=DATA_SOURCES[0] if local else DATA_SOURCES[1],
                                            label="Data")
                        with gr.Group(visible=bool(local)) as local_box:
                            d_local = gr.Dropdown(list(local), value=next(iter(local), None), label="Local data set",
                                                  info="from the server's data folder")
                        with gr.Row(visible=not local) as hub_box:
                            d_hub = gr.Textbox(label="Hub data set id", placeholder="glue", max_length=100)
                            d_hub_cfg = gr.Textbox(label="config", placeholder="sst2", max_length=100)
                        with gr.Group(visible=False) as upload_box:
                            with gr.Row():
                                d_up_train = gr.File(label="Training file", file_types=UPLOAD_TYPES, type="filepath")
                                d_up_eval = gr.File(label="Evaluation file (optional: else 10% held out)",
                                                    file_types=UPLOAD_TYPES, type="filepath")
                            gr.Markdown(f"CSV, TSV, JSONL or Parquet, at most {MAX_UPLOAD} and "
                                        f"{jobs.MAX_UPLOAD_ROWS:,} rows.")
                        with gr.Row():
                            d_text_col = gr.Textbox(label="text column", placeholder="sentence", max_length=100)
                            d_label_col = gr.Textbox(label="label column", placeholder="label", max_length=100)
                        with gr.Accordion("Hyperparameters", open=False):
                            def slider(key, label, step, **kw):
                                s = jobs.PARAMS[key]  # ranges come from the job schema
                                return gr.Slider(s.lo, kw.pop("maximum", s.hi), value=s.default, step=step,
                                                 label=label, info=s.help or None, **kw)
                            with gr.Row():
                                d_ft_samples = slider("finetune_samples", "fine-tune samples", 16,
                                                      maximum=20_000)
                                d_train_samples = slider("train_samples", "distillation samples", 16,
                                                         maximum=70_000)
                                d_eval_samples = slider("eval_samples", "eval samples", 16, maximum=2000)
                            with gr.Row():
                                d_ft_epochs = slider("finetune_epochs", "fine-tune epochs", 0.1, maximum=5)
                                d_epochs = slider("epochs", "epochs per stage", 0.1, maximum=5)
                                d_batch = slider("batch_size", "batch size", 1, maximum=64)
                            with gr.Row():
                                d_ft_lr = gr.Number(jobs.PARAMS["finetune_learning_rate"].default,
                                                    label="fine-tune learning rate", minimum=1e-6, maximum=1e-2)
                                d_lr = gr.Number(jobs.PARAMS["learning_rate"].default, label="learning rate",
                                                 minimum=1e-6, maximum=1e-2)
                                d_max_len = slider("max_length", "max length (tokens)", 16, maximum=256)
                            with gr.Row():
                                d_temp = slider("temperature", "temperature", 0.1, maximum=10)
                                d_alpha = slider("alpha", "alpha", 0.05)
                                d_stages = gr.CheckboxGroup(list(jobs.STAGE_NAMES), value=list(jobs.STAGE_NAMES),
                                                            label="stages")
                        d_name = gr.Textbox(label="Run name (optional)", placeholder="sst2-teacher-layers3",
                                            max_length=60)
                        d_estimate = gr.Markdown()
                        with gr.Row():
                            d_start = gr.Button("Start distillation", variant="primary")
                            d_stop = gr.Button("Stop", variant="stop", interactive=False)
                    with gr.Column(scale=2):
                        d_runs = gr.Dropdown(job_choices(), label="Run", info="the current and past runs")
                        d_progress = gr.HTML(progress_html(None), elem_id="distill-progress")
                        d_plot = gr.LinePlot(None, x="step", y="loss", color="term",
                                             title="Losses", height=260, x_title="step (all stages)")
                        d_result = gr.Markdown()
                        d_log = gr.Textbox(label="Log", lines=10, max_lines=10, autoscroll=True, interactive=False)

            # ------------------------------------------------------------ Compare
            with gr.Tab("Compare", id="compare"):
                models0 = allowed_models("sst2")
                a0, b0 = default_pair(models0)
                choices0 = model_choices(models0)
                c_notice = gr.Markdown(visible=len(models0) < 2, elem_id="compare-notice")
                with gr.Row(visible=len(models0) < 2) as qs_row:
                    c_quick = gr.Button("Quick start", variant="primary", scale=0, min_width=160, elem_id="quick-start")
                    c_qs_progress = gr.HTML()
                with gr.Row():
                    c_task = gr.Dropdown(CLASSIFICATION_TASKS, value="sst2", label="Task", scale=1)
                    c_a = gr.Dropdown(choices0, value=a0, label="Model A (e.g. the teacher)", scale=2,
                                      elem_id="compare-a")
                    c_b = gr.Dropdown(choices0, value=b0, label="Model B (e.g. the student)", scale=2,
                                      elem_id="compare-b")
                with gr.Tabs():
                    with gr.Tab("One text"):
                        c_text = gr.Textbox(label="Text", lines=3, elem_id="compare-text", max_length=MAX_TEXT_CHARS,
                                            placeholder="Type a sentence, or pick an example below")
                        c_examples = gr.Dropdown(list(TASKS["sst2"].examples), value=None, label="Examples")
                        with gr.Row():
                            c_run = gr.Button("Compare", variant="primary", elem_id="compare-run")
                            c_copy = gr.Button("Copy link", variant="secondary", elem_id="compare-copy")
                        c_link = gr.Textbox(label="Shareable link", interactive=False, buttons=["copy"],
                                            elem_id="compare-link")
                        with gr.Row():
                            c_out_a = gr.Label(label="A", num_top_classes=3, elem_id="compare-out-a")
                            c_out_b = gr.Label(label="B", num_top_classes=3, elem_id="compare-out-b")
                        c_stats = gr.Markdown(elem_id="compare-stats")
                    with gr.Tab("Batch"):
                        c_lines = gr.Textbox(label=f"One text per line (at most {MAX_BATCH_LINES} lines)", lines=8,
                                             max_length=MAX_BATCH_LINES * (MAX_TEXT_CHARS + 1))
                        c_run_batch = gr.Button("Compare all lines", variant="primary")
                        c_batch_stats = gr.Markdown()
                        c_disagree = gr.Dataframe(headers=["line", "text", "a", "b"], label="Disagreements",
                                                  interactive=False, wrap=True,
                                                  column_widths=["8%", "62%", "15%", "15%"])
                    with gr.Tab("Question answering (coming soon)"):
                        gr.Markdown("Extractive QA (SQuAD): question + context → answer span and score. "
                                    "The task is declared; its trainer and demo are not built yet.")
                        gr.Textbox(label="Question", interactive=False)
                        gr.Textbox(label="Context", lines=4, interactive=False)
                        gr.Button("Answer (coming soon)", interactive=False)
                    with gr.Tab("Generation (coming soon)"):
                        gr.Markdown("Text generation: prompt → continuation with tokens/s for both models. "
                                    "Not built yet.")
                        gr.Textbox(label="Prompt", interactive=False)
                        gr.Button("Generate (coming soon)", interactive=False)

            # ------------------------------------------------------------ Leaderboard
            with gr.Tab("Leaderboard", id="leaderboard"):
                with gr.Row():
                    l_task = gr.Dropdown([ALL], value=ALL, label="Task", scale=1)
                    l_hw = gr.Dropdown([ALL], value=ALL, label="Hardware", scale=3)
                    l_ranked = gr.Checkbox(False, label="Ranked runs only", scale=1)
                with gr.Accordion("Columns", open=False):
                    l_cols = gr.CheckboxGroup(
                        [(COLUMNS_BY_NAME[c].label, c) for c in DISPLAY_COLUMNS], value=list(DEFAULT_TABLE_COLUMNS),
                        label="Shown columns", info="hover a header in the CSV for its meaning; all columns are "
                                                    "in the download")
                l_empty = gr.Markdown(visible=False)
                l_table = gr.Dataframe(label="Results (sort from a header's ⋮ menu; click a row for its run card)",
                                       interactive=False, max_height=420, elem_id="leaderboard-table")
                with gr.Row():
                    l_refresh = gr.Button("Refresh", scale=0, min_width=120, size="md")
                    l_download = gr.DownloadButton("Download CSV", scale=0, min_width=190, size="md")
                    l_copy = gr.Button("Copy link", scale=0, min_width=120, size="md")
                    l_link = gr.Textbox(show_label=False, interactive=False, placeholder="shareable link", scale=3)
                with gr.Row():
                    l_plot = gr.ScatterPlot(None, x="p50 latency (ms)", y="accuracy", color="kind",
                                            title="Accuracy vs p50 latency (up-left is better)", height=340,
                                            tooltip=["model", "accuracy", "p50 latency (ms)", "kind"],
                                            color_map={"teacher (reference)": "#888888",
                                                       "Pareto-optimal": "#e4572e", "other": "#4c78a8"})
                    l_card = gr.JSON(label="Run card of the selected row")
                with gr.Accordion("What the columns mean", open=False):
                    gr.Markdown("\n".join(f"- **{COLUMNS_BY_NAME[c].label}**: {COLUMNS_BY_NAME[c].description}"
                                          for c in DISPLAY_COLUMNS))

        # ---------------------------------------------------------------- events
        cost_inputs = [d_task, d_teacher, d_student, d_ft_samples, d_train_samples, d_ft_epochs, d_epochs, d_stages]
        gr.on([c.change for c in cost_inputs], estimate_text, cost_inputs, d_estimate, **private,
              show_progress="hidden", trigger_mode="always_last")
        d_task.input(lambda t: (gr.Dropdown(choices=teacher_choices(t), value=ALIAS),
                                gr.Dropdown(choices=list(local_datasets(t)), value=next(iter(local_datasets(t)), None)),
                                gr.Textbox(placeholder=TASKS[t].text_column or "text")),
                     d_task, [d_teacher, d_local, d_text_col], **private)
        d_student.change(lambda s: gr.Row(visible=s == "custom"), d_student, custom_row, **private,
                         show_progress="hidden")
        d_student.change(student_learning_rate, d_student, d_lr, **private, show_progress="hidden")
        d_source.change(lambda s: (gr.Group(visible=s == DATA_SOURCES[0]), gr.Row(visible=s == DATA_SOURCES[1]),
                                   gr.Group(visible=s == DATA_SOURCES[2])),
                        d_source, [local_box, hub_box, upload_box], **private, show_progress="hidden")
        start_inputs = [d_task, d_teacher, d_student, d_layers, d_hidden, d_heads, d_ffn, d_source, d_local, d_hub,
                        d_hub_cfg, d_up_train, d_up_eval, d_text_col, d_label_col, d_ft_samples, d_train_samples,
                        d_eval_samples, d_ft_epochs, d_epochs, d_ft_lr, d_lr, d_batch, d_max_len, d_temp, d_alpha,
                        d_stages, d_name, owned]
        d_start.click(start_job, start_inputs, [watch, owned, timer], **private, concurrency_limit=1)
        c_quick.click(quick_start, owned, [watch, owned, timer], **private, concurrency_limit=1)
        d_stop.click(stop_job, [watch, owned], None, **private)
        d_runs.input(watch_job, d_runs, [watch, timer, seen], **private)
        poll_outputs = [d_progress, c_qs_progress, d_plot, d_log, d_result, d_stop, timer, seen, d_runs,
                        c_a, c_b, c_notice, qs_row]
        timer.tick(poll, [watch, owned, seen], poll_outputs, **private, show_progress="hidden",
                   concurrency_limit=None)

        c_task.input(compare_task_changed, c_task, [c_a, c_b, c_notice, qs_row, c_examples], **private)
        c_examples.input(lambda e: e or gr.skip(), c_examples, c_text, **private, show_progress="hidden")
        gr.on([c_run.click, c_text.submit], run_compare, [c_task, c_a, c_b, c_text], [c_out_a, c_out_b, c_stats],
              **private, concurrency_limit=2)
        c_run_batch.click(run_compare_batch, [c_task, c_a, c_b, c_lines], [c_batch_stats, c_disagree], **private,
                          concurrency_limit=1)
        c_copy.click(None, [c_task, c_a, c_b, c_text], c_link, js=COPY_COMPARE_JS, **private)

        lb_inputs = [l_task, l_hw, l_cols, l_ranked]
        lb_outputs = [l_table, l_plot, l_download, l_empty, l_task, l_hw]
        gr.on([l_task.input, l_hw.input, l_cols.input, l_ranked.input, l_refresh.click], leaderboard_view,
              lb_inputs, lb_outputs, **private).then(pareto_legend, lb_inputs, l_plot, **private)
        l_table.select(show_run_card, None, l_card, **private)
        l_copy.click(None, [l_task, l_hw], l_link, js=COPY_LEADERBOARD_JS, **private)

        restored = demo.load(restore_from_link, None,
                             [tabs, c_task, c_a, c_b, c_notice, qs_row, c_text, link_notice, l_task, l_hw], **private)
        restored.then(leaderboard_view, lb_inputs, lb_outputs, **private
                      ).then(pareto_legend, lb_inputs, l_plot, **private)
        restored.then(compare_from_link, [c_task, c_a, c_b, c_text], [c_out_a, c_out_b, c_stats], **private,
                      concurrency_limit=2)
        demo.load(init_session, owned, [watch, timer, seen, d_runs, d_teacher], **private)
        demo.load(estimate_text, cost_inputs, d_estimate, **private)

        # the public API: typed functions, usable from gradio_client
        gr.api(api_compare, api_name="compare")
        gr.api(api_compare_batch, api_name="compare_batch")
        gr.api(api_models, api_name="models")
        gr.api(api_leaderboard, api_name="leaderboard")
        gr.api(api_run_card, api_name="run_card")
        gr.api(api_estimate, api_name="estimate")
        gr.api(api_job_status, api_name="job_status")
    demo.queue(max_size=64, default_concurrency_limit=1)
    return demo


if __name__ == "__main__":
    build_demo().launch(**launch_kwargs())
