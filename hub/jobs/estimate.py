"""How long a job will take, before it starts: every phase it runs (fine-tuning,
the teacher's evaluation, the distillation stages, caching the teacher's
logits, the student's evaluation, the quick benchmark) plus a fixed overhead.

* **Examples** come from the data actually chosen: the uploaded or local
  training file's row count, capped by the job's sample limits (and by
  ``max_steps`` x batch size); a Hub data set's size is unknown here, so the
  limits are taken as they are.
* **Training rates** are the Trainer's own measured ``train_examples_per_s`` in
  the ``run.json`` of earlier finished runs on this machine (same CPU model and
  core count): fine-tuning from the same base model; distillation from the same
  teacher into the same student spec, else into the same student shape.
* **The other phases** take the seconds an earlier finished job like this one
  (same task, teacher origin, student, eval size and length, same machine)
  recorded in its ``result.json`` (``phases``, written by ``hub.jobs.runner``);
  caching is scaled by its examples. When an earlier finished job distilled on
  the same windows (same teacher, data, sample limit, length, augmentation and
  cloze settings, and seed where those draw) and its teacher-logit cache file
  is still there, the phase is a read of that file instead.
* Anything not measured here is ``DEFAULT_RATES`` / ``DEFAULT_PHASES`` (these and
  the measured rates and phases live in :mod:`hub.jobs.estimate_rates`). The
  answer says which (``"basis": "measured"`` or ``"default guess"``, per phase).

No torch: config files are read as JSON.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..config import BLOCK_KINDS, LOGIT_CACHING_KINDS, STUDENT_PRESETS, parse_teacher_layers, teaches_as_it_is
from .estimate_rates import (AUGMENT_YIELD, CACHE_READ, CLOZE_TRAIN_YIELD, DEFAULT_GUESS, DEFAULT_PHASES, DEFAULT_RATES,
                             DEFAULT_TOKEN_RATES, KIND_PHASES, KIND_RATES, MAX_EARLIER_JOBS, MEASURED, OVERHEAD_S,
                             _phase_seconds, cached_teacher_logits, earlier_phases, job_key, measured_rates)
from .params import check_data, resolve_data, validate_params
from .registry import alias_path, resolve_teacher

__all__ = [  # the estimate, and what moved to .estimate_rates (still importable from here)
    "estimate", "plan_steps", "train_rows", "student_shape", "student_label", "cloze_questions",
    "AUGMENT_YIELD", "CLOZE_TRAIN_YIELD", "DEFAULT_GUESS", "DEFAULT_PHASES", "DEFAULT_RATES", "DEFAULT_TOKEN_RATES",
    "KIND_PHASES", "KIND_RATES", "MAX_EARLIER_JOBS", "MEASURED", "OVERHEAD_S", "earlier_phases", "job_key",
    "measured_rates",
]


def plan_steps(n_examples: int, epochs: float, batch_size: int, max_steps: int = -1) -> int:
    """Optimisation steps of one Trainer run (what the progress hook reports as total).

    >>> plan_steps(100, 1.0, 32), plan_steps(100, 2.5, 32), plan_steps(100, 1.0, 32, max_steps=3)
    (4, 10, 3)
    """
    if max_steps and max_steps > 0:
        return int(max_steps)
    return max(1, math.ceil(math.ceil(n_examples / batch_size) * epochs))


@lru_cache(maxsize=64)
def _rows(path: str, mtime_ns: int, size: int) -> int | None:
    """Rows of a data file (cached while it is unchanged); None when it cannot be counted."""
    from ..samples import count_rows

    try:
        if path.lower().endswith(".parquet"):
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        return count_rows(path)
    except (OSError, ValueError, KeyError, TypeError, ImportError):  # unreadable: the job itself will say why
        return None


def train_rows(params: dict) -> tuple[int | None, str]:
    """(training examples the job's data holds, which data) — None for a Hub data set."""
    from ..tasks import TASKS

    source, used = resolve_data(params)
    if used["kind"] == "hub":
        return None, used["description"] + ": size unknown, the sample limits are used"
    task = TASKS[params["task"]]
    if source.get("train_file"):
        path = Path(source["train_file"])
    elif "train" in task.local_files:
        path = Path(source["data_dir"]) / task.local_files["train"]
    else:
        return None, used["description"] + ": no training file in this layout, the sample limits are used"
    try:
        st = path.stat()
    except OSError:
        return None, used["description"] + ": not found, the sample limits are used"
    rows = _rows(str(path), st.st_mtime_ns, st.st_size)
    return rows, used["description"] + ("" if rows is not None else ": rows not countable, the sample limits are used")


def _teacher_config(ref: str) -> dict | None:
    folder = alias_path(ref) or (ref if Path(ref).is_absolute() else None)
    try:
        return json.loads((Path(folder) / "config.json").read_text()) if folder else None
    except (OSError, ValueError):
        return None


def student_shape(p: dict) -> tuple[int, int, int, int] | None:
    """(layers, hidden, heads, ffn) the job's student will have; None when it
    depends on a teacher whose config is not on this machine (a Hub id)."""
    student = p["student"]
    if student in STUDENT_PRESETS:
        return STUDENT_PRESETS[student]
    if student == "custom":
        return p["layers"], p["hidden"], p["heads"], p["ffn"] or 4 * p["hidden"]
    k = parse_teacher_layers(student)
    cfg = _teacher_config(p["teacher"]) if k else _teacher_config(student)  # a checkpoint: its own config
    if not cfg:
        return None
    try:
        return (k or int(cfg["num_hidden_layers"]), int(cfg["hidden_size"]), int(cfg["num_attention_heads"]),
                int(p.get("prune_ffn") or cfg["intermediate_size"]))
    except (KeyError, TypeError, ValueError):
        return None


def student_label(p: dict) -> str:
    """The spec label a run card records (``hub.models.parse_student``'s label; a
    checkpoint's is its folder)."""
    if p["student"] == "custom":
        return f"custom-{p['layers']}l-{p['hidden']}"
    return p["student"]


def _teacher_needs_finetune(p: dict, teacher_trained: bool | None) -> bool:
    """Whether the job will fine-tune first: never for a task without a head
    (general distillation teaches a bare encoder); as told; else from the registry
    (a finished teacher of this server has its head; ``minilm-l6`` has none)."""
    from ..tasks import TASKS

    if not TASKS[p["task"]].head:
        return False
    if teacher_trained is not None:
        return not teacher_trained
    card = None
    if Path(p["teacher"]).is_absolute():
        from ..runs import read_card

        card = read_card(p["teacher"])
    return not (card and card.get("kind") == "teacher" and card.get("status") == "finished")


def estimate(params: dict, teacher_trained: bool | None = None, root: str | Path | None = None,
             jobs_root: str | Path | None = None) -> dict:
    """Seconds a job will take, with what the number rests on.

    ``params``: job parameters (``data`` optional: without it, the task's default
    data). The teacher must be an alias, a model name of this server or a Hub id
    (never a path: this is called with client input). ``teacher_trained``: True
    skips fine-tuning, False counts it, None decides from the registry (a Hub
    model counts it: it may lack a head). ``root``: the models folder whose runs
    give the training rates (default ``models_dir()``); ``jobs_root``: the queue
    folder whose finished jobs give the other phases' times.

    Returns ``seconds`` (the total), ``phases`` (name -> seconds, basis, source,
    in the order a job runs them; only those it runs), the training figures
    (``finetune_s``, ``distill_s``, their examples and ``rates``), ``overhead_s``
    and ``basis`` ("measured" when every phase was)."""
    from ..tasks import TASKS

    params = dict(params)
    task_name = params.get("task") or "sst2"
    if task_name not in TASKS or not TASKS[task_name].implemented:
        raise ValueError(f"task must be one of {[n for n, t in TASKS.items() if t.implemented]}")
    ready_base = teaches_as_it_is(task_name, params.get("teacher"))  # before the alias becomes its folder
    params["teacher"] = resolve_teacher(params.get("teacher"), task_name, allow_paths=False)
    p = validate_params(params, need_data=False)
    task = TASKS[p["task"]]
    if p["data"] or task.local_files:
        p["data"] = check_data(p["data"], task)
        rows, data_note = train_rows(p)
    else:
        rows, data_note = None, "no data chosen yet: the sample limits are used"
    n_ft = p["finetune_samples"] if rows is None else min(p["finetune_samples"], rows)
    n_kd = p["train_samples"] if rows is None else min(p["train_samples"], rows)
    n_eval = p["eval_samples"]

    def examples(n: int, epochs: float) -> float:  # one Trainer run: max_steps caps it
        cap = p["max_steps"] * p["batch_size"] if p["max_steps"] > 0 else math.inf
        return min(n * epochs, cap)

    rates = measured_rates(p["teacher"], student_label(p), student_shape(p), root, kind=task.kind,
                           max_length=p["max_length"],
                           arithmetic=(p["precision"], p["attention_dropout"]))  # validated above
    earlier = earlier_phases(p, jobs_root)
    finetune = _teacher_needs_finetune(p, teacher_trained)
    ft_examples = examples(n_ft, p["finetune_epochs"]) if finetune else 0
    # the distillation set after augmentation (validate_params lets only AUGMENT_KINDS augment) and cloze questions
    n_copies = round(n_kd * (1 + p["augment"] * AUGMENT_YIELD.get(task.kind, 0.0)))
    n_aug = n_copies + cloze_questions(p, n_kd)
    # a cloze job's intermediate stage trains on the questions before the cloze ones (hub.jobs.pipeline._cloze)
    kd_examples = sum(examples(n_copies if p["cloze"] and s == "intermediate" else n_aug, p["epochs"])
                      for s in p["stages"])
    phases: dict[str, dict] = {}
    if finetune:
        phases["finetune"] = {"seconds": round(ft_examples / rates["finetune"]["examples_per_s"], 1),
                              **_basis(rates["finetune"])}
    # a listed teacher's card holds its scores; a ready base teacher needs no fine-tuning but has none yet
    if task.head and (finetune or teacher_trained is not True or ready_base):
        phases["evaluate-teacher"] = _phase_seconds("evaluate-teacher", n_eval, earlier, task.kind)
    if p["augment"]:
        phases["augment"] = _phase_seconds("augment", n_kd, earlier, task.kind)
    if p["cloze"]:
        phases["cloze"] = _phase_seconds("cloze", n_aug, earlier, task.kind)
    if "prediction" in p["stages"] and p["alpha"] < 1.0 and task.kind in LOGIT_CACHING_KINDS:
        cached = None if finetune else cached_teacher_logits(p, jobs_root)
        phases["teacher-logits"] = (_cache_read(cached, n_aug) if cached else
                                    _phase_seconds("teacher-logits", n_aug, earlier, task.kind))
    phases["distill"] = {"seconds": round(kd_examples / rates["distill"]["examples_per_s"], 1),
                         **_basis(rates["distill"])}
    # general distillation scores the pair before and after training: 2 x (teacher + student) passes, about
    # 6 student passes at the default rates (the teacher takes twice the student's time)
    if p["calibrate_null"]:  # each real training question with its own paragraph and another article's
        phases["calibrate"] = _phase_seconds("calibrate", 2 * n_kd, earlier, task.kind)
    phases["evaluate"] = _phase_seconds("evaluate", n_eval if task.head else 6 * n_eval, earlier, task.kind)
    if p["benchmark"] and task.head:  # a bare encoder is benchmarked through the task it is distilled for
        phases["benchmark"] = _phase_seconds("benchmark", n_eval, earlier, task.kind)
    total = sum(ph["seconds"] for ph in phases.values()) + OVERHEAD_S
    return {
        "seconds": round(total, 1),
        "phases": phases,
        "finetune_s": phases.get("finetune", {}).get("seconds", 0.0),
        "distill_s": phases["distill"]["seconds"],
        "overhead_s": OVERHEAD_S,
        "finetune_examples": ft_examples,
        "distill_examples": kd_examples,
        "train_rows": rows,
        "unit": f"blocks of {p['max_length']} tokens" if task.kind in BLOCK_KINDS else "examples",
        "block_tokens": p["max_length"] if task.kind in BLOCK_KINDS else None,  # tokens per example of the unit
        "data": data_note,
        "rates": rates,
        "basis": MEASURED if all(ph["basis"] == MEASURED for ph in phases.values()) else DEFAULT_GUESS,
    }


def cloze_questions(p: dict, n_train: int) -> int:
    """How many cloze questions a QA job with ``cloze`` = k adds to its ``n_train``
    training questions: those about the paragraph files, counted (the files the
    job will read, :func:`hub.jobs.params.cloze_text_files`), about the
    training contexts, from :data:`CLOZE_TRAIN_YIELD`, and its ``negatives``
    copies of each training question."""
    if not p.get("cloze"):
        return 0
    from .params import cloze_text_files

    files, _ = cloze_text_files(p)
    a, b = CLOZE_TRAIN_YIELD
    return _cloze_file_questions(tuple(files), _mtimes(files), int(p["cloze"]), int(p["seed"])) + \
        round(n_train * (a + b * p["cloze"])) + n_train * int(p.get("negatives") or 0)


def _mtimes(files) -> tuple:
    return tuple(Path(f).stat().st_mtime_ns if Path(f).is_file() else None for f in files)


@lru_cache(maxsize=16)
def _cloze_file_questions(files: tuple, mtimes: tuple, per_context: int, seed: int) -> int:
    from ..cloze import cloze_transfer_set

    made, _ = cloze_transfer_set([], list(files), per_context, seed=seed)
    return len(made)


def _cache_read(cached: dict, n: float) -> dict:
    """The teacher-logit phase of a job whose windows an earlier job cached: a read (that
    job's, when it read them too, else :data:`CACHE_READ`), ``"cached"`` marking it."""
    if cached["seconds"] is not None:
        return {"seconds": round(cached["seconds"], 1), "basis": MEASURED, "source": cached["source"],
                "cached": True}
    rate, fixed = CACHE_READ
    return {"seconds": round(fixed + n / rate, 1), "basis": DEFAULT_GUESS, "cached": True,
            "source": f"default guess for reading the cache an earlier job wrote ({Path(cached['file']).name})"}


def _basis(rate: dict) -> dict:
    return {"basis": rate["basis"], "source": rate["source"]}
