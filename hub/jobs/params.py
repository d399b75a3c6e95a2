"""A job's parameters: ``hub.config.JobSettings`` checked field by field (types,
ranges, unknown keys), then what one field alone cannot say: the task is built,
the student spec parses, a custom shape divides, the teacher is a reference the
server accepts, and there is exactly one data source. No torch.

``validate_params(params) -> dict`` is what the queue stores and the child
process reads back (plain JSON types: stages as a list, paths absolute).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..config import (AUGMENT_KINDS, KIND_STAGES, STAGES, STUDENT_PRESETS, JobSettings, from_dict, is_hub_id,
                      parse_teacher_layers, spec, student_is_random_init)

STAGE_NAMES = STAGES
STUDENT_PRESET_NAMES = tuple(STUDENT_PRESETS)
DATA_KEYS = ("data_dir", "train_file", "eval_file", "dataset", "dataset_config")
MAX_TEACHER_LAYERS = 24
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class ParamsError(ValueError):
    """A job setting the server refuses; the message names the setting, never echoes it."""


@dataclass(frozen=True)
class Param:
    """One job setting's default, inclusive range and help (read from ``JobSettings``)."""

    default: object
    lo: float | None
    hi: float | None
    help: str
    choices: tuple | None


# The schema as a name -> Param table (the app's sliders read ranges from it).
PARAMS: dict[str, Param] = {
    f.name: Param(s["default"], s["lo"], s["hi"], s["help"], s["choices"])
    for f in fields(JobSettings) for s in [spec(JobSettings, f.name)]
}


def safe_name(name: str) -> str:
    """A folder-safe job name: letters, digits, '.', '_' and '-', at most 60 characters.

    >>> safe_name("../../etc/passwd")
    'etc-passwd'
    """
    cleaned = _NAME.sub("-", str(name)).strip(".-_")[:60]
    if not cleaned:
        raise ParamsError("the run name needs at least one letter or digit")
    return cleaned


def validate_params(params: dict, need_data: bool = True) -> dict:
    """Defaults filled in, types coerced, ranges checked, then the cross-field checks.

    Unknown keys, bad values and bad combinations raise :class:`ParamsError` (a
    ``ValueError``). ``need_data=False`` skips the data source (for estimates).
    A teacher given as a model name of this server's registry becomes its folder.
    """
    from ..tasks import TASKS
    from .registry import resolve_teacher

    if not isinstance(params, dict):
        raise ParamsError("job parameters must be a dict")
    try:
        settings = from_dict(JobSettings, params)
    except ValueError as exc:
        raise ParamsError(str(exc)) from None
    out = asdict(settings)
    task = TASKS.get(out["task"])
    if task is None or not task.implemented:
        raise ParamsError(f"task must be one of {[n for n, t in TASKS.items() if t.implemented]}")
    out["teacher"] = resolve_teacher(out["teacher"], task.name, allow_paths=True)
    out["stages"] = job_stages(out["stages"], task.kind)
    out["student"] = _check_student(out, task.name)
    if out["augment"] and task.kind not in AUGMENT_KINDS:
        raise ParamsError(f"augment rewrites the text of {' and '.join(AUGMENT_KINDS)} examples; "
                          f"task {task.name} is {task.kind}")
    if out["augment"]:  # copies keep their original's label, which a replaced word can make wrong: soft labels only
        out["alpha"] = 0.0
    if out["cloze"] and task.kind != "qa":
        raise ParamsError(f"cloze questions are a transfer set for extractive QA; task {task.name} is {task.kind}")
    if out["cloze"] and "prediction" not in out["stages"]:
        raise ParamsError("cloze questions teach the prediction stage (the teacher's answers); tick it, or set cloze "
                          "to 0 for an intermediate-only run")
    if out["cloze_noise"] and not out["cloze"]:
        raise ParamsError("cloze_noise rewrites a share of the cloze questions: set cloze (questions a paragraph) too")
    if out["negatives"] and not out["cloze"]:
        raise ParamsError("negatives are made with the cloze transfer set and taught in its prediction stage: set "
                          "cloze (questions a paragraph) too")
    if out["negatives"] and out["alpha"] == 1.0:
        raise ParamsError("negatives are taught by the teacher's term alone, which alpha 1 weighs 0: use an alpha "
                          "below 1, or no negatives")
    if out["calibrate_null"] and task.kind != "qa":
        raise ParamsError(f"calibrate_null sets an extractive-QA student's \"no answer\" threshold; task {task.name} "
                          f"is {task.kind}")
    out["data"] = check_data(out["data"], task) if need_data else (out["data"] or None)
    if out["name"] is not None:
        out["name"] = safe_name(out["name"])
    return out


def kind_stages(kind: str) -> tuple[str, ...]:
    """The stages a task kind runs at most (``hub.distill.kind_stages`` without torch)."""
    return KIND_STAGES.get(kind, STAGES)


def job_stages(ticked, kind: str) -> list[str]:
    """The stages a job runs: those ticked that the task's kind has, in order; when
    none of the ticked ones applies (general distillation: no prediction stage),
    the kind's own. Nothing ticked at all is refused (by the schema, and here).

    >>> job_stages(["intermediate", "prediction"], "general"), job_stages(["prediction"], "general")
    (['intermediate'], ['intermediate'])
    >>> job_stages(("prediction",), "classification")
    ['prediction']
    """
    ticked = [s for s in STAGES if s in tuple(ticked or ())]  # a list: JSON round trips keep it
    if not ticked:
        raise ParamsError(f"stages must be a non-empty subset of {list(STAGES)}")
    allowed = kind_stages(kind)
    return [s for s in ticked if s in allowed] or list(allowed)


def _check_student(p: dict, task: str) -> str:
    """The student a job builds: a preset, ``teacher-layers:K``, ``custom`` (with a
    shape that divides), or a finished general-distillation student of this
    server for a task that can start from one (its model name, stored as its
    folder; the folder itself is accepted only when it is such a student)."""
    from .registry import general_students

    student = p["student"] or ""
    if p.get("prune_ffn") and student_is_random_init(student):
        raise ParamsError("prune_ffn prunes a student that starts from trained weights (teacher-layers:K or a general "
                          "student); a preset or custom student starts from random weights: set its ffn instead")
    if student == "custom":
        missing = [k for k in ("layers", "hidden", "heads") if p[k] is None]
        if missing:
            raise ParamsError(f"a custom student needs {', '.join(missing)}")
        if p["hidden"] % p["heads"]:
            raise ParamsError(f"hidden size {p['hidden']} is not divisible by {p['heads']} attention heads")
        return student
    try:
        k = parse_teacher_layers(student)
    except ValueError:
        k = 0
    if k is not None:
        if not 1 <= k <= MAX_TEACHER_LAYERS:
            raise ParamsError(f"teacher-layers:K needs K between 1 and {MAX_TEACHER_LAYERS}")
        return student
    if student in STUDENT_PRESET_NAMES:
        return student
    general = general_students(task)
    if student in general:
        return general[student]["path"]
    if student in {v["path"] for v in general.values()}:
        return student
    extra = ", a general student of this server" if general else ""
    raise ParamsError(f"student must be {', '.join(STUDENT_PRESET_NAMES)}, teacher-layers:K, custom{extra}")


def check_data(data: dict | None, task) -> dict:
    """Exactly one data source, paths made absolute. A local folder that lacks the
    task's files is no error: the job falls back to ``../shared/data`` or the
    embedded sample (``hub.samples.choose_data_dir``) and says so in its log."""
    data = {k: v for k, v in (data or {}).items() if v not in (None, "")}
    unknown = sorted(set(data) - set(DATA_KEYS))
    if unknown:
        raise ParamsError(f"unknown data key(s): {unknown}"[:200])
    if any(not isinstance(v, str) or len(v) > 1000 for v in data.values()):
        raise ParamsError("data source values must be short texts")
    if not data:
        if task.local_files:
            return {"data_dir": None}  # the task's default folder, else the embedded sample
        raise ParamsError("choose a data source: a local data set, a Hub data set or an uploaded file")
    if "dataset" in data or "dataset_config" in data:
        if set(data) - {"dataset", "dataset_config"}:
            raise ParamsError("give exactly one data source")
        if not is_hub_id(data.get("dataset", "")):
            raise ParamsError("the Hub data set id looks wrong (expected e.g. glue or user/name)")
        if data.get("dataset_config") and not is_hub_id(data["dataset_config"]):
            raise ParamsError("the Hub data set config looks wrong")
        return {"dataset": data["dataset"], "dataset_config": data.get("dataset_config")}
    if "data_dir" in data:
        if set(data) != {"data_dir"}:
            raise ParamsError("give exactly one data source")
        if not task.local_files:
            raise ParamsError(f"task {task.name!r} has no local folder layout: give a training and an evaluation file")
        return {"data_dir": str(Path(data["data_dir"]).expanduser().resolve())}
    if not data.get("train_file") or not data.get("eval_file"):
        raise ParamsError("a file data source needs a training file and an evaluation file")
    out = {}
    for key in ("train_file", "eval_file"):
        path = Path(data[key]).expanduser().resolve()
        if not path.is_file():
            raise ParamsError(f"the {key.replace('_', ' ')} does not exist")
        out[key] = str(path)
    return out


def resolve_data(params: dict) -> tuple[dict, dict]:
    """The data a job reads: ``(source, used)``. ``source`` holds the
    ``hub.data.DataSource`` fields; ``used`` = ``{"kind", "description"}`` says
    which source it is, without server paths (``kind``: "local", "embedded
    sample", "files" or "hub"). A local folder lacking the task's files falls back
    to ``../shared/data``, then to the embedded sample (``hub.samples``)."""
    from ..samples import choose_data_dir, describe_sample, missing_files, samples_dir
    from ..tasks import TASKS

    task = TASKS[params["task"]]
    data = {k: v for k, v in (params.get("data") or {}).items() if v}
    columns = {"text_column": params.get("text_column"), "label_column": params.get("label_column")}
    if "dataset" in data:
        config = f" ({data['dataset_config']})" if data.get("dataset_config") else ""
        return {**data, **columns}, {"kind": "hub", "description": f"Hub data set {data['dataset']}{config}"}
    if "train_file" in data:
        names = f"{Path(data['train_file']).name} / {Path(data['eval_file']).name}"
        return {**data, **columns}, {"kind": "files", "description": f"files {names}"}
    preferred = data.get("data_dir")
    folder, _ = choose_data_dir(task.local_files, preferred)
    files = ", ".join(task.local_files.values())
    if folder == samples_dir():
        lacks = ""
        if preferred:
            lacks = f"; the chosen folder lacks {', '.join(missing_files(preferred, task.local_files))}"
        return ({"data_dir": str(folder), **columns},
                {"kind": "embedded sample", "description": describe_sample(task.local_files) + lacks})
    return {"data_dir": str(folder), **columns}, {"kind": "local",
                                                  "description": f"local data folder {folder.name}/ ({files})"}


def data_kwargs(params: dict) -> dict:
    """Keyword arguments of ``hub.data.load_classification`` for the job's data
    (after the local-folder fallback of :func:`resolve_data`)."""
    source, _ = resolve_data(params)
    return {k: v for k, v in source.items() if k in DATA_KEYS or k in ("text_column", "label_column")}


CLOZE_TEXT_FILES = ("wikitext-2/valid.txt", "wikitext-2/test.txt")


def cloze_text_files(params: dict) -> tuple[list[str], str]:
    """The unlabelled paragraphs a QA job's cloze questions ask about (job parameter
    ``cloze``): WikiText-2's validation and test text from the job's data folder when
    it holds them, else ``../shared/data``'s, else the embedded sample's (its 21 + 13
    articles). Returns the files and a description for the job's log (no server paths)."""
    from ..samples import choose_data_dir, samples_dir

    local = {str(i): rel for i, rel in enumerate(CLOZE_TEXT_FILES)}
    folder, _ = choose_data_dir(local, (params.get("data") or {}).get("data_dir"))
    where = "the embedded sample" if folder == samples_dir() else f"local data folder {folder.name}/"
    return [str(folder / rel) for rel in CLOZE_TEXT_FILES], f"WikiText-2 validation + test text ({where})"
