"""How long a job will take, before it starts: examples x epochs (x stages) ÷
examples per second, plus a fixed overhead.

* **Examples** come from the data actually chosen: the uploaded or local
  training file's row count, capped by the job's sample limits (and by
  ``max_steps`` x batch size); a Hub data set's size is unknown here, so the
  limits are taken as they are.
* **Rates** are the Trainer's own measured ``train_examples_per_s`` in the
  ``run.json`` of earlier finished runs on this machine (same CPU model and
  core count): fine-tuning from the same base model; distillation from the same
  teacher into the same student spec, else into the same student shape, else
  ``DEFAULT_RATES``. The answer says which (``"basis": "measured"`` or
  ``"default guess"``).

No torch: config files are read as JSON.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..config import STUDENT_PRESETS, parse_teacher_layers
from .params import check_data, resolve_data, validate_params
from .registry import alias_path, resolve_teacher, teacher_origin, trained_models

# examples/s for minilm-l6 at max_length 128 on a 2-core CPU (measured in this
# project: fine-tuning ~80 ex/s; a 3-layer student's distillation stages ~120).
DEFAULT_RATES = {"finetune": 80.0, "distill": 120.0}
OVERHEAD_S = 30.0  # the child process's imports, loading, evaluation and the quick benchmark
MEASURED, DEFAULT_GUESS = "measured", "default guess"


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
    cfg = _teacher_config(p["teacher"]) if k else None
    if not cfg:
        return None
    try:
        return k, int(cfg["hidden_size"]), int(cfg["num_attention_heads"]), int(cfg["intermediate_size"])
    except (KeyError, TypeError, ValueError):
        return None


def student_label(p: dict) -> str:
    """The spec label a run card records (``hub.models.parse_student``'s label)."""
    if p["student"] == "custom":
        return f"custom-{p['layers']}l-{p['hidden']}"
    return p["student"]


def measured_rates(teacher: str | None = None, student: str | None = None,
                   shape: tuple | None = None, root: str | Path | None = None) -> dict:
    """Training examples/s per phase: ``{"finetune": rate, "distill": rate}``, each
    ``{"examples_per_s", "basis", "source"}``. Only finished runs on this machine
    count (newest first): fine-tuning of the same base model; distillation from
    the same teacher origin into the same student spec, else into a student of
    the same ``shape``; else the default."""
    from ..hardware import cpu_cores, cpu_model

    here = (cpu_model(), cpu_cores())
    origin = teacher_origin(teacher)
    found: dict[str, tuple[int, float, str]] = {}  # phase -> (match rank, rate, source)

    def offer(phase: str, rank: int, rate: float, source: str) -> None:
        if phase not in found or rank > found[phase][0]:  # newest first: the first hit wins a tie
            found[phase] = (rank, rate, source)

    for e in trained_models(root=root):
        card, rate = e.card, e.card.get("train_examples_per_s")
        hw = card.get("hardware") or {}
        if not rate or e.status != "finished" or (hw.get("cpu"), hw.get("cores")) != here:
            continue
        if e.role == "teacher":
            if origin is not None and card.get("base_model") == origin:
                offer("finetune", 2, float(rate), f"measured: {e.key}, same base model")
            continue
        s = card.get("student") or {}
        same_teacher = origin is not None and teacher_origin(card.get("teacher")) == origin
        if same_teacher and student is not None and s.get("spec") == student:
            offer("distill", 2, float(rate), f"measured: {e.key}, same teacher and student")
        elif shape is not None and (s.get("layers"), s.get("hidden"), s.get("heads"), s.get("ffn")) == tuple(shape):
            offer("distill", 1, float(rate), f"measured: {e.key}, same student shape")
    out = {}
    for phase, default in DEFAULT_RATES.items():
        if phase in found:
            out[phase] = {"examples_per_s": found[phase][1], "basis": MEASURED, "source": found[phase][2]}
        else:
            out[phase] = {"examples_per_s": default, "basis": DEFAULT_GUESS,
                          "source": "default guess for a 2-core CPU (no earlier run like this one)"}
    return out


def _teacher_needs_finetune(p: dict, teacher_trained: bool | None) -> bool:
    """Whether the job will fine-tune first: as told, else from the registry (a
    finished teacher of this server has its head; ``minilm-l6`` has none)."""
    if teacher_trained is not None:
        return not teacher_trained
    card = None
    if Path(p["teacher"]).is_absolute():
        from ..runs import read_card

        card = read_card(p["teacher"])
    return not (card and card.get("kind") == "teacher" and card.get("status") == "finished")


def estimate(params: dict, teacher_trained: bool | None = None, root: str | Path | None = None) -> dict:
    """Seconds a job will take, with what the number rests on.

    ``params``: job parameters (``data`` optional: without it, the task's default
    data). The teacher must be an alias, a model name of this server or a Hub id
    (never a path: this is called with client input). ``teacher_trained``: True
    skips fine-tuning, False counts it, None decides from the registry (a Hub
    model counts it: it may lack a head). ``root``: the models folder whose runs
    give the rates (default ``models_dir()``)."""
    from ..tasks import TASKS

    params = dict(params)
    task_name = params.get("task") or "sst2"
    if task_name not in TASKS or not TASKS[task_name].implemented:
        raise ValueError(f"task must be one of {[n for n, t in TASKS.items() if t.implemented]}")
    params["teacher"] = resolve_teacher(params.get("teacher"), task_name, allow_paths=False)
    p = validate_params(params, need_data=False)
    if p["data"] or TASKS[p["task"]].local_files:
        p["data"] = check_data(p["data"], TASKS[p["task"]])
        rows, data_note = train_rows(p)
    else:
        rows, data_note = None, "no data chosen yet: the sample limits are used"
    n_ft = p["finetune_samples"] if rows is None else min(p["finetune_samples"], rows)
    n_kd = p["train_samples"] if rows is None else min(p["train_samples"], rows)

    def examples(n: int, epochs: float) -> float:  # one Trainer run: max_steps caps it
        cap = p["max_steps"] * p["batch_size"] if p["max_steps"] > 0 else math.inf
        return min(n * epochs, cap)

    rates = measured_rates(p["teacher"], student_label(p), student_shape(p), root)
    finetune = _teacher_needs_finetune(p, teacher_trained)
    ft_examples = examples(n_ft, p["finetune_epochs"]) if finetune else 0
    kd_examples = examples(n_kd, p["epochs"]) * len(p["stages"])
    ft_s = ft_examples / rates["finetune"]["examples_per_s"]
    kd_s = kd_examples / rates["distill"]["examples_per_s"]
    used = [rates["distill"]] + ([rates["finetune"]] if finetune else [])
    return {
        "seconds": round(ft_s + kd_s + OVERHEAD_S, 1),
        "finetune_s": round(ft_s, 1),
        "distill_s": round(kd_s, 1),
        "overhead_s": OVERHEAD_S,
        "finetune_examples": ft_examples,
        "distill_examples": kd_examples,
        "train_rows": rows,
        "data": data_note,
        "rates": rates,
        "basis": MEASURED if all(r["basis"] == MEASURED for r in used) else DEFAULT_GUESS,
    }
