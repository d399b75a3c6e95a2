"""What a job's cost estimate (``hub.jobs.estimate``) rests on: the default
guesses (training rates, phase times, the yields of augmentation and cloze
questions, the fixed overhead), each with where it was measured, and what
earlier work on this machine measured: training rates from the run cards of
finished runs, phase seconds from the ``result.json`` of finished jobs like
this one.

No torch: run cards and job files are read as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import BLOCK_KINDS, LATER_TRAIN_SETTINGS, card_train_settings
from .registry import teacher_origin, trained_models


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
    "rescore": (174.0, 0.0),  # a calibrated model scored again: as "evaluate"
    "select": (174.0, 0.0),  # a greedy soup's passes over its selection file (examples: passes x size): as "evaluate"
    "benchmark": (58.0, 22.0),  # both models' quality pass (872 / 87 + 872 / 174 = 15 s) + 22 s of timing
    "augment": (500.0, 5.0),  # embedding proposals: 20,000 SST-2 sentences in 34 s (plus loading the teacher)
    "cloze": (20_000.0, 1.0),  # rule-made questions: 1,090 XQuAD + 3,027 WikiText-2 paragraphs in 0.5 s
    "calibrate": (58.0, 0.0),  # a teacher and a student pass over each pair: 1 / (1/87 + 1/174), as evaluating both
    # a soup: loading and averaging its ingredients' weights (examples: ingredients); the QA soups of 8-26 students
    # of 65.8 MB took about 40 s with their evaluation of 10 s (2026-12-06): about 1 s an ingredient
    "soup": (1.0, 2.0),
}
# reading cached teacher logits instead of the teacher's pass (examples/s, fixed seconds): the CLI read 16,566 QA
# windows' logits (a 98 MB file) in 1.8-2.0 s, 2 vCPUs (Intel Xeon), 2026-12-07
CACHE_READ = (8_000.0, 0.5)
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
                      "teacher-logits": (65.0, 0.0), "calibrate": (51.0, 0.0),
                      "rescore": (140.0, 0.0), "select": (140.0, 0.0)}}  # calibrate: 1 / (1/80 + 1/140)
# The fast arithmetic (--precision bf16 --attention-dropout 0) against fp32 with the model's own attention dropout,
# measured on this 2-vCPU Intel Xeon with AMX-BF16 (2026-12-06; README "Training speed on this CPU, twelfth
# session"): QA, whole prediction-stage runs of the recipe in 732-861 s against 1,574-1,854 s (2.16x, means);
# SST-2, bench-distill's two stages at 258.8 / 211.4 examples/s against 174.6 / 194.2 (1.27x for both). Applied to
# the distillation guess where the CPU multiplies bf16 natively (elsewhere bf16 is emulated, slower than fp32);
# fine-tuning and the other kinds were not measured so and keep the fp32 guess.
FAST_ARITHMETIC = ("bf16", 0.0)
FAST_SPEEDUP = {"qa": {"distill": 2.16}, "classification": {"distill": 1.27}}
OVERHEAD_S = 19.0  # the rest of the 5 min 10 s: the child process's start, imports and loading
MEASURED, DEFAULT_GUESS = "measured", "default guess"
MAX_EARLIER_JOBS = 200  # newest job folders read for phase timings


def measured_rates(teacher: str | None = None, student: str | None = None,
                   shape: tuple | None = None, root: str | Path | None = None,
                   kind: str | None = None, max_length: int | None = None,
                   arithmetic: tuple = ("fp32", None)) -> dict:
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
        train = card_train_settings(card) or LATER_TRAIN_SETTINGS
        if (train["precision"], train["attention_dropout"]) != tuple(arithmetic):
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
            out[phase] = {"basis": DEFAULT_GUESS, **_default_guess(default, kind, phase, tuple(arithmetic))}
    return out


def _default_guess(fp32_rate: float, kind: str | None, phase: str, arithmetic: tuple) -> dict:
    """The default rate of a phase for a job trained with ``arithmetic``: the fp32 guess, times the
    speed-up measured for the fast arithmetic where it applies (:data:`FAST_SPEEDUP`)."""
    from ..hardware import cpu_bf16

    source = "default guess for a 2-core CPU (no earlier run like this one)"
    if tuple(arithmetic) == ("fp32", None):
        return {"examples_per_s": fp32_rate, "source": source}
    factor = FAST_SPEEDUP.get(kind, {}).get(phase)
    native = cpu_bf16()
    if arithmetic == FAST_ARITHMETIC and factor and native:
        return {"examples_per_s": round(fp32_rate * factor, 2),
                "source": f"default guess for a 2-core CPU, x{factor:g} for bf16 without attention dropout "
                          "(measured on a CPU with AMX-BF16; no earlier run like this one)"}
    why = ("bf16 is emulated on this CPU: expect it slower" if arithmetic[0] == "bf16" and not native
           else "no speed-up measured for these settings")
    return {"examples_per_s": fp32_rate,
            "source": f"default guess for a 2-core CPU training in fp32 (no earlier run like this one; {why})"}


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


def _finished_jobs(jobs_root: str | Path | None):
    """(name, params, result) of the newest :data:`MAX_EARLIER_JOBS` jobs that finished
    on this machine (same CPU model and cores), newest first. ``jobs_root`` defaults
    to the app's queue folder."""
    from ..hardware import cpu_cores, cpu_model
    from ..paths import hub_home

    root = Path(jobs_root) if jobs_root is not None else hub_home() / "jobs"
    try:
        folders = sorted((f for f in root.iterdir() if f.is_dir()), reverse=True)[:MAX_EARLIER_JOBS]  # ids sort by time
    except OSError:
        return
    here = {"cpu": cpu_model(), "cores": cpu_cores()}
    for folder in folders:
        try:
            job = json.loads((folder / "job.json").read_text())
            result = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError):
            continue
        if result.get("status") == "finished" and result.get("hardware") == here:
            yield job.get("name", folder.name), job.get("params") or {}, result


def earlier_phases(p: dict, jobs_root: str | Path | None = None) -> dict[str, dict]:
    """Phase -> ``{"seconds", "examples", "source"}`` from the newest finished job
    like ``p`` (:func:`job_key`) on this machine that ran the phase (its
    ``result.json``: ``phases`` and ``hardware``). ``jobs_root`` defaults to the
    app's queue folder. A teacher-logit phase that read an earlier job's cache is
    left out: its seconds say nothing of a pass over new examples."""
    key, out = job_key(p), {}
    for name, params, result in _finished_jobs(jobs_root):
        if job_key(params) != key:
            continue
        for phase, took in (result.get("phases") or {}).items():
            if phase not in out and isinstance(took, dict) and took.get("seconds") and not took.get("read"):
                out[phase] = {"seconds": float(took["seconds"]), "examples": int(took.get("examples") or 0),
                              "source": f"measured: job {name}"}
    return out


# What makes two jobs' distillation sets the same windows, for the teacher-logit cache (hub.teacher_cache keys a
# file by the teacher's weights and the encoded windows): the seed also draws augmented copies and cloze questions
WINDOW_PARAMS = ("task", "teacher", "data", "text_column", "label_column", "train_samples", "max_length", "augment",
                 "cloze", "cloze_noise", "negatives")


def window_key(p: dict) -> tuple:
    """Two jobs with the same key distil on the same windows: ``teacher`` is the one that
    taught (a folder, resolved: the queue and the estimate name it alike)."""
    teacher = p.get("teacher")
    if isinstance(teacher, str) and Path(teacher).is_absolute():
        p = {**p, "teacher": str(Path(teacher).resolve())}
    key = tuple(json.dumps(p.get(k), sort_keys=True) for k in WINDOW_PARAMS)
    return key + ((p.get("seed"),) if p.get("augment") or p.get("cloze") else ())


def cached_teacher_logits(p: dict, jobs_root: str | Path | None = None) -> dict | None:
    """The teacher-logit cache file the newest finished job on this machine with ``p``'s
    windows (:func:`window_key`) wrote or read, while that file is still there (the
    cache folder evicts the least recently used): ``{"file", "seconds"}`` — seconds of
    that job's read (hashing and loading, from its run card), None when it wrote the
    file — with ``"source"``; else None. The earlier job's teacher is the one that
    taught: a job that fine-tuned its teacher cached that teacher's logits, which a
    job distilling from that teacher reads. For a job whose teacher is not fine-tuned
    first (its weights would be new)."""
    key = window_key(p)
    for name, params, result in _finished_jobs(jobs_root):
        took = (result.get("phases") or {}).get("teacher-logits")
        if not isinstance(took, dict) or not took.get("cache_file"):
            continue
        taught = (result.get("teacher") or {}).get("path") or params.get("teacher")  # the job's fine-tuned one
        if window_key({**params, "teacher": taught}) != key:
            continue
        if Path(took["cache_file"]).is_file():
            return {"file": took["cache_file"], "seconds": float(took["seconds"]) if took.get("read") else None,
                    "source": f"measured: job {name}, whose cached teacher logits these windows read"}
    return None


def _phase_seconds(phase: str, examples: float, earlier: dict[str, dict], kind: str | None = None) -> dict:
    """One non-training phase's seconds: an earlier job's (caching scaled by its
    examples), else the default guess."""
    seen = earlier.get(phase)
    # their time grows with their examples
    scaled = phase in ("teacher-logits", "augment", "calibrate", "soup", "select")
    if seen and (not scaled or seen["examples"]):
        seconds = seen["seconds"] * (examples / seen["examples"] if scaled else 1.0)
        return {"seconds": round(seconds, 1), "basis": MEASURED, "source": seen["source"]}
    rate, fixed = KIND_PHASES.get(kind, {}).get(phase, DEFAULT_PHASES[phase])
    return {"seconds": round(fixed + examples / rate, 1), "basis": DEFAULT_GUESS,
            "source": "default guess for a 2-core CPU (no earlier job like this one)"}
