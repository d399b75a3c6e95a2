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
  caching is scaled by its examples.
* Anything not measured here is ``DEFAULT_RATES`` / ``DEFAULT_PHASES``. The
  answer says which (``"basis": "measured"`` or ``"default guess"``, per phase).

No torch: config files are read as JSON.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..config import BLOCK_KINDS, LOGIT_CACHING_KINDS, STUDENT_PRESETS, parse_teacher_layers, teaches_as_it_is
from .params import check_data, resolve_data, validate_params
from .registry import alias_path, resolve_teacher, teacher_origin, trained_models

# The default guesses come from one Quick start measured end to end on a quiet AMD EPYC machine with
# 2 vCPUs, 2026-11-28 (sst2; minilm-l6 fine-tuned on 2,000 examples, teacher-layers:3 distilled on 4,000,
# one epoch each, 64 tokens, 872 eval examples; 5 min 10 s in all): fine-tuning 2,000 examples in 37 s;
# the intermediate stage 4,000 in 81 s and the prediction stage 4,000 in 60 s; caching the teacher's
# logits 4,000 in 61 s (batches in data order; sorted by length, a second Quick start the same day took
# 20.7 s for them, 4 min 11 s in all); the teacher's evaluation 10 s and the student's 5 s; the quick
# benchmark of both 37 s.
DEFAULT_RATES = {"finetune": 54.0, "distill": 57.0}  # training examples/s (distill: both stages, 8,000 in 141 s)
DEFAULT_PHASES = {  # phase -> (examples/s, fixed seconds); examples: eval set, or training set for caching
    "evaluate-teacher": (87.0, 0.0),  # 872 in 10 s
    "teacher-logits": (193.0, 0.0),  # 4,000 in 20.7 s (length-sorted batches)
    "evaluate": (174.0, 0.0),  # 872 in 5 s
    "benchmark": (58.0, 22.0),  # both models' quality pass (872 / 87 + 872 / 174 = 15 s) + 22 s of timing
    "augment": (500.0, 5.0),  # embedding proposals: 20,000 SST-2 sentences in 34 s (plus loading the teacher)
    "cloze": (20_000.0, 1.0),  # rule-made questions: 1,090 XQuAD + 3,027 WikiText-2 paragraphs in 0.5 s
}
# cloze questions about a QA job's training contexts, per training question, at k questions a paragraph: XQuAD's
# 1,090 questions have 215 contexts, which gave 215, 373 and 700 cloze questions at k = 1, 2, 4 (2026-12-05)
CLOZE_TRAIN_YIELD = (0.05, 0.15)  # a + b * k
# data augmentation keeps the distinct copies only, so the training set grows by this much per copy asked for:
# 58,362 of the 80,000 drawn for the first 20,000 SST-2 training sentences (4 a sentence); 3,786 of the 4,360
# drawn for the 1,090 XQuAD training questions (the teacher's embeddings, 2026-11-28)
AUGMENT_YIELD = {"classification": 0.73, "qa": 0.87}
# Extractive QA, in questions/s at the default 384-token window (a question is about one window; at 128 tokens
# it spans about 2.7 windows of a third the length: roughly the same cost). 2 vCPUs (Intel Xeon), 2026-12-05,
# the 1,090 XQuAD questions: minilm-l6 fine-tuned 5 epochs in 867 s (6.3/s); teacher-layers:3, the intermediate
# stage 5 epochs in 731 s and the prediction stage 5 epochs in 363 s (teacher logits cached): 10,900 question-
# passes in 1,093 s
KIND_RATES = {"qa": {"finetune": 6.3, "distill": 10.0}}
# Kinds that train on blocks of max_length tokens (BLOCK_KINDS) are estimated in tokens/s, converted to blocks/s at
# the job's block length. Default guesses from this machine: generation, an app job smollm2-135m -> teacher-layers:4,
# 32 blocks of 128 tokens in 46 s of training (88 tokens/s, quiet, 2026-11-28; the first step included); mlm,
# minilm-l6's MLM head, 320 blocks of 128 in about 620 s under load (66 tokens/s).
DEFAULT_TOKEN_RATES = {  # kind -> phase -> training tokens/s
    "generation": {"finetune": 88.0, "distill": 88.0},
    "mlm": {"finetune": 66.0, "distill": 66.0},
    "general": {"finetune": 66.0, "distill": 66.0},
}
# per-kind default guesses for the phases without steps (examples/s, fixed seconds) where a kind differs from
# sentences: generation scores 16 blocks of 128 with the 135M teacher in 57 s and times decoding (greedy, both
# models) in 111 s (the 32-block app job above)
KIND_PHASES = {"generation": {"evaluate-teacher": (0.28, 0.0), "evaluate": (4.0, 0.0), "benchmark": (0.3, 58.0)},
               # embedding proposals for the 1,090 XQuAD training questions: 10.7 s with loading (names: many
               # distinct words, each one nearest-neighbour search over the vocabulary)
               # the 1,407 dev-subset questions: the teacher in about 18 s, the student in 10 s; the teacher's logits
               # for the 1,119 training windows in about 17 s (2026-12-05, the runs of KIND_RATES)
               "qa": {"augment": (140.0, 3.0), "evaluate-teacher": (80.0, 0.0), "evaluate": (140.0, 0.0),
                      "teacher-logits": (65.0, 0.0)}}
OVERHEAD_S = 19.0  # the rest of the 5 min 10 s: the child process's start, imports and loading
MEASURED, DEFAULT_GUESS = "measured", "default guess"
MAX_EARLIER_JOBS = 200  # newest job folders read for phase timings


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


def measured_rates(teacher: str | None = None, student: str | None = None,
                   shape: tuple | None = None, root: str | Path | None = None,
                   kind: str | None = None, max_length: int | None = None) -> dict:
    """Training examples/s per phase: ``{"finetune": rate, "distill": rate}``, each
    ``{"examples_per_s", "basis", "source"}``. Only finished runs on this machine
    count (newest first): fine-tuning of the same base model; distillation from
    the same teacher origin into the same student spec, else into a student of
    the same ``shape``; else the default. With ``kind``, only runs of a task of that
    kind count (a QA window of 384 tokens trains far slower than an SST-2 sentence)."""
    from ..hardware import cpu_cores, cpu_model
    from ..tasks import TASKS

    here = (cpu_model(), cpu_cores())
    origin = teacher_origin(teacher)
    found: dict[str, tuple[int, float, str]] = {}  # phase -> (match rank, rate, source)

    def offer(phase: str, rank: int, rate: float, source: str) -> None:
        if phase not in found or rank > found[phase][0]:  # newest first: the first hit wins a tie
            found[phase] = (rank, rate, source)

    blocks = kind in BLOCK_KINDS and bool(max_length)
    for e in trained_models(root=root):
        card, rate = e.card, e.card.get("train_examples_per_s")
        hw = card.get("hardware") or {}
        if not rate or e.status != "finished" or (hw.get("cpu"), hw.get("cores")) != here:
            continue
        if kind is not None and card.get("task") in TASKS and TASKS[card["task"]].kind != kind:
            continue
        if blocks:  # its blocks/s at its own block length, as blocks/s at this job's
            try:
                rate = float(rate) * int(card["train"]["max_length"]) / int(max_length)
            except (KeyError, TypeError, ValueError):
                continue
        elif kind == "qa":  # the card counts windows, the estimate questions (a long context spans several windows)
            rate = _question_passes_per_s(card)
            if rate is None:
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
        default = KIND_RATES.get(kind, {}).get(phase, default)
        if blocks and kind in DEFAULT_TOKEN_RATES:
            default = DEFAULT_TOKEN_RATES[kind][phase] / int(max_length)  # blocks/s
        if phase in found:
            out[phase] = {"examples_per_s": found[phase][1], "basis": MEASURED, "source": found[phase][2]}
        else:
            out[phase] = {"examples_per_s": default, "basis": DEFAULT_GUESS,
                          "source": "default guess for a 2-core CPU (no earlier run like this one)"}
    return out


def _question_passes_per_s(card: dict) -> float | None:
    """A QA run's training questions per second: questions x epochs summed over its stages
    (fine-tuning is one; an intermediate stage on the first ``intermediate_train_samples``
    only counts those) over its training time; None when the card lacks any of them."""
    try:
        n, epochs, seconds = card["data"]["train_size"], card["train"]["epochs"], card["train_time_s"]
        n_inter = card.get("intermediate_train_samples") or n
        passes = sum(n_inter if s == "intermediate" else n for s in card.get("stages") or [None])
        return float(passes) * float(epochs) / float(seconds)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def job_key(p: dict) -> tuple:
    """What makes two jobs' non-training phases take about the same time: task,
    teacher origin, student, eval size and length."""
    return (p.get("task"), teacher_origin(p.get("teacher")), p.get("student"), p.get("layers"), p.get("hidden"),
            p.get("eval_samples"), p.get("max_length"))


def earlier_phases(p: dict, jobs_root: str | Path | None = None) -> dict[str, dict]:
    """Phase -> ``{"seconds", "examples", "source"}`` from the newest finished job
    like ``p`` (:func:`job_key`) on this machine that ran the phase (its
    ``result.json``: ``phases`` and ``hardware``). ``jobs_root`` defaults to the
    app's queue folder."""
    from ..hardware import cpu_cores, cpu_model
    from ..paths import hub_home

    root = Path(jobs_root) if jobs_root is not None else hub_home() / "jobs"
    try:
        folders = sorted((f for f in root.iterdir() if f.is_dir()), reverse=True)[:MAX_EARLIER_JOBS]  # ids sort by time
    except OSError:
        return {}
    here, key, out = {"cpu": cpu_model(), "cores": cpu_cores()}, job_key(p), {}
    for folder in folders:
        try:
            job = json.loads((folder / "job.json").read_text())
            result = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError):
            continue
        if result.get("status") != "finished" or result.get("hardware") != here \
                or job_key(job.get("params") or {}) != key:
            continue
        for phase, took in (result.get("phases") or {}).items():
            if phase not in out and isinstance(took, dict) and took.get("seconds"):
                out[phase] = {"seconds": float(took["seconds"]), "examples": int(took.get("examples") or 0),
                              "source": f"measured: job {job.get('name', folder.name)}"}
    return out


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


def _phase_seconds(phase: str, examples: float, earlier: dict[str, dict], kind: str | None = None) -> dict:
    """One non-training phase's seconds: an earlier job's (caching scaled by its
    examples), else the default guess."""
    seen = earlier.get(phase)
    scaled = phase in ("teacher-logits", "augment")  # their time grows with the training set
    if seen and (not scaled or seen["examples"]):
        seconds = seen["seconds"] * (examples / seen["examples"] if scaled else 1.0)
        return {"seconds": round(seconds, 1), "basis": MEASURED, "source": seen["source"]}
    rate, fixed = KIND_PHASES.get(kind, {}).get(phase, DEFAULT_PHASES[phase])
    return {"seconds": round(fixed + examples / rate, 1), "basis": DEFAULT_GUESS,
            "source": "default guess for a 2-core CPU (no earlier job like this one)"}


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
                           max_length=p["max_length"])
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
        phases["teacher-logits"] = _phase_seconds("teacher-logits", n_aug, earlier, task.kind)
    phases["distill"] = {"seconds": round(kd_examples / rates["distill"]["examples_per_s"], 1),
                         **_basis(rates["distill"])}
    # general distillation scores the pair before and after training: 2 x (teacher + student) passes, about
    # 6 student passes at the default rates (the teacher takes twice the student's time)
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
    job will read, :func:`hub.jobs.params.cloze_text_files`), and about the
    training contexts, from :data:`CLOZE_TRAIN_YIELD`."""
    if not p.get("cloze"):
        return 0
    from .params import cloze_text_files

    files, _ = cloze_text_files(p)
    a, b = CLOZE_TRAIN_YIELD
    return _cloze_file_questions(tuple(files), _mtimes(files), int(p["cloze"]), int(p["seed"])) + \
        round(n_train * (a + b * p["cloze"]))


def _mtimes(files) -> tuple:
    return tuple(Path(f).stat().st_mtime_ns if Path(f).is_file() else None for f in files)


@lru_cache(maxsize=16)
def _cloze_file_questions(files: tuple, mtimes: tuple, per_context: int, seed: int) -> int:
    from ..cloze import cloze_transfer_set

    made, _ = cloze_transfer_set([], list(files), per_context, seed=seed)
    return len(made)


def _basis(rate: dict) -> dict:
    return {"basis": rate["basis"], "source": rate["source"]}
