"""What a job does, inside its child process (``hub.jobs.runner``):

1. fine-tune the teacher when it has no trained head for the task;
2. distill it into the student (``hub.distill``: the stages, checkpoints, cancel);
3. benchmark teacher and student with the quick protocol in a *fresh* process
   (``python -m hub.jobs.pipeline bench SPEC``: no training threads or
   allocator state of this one in the timings) and store the rows.

Models go to ``models_dir()/<job name>/{teacher,student}``. The job's status is
read from the run cards, never guessed: a stop that arrives after the last
step leaves a finished model, and the job says finished. Stopped or failed
models get an unranked leaderboard row copied from their final card.

``dry_run`` validates a job and reports its data and plan without training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..paths import models_dir, teacher_cache_dir, write_text_atomic
from ..runs import read_card
from .estimate import earlier_phases, plan_steps, train_rows
from .params import resolve_data, validate_params
from .registry import short_name, store_card_rows

FINISHED, STOPPED = "finished", "stopped"
GENERAL_BENCH = ("a general-distillation student has no task head to score; it is benchmarked through the task "
                 "it is distilled for (distill it on that task with it as the student, then benchmark that student)")
BENCH_SPEC, BENCH_ROWS = "bench.json", "bench_rows.json"
ROW_SUMMARY = ("row_id", "name", "role", "status", "protocol", "accuracy", "f1", "retention", "agreement",
               "latency_p50_ms", "speedup_p50")


def summary(folder: str | Path) -> dict | None:
    """What the result says about one model, from its run card."""
    card = read_card(folder)
    if card is None:
        return None
    return {"key": short_name(folder), "path": str(folder), "status": card.get("status"), "eval": card.get("eval"),
            "params": card.get("params"), "wall_time_s": card.get("wall_time_s"),
            "train_examples_per_s": card.get("train_examples_per_s")}


def run_job(ctx) -> dict:
    """Fine-tune if needed, distill, benchmark; returns the job's result."""
    from ..config import STAGES, TrainConfig
    from ..data import DataSource
    from ..distill import DistillConfig, distill, kind_stages
    from ..training import finetune
    from ..kinds import get_kind
    from ..models import load_model, parse_student
    from ..tasks import get_task

    p = validate_params(ctx.params)
    task, out = get_task(p["task"]), models_dir() / ctx.name
    kind = get_kind(task)
    spec = parse_student(p["student"], p["layers"], p["hidden"], p["heads"], p["ffn"], p["prune_ffn"])
    source_kw, used = resolve_data(p)
    source = DataSource(**source_kw)
    ctx.event("data", **used)
    ctx.log(f"data: {used['description']}")
    if kind_stages(kind) != STAGES:  # validate_params kept the ticked stages this kind has, else its own
        ctx.log(f"task {task.name} runs only the {', '.join(kind_stages(kind))} stage: "
                + getattr(kind, "stages_reason", "its kind has no other"))
    # phases without steps get the time an earlier job like this one took as their ETA (caching measures its own)
    ctx.expected_s = {k: v["seconds"] for k, v in earlier_phases(p, ctx.folder.parent).items()
                      if k not in ("teacher-logits", "calibrate")}  # their time depends on the data: they measure their own
    result: dict = {"name": ctx.name, "status": FINISHED, "data": used, "teacher": None, "student": None, "rows": []}

    def cfg(epochs: float, lr: float | None) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=p["batch_size"], learning_rate=lr, max_length=p["max_length"],
                           seed=p["seed"], save_steps=p["save_steps"], max_steps=p["max_steps"],
                           precision=p.get("precision", "fp32"), attention_dropout=p.get("attention_dropout"))

    n_inter: int | None = None  # a cloze job's intermediate stage: its training questions only (see _cloze)

    def set_plan(n_kd: int, n_ft: int | None = None) -> None:  # the phases with steps: fine-tuning, then the stages
        ft = [] if n_ft is None else [("finetune", plan_steps(n_ft, p["finetune_epochs"], p["batch_size"], p["max_steps"]))]
        sizes = {s: n_inter if n_inter is not None and s == "intermediate" else n_kd for s in p["stages"]}
        ctx.set_plan(ft + [(s, plan_steps(n, p["epochs"], p["batch_size"], p["max_steps"])) for s, n in sizes.items()])

    if ctx.cancel.is_set():
        return {**result, "status": STOPPED}  # stopped while starting: nothing was written
    ctx.log(f"loading teacher {short_name(p['teacher'])} ...")
    teacher_model, trained = load_model(p["teacher"], task)
    teacher_ref = p["teacher"]
    if trained:
        kd_data = kind.load_data(task, source, max_train=p["train_samples"], max_eval=p["eval_samples"],
                                 reference=teacher_model)
        del teacher_model
        _check_made_questions(p, kd_data)
        if p["augment"]:
            _augment(ctx, task, p, kd_data, teacher_ref)
        if p["cloze"]:
            n_inter = _cloze(ctx, p, kd_data)
        n_kd = _train_size(kd_data, p["train_samples"])
        result["teacher"] = summary(teacher_ref) if Path(teacher_ref).is_dir() else None
        set_plan(n_kd)
    else:
        del teacher_model
        ft_data = kind.load_data(task, source, max_train=p["finetune_samples"], max_eval=p["eval_samples"])
        if p["calibrate_null"] or p["negatives"]:  # the distillation's questions (its own prefix of the source),
            # refused before the teacher's minutes of fine-tuning
            _check_made_questions(p, kind.load_data(task, source, max_train=p["train_samples"],
                                                    max_eval=p["eval_samples"]))
        n_ft = _train_size(ft_data, p["finetune_samples"])
        rows, _ = train_rows(p)
        n_kd = p["train_samples"] if rows is None else min(rows, p["train_samples"])
        set_plan(n_kd, n_ft)
        if ctx.cancel.is_set():
            return {**result, "status": STOPPED}
        teacher_dir = out / "teacher"
        ctx.output("teacher", teacher_dir)
        ctx.log(f"{short_name(p['teacher'])} has no trained {task.name} head: fine-tuning it on {n_ft:,} examples ...")
        try:
            finetune(task, p["teacher"], ft_data, str(teacher_dir),
                     cfg(p["finetune_epochs"], p["finetune_learning_rate"]), progress=ctx.progress, cancel=ctx.cancel)
        finally:
            result["teacher"] = summary(teacher_dir)
        status = (result["teacher"] or {}).get("status")
        if status != FINISHED:
            result["status"] = status or "failed"
            result["rows"] = store_card_rows([teacher_dir], task.name)
            return result
        teacher_ref = str(teacher_dir)
        del ft_data
        ctx.phase("loading")
        reference, _ = load_model(teacher_ref, task)  # its labels fix the distillation data's label ids
        kd_data = kind.load_data(task, source, max_train=p["train_samples"], max_eval=p["eval_samples"],
                                 reference=reference)
        del reference
        if p["augment"]:
            _augment(ctx, task, p, kd_data, teacher_ref)
        if p["cloze"]:
            n_inter = _cloze(ctx, p, kd_data)
        if p["augment"] or p["cloze"]:
            set_plan(_train_size(kd_data, n_kd), n_ft)  # the copies or cloze questions grow the distillation

    ctx.log(f"data: {_train_size(kd_data, 0):,} training / {_eval_size(kd_data):,} evaluation examples for distillation")
    if ctx.cancel.is_set():
        return {**result, "status": STOPPED}
    student_dir = out / "student"
    ctx.output("student", student_dir)
    ctx.log(f"distilling into {spec.label} ({', '.join(p['stages'])}) ...")
    dcfg = DistillConfig(stages=tuple(p["stages"]), temperature=p["temperature"], alpha=p["alpha"],
                         intermediate_train_samples=n_inter,
                         negative_target="teacher" if p["negatives"] else "label")
    try:
        distill(task, teacher_ref, spec, kd_data, str(student_dir), cfg(p["epochs"], p["learning_rate"]), dcfg,
                progress=ctx.progress, cancel=ctx.cancel, teacher_cache=teacher_cache_dir(),
                calibrate_null=p["calibrate_null"])
    finally:
        result["student"] = summary(student_dir)
        cached = (read_card(student_dir) or {}).get("teacher_cache") or {}
        if cached.get("file") and "teacher-logits" in ctx.phases:  # the next job on these windows reads it
            took = ctx.phases["teacher-logits"]
            took.setdefault("cache_file", cached["file"])
            if cached.get("reused") and cached.get("time_s") is not None:  # hashing and reading, as the card
                took["seconds"] = float(cached["time_s"])  # timed them (the phase's events came after both)
    status = (result["student"] or {}).get("status") or "failed"
    result["status"] = status  # the card says, not the cancel flag: a stop after the last step finished
    if status != FINISHED:
        result["rows"] = store_card_rows([student_dir], task.name, teacher_ref)
        return result
    if ctx.cancel.is_set():
        ctx.log("stop requested after training ended: the models are finished; the benchmark is skipped")
        result["benchmark"] = "skipped: stop requested"
    elif p["benchmark"] and not task.head:
        ctx.log(f"no benchmark: {GENERAL_BENCH}")
        result["benchmark"] = "skipped: a student without a task head"
    elif p["benchmark"]:
        result["rows"] = benchmark_in_child(ctx, task.name, teacher_ref, [str(student_dir)], source_kw,
                                            p["eval_samples"], result)
    return result


def _augment(ctx, task, p: dict, data, teacher_ref: str) -> None:
    """TinyBERT data augmentation of a job's training examples, in place: the originals,
    then up to ``p["augment"]`` copies each of the sentence (classification) or question
    (QA) with words replaced by the teacher's nearest input-embedding words
    (``hub.augment``); the run card records it. ``validate_params`` has set the job's
    alpha to 0: the copies are learned from soft labels."""
    from ..augment import AugmentConfig, augment_data

    n = _train_size(data, 0)
    ctx.phase("augment", 0, n)
    ctx.log(f"augmenting {n:,} training examples: up to {p['augment']} copies each, words proposed by the "
            "teacher's input embeddings; the prediction stage learns from soft labels only (alpha 0)")
    summary = augment_data(task, data, ("embeddings", teacher_ref), AugmentConfig(per_example=p["augment"],
                           seed=p["seed"]), progress=ctx.log)
    ctx.log(f"augmented: {summary['originals']:,} examples + {summary['augmented']:,} copies in {summary['time_s']:.0f} s")


def _cloze(ctx, p: dict, data) -> int | None:
    """A QA job's training questions made a cloze transfer set, in place (``hub.cloze``):
    ``p["cloze"]`` questions a paragraph about the training contexts and WikiText-2's
    paragraphs (:func:`hub.jobs.params.cloze_text_files`), a share ``p["cloze_noise"]``
    of them noisy, and ``p["negatives"]`` unanswerable copies of each training question;
    the run card records it.
    Returns n when the intermediate stage is to train on the first n questions
    (those before the cloze questions), else None: the intermediate stage learned
    nothing from the cloze paragraphs and is the slower one (measured, README)."""
    from ..cloze import cloze_data, describe_contexts
    from .params import cloze_text_files

    files, described = cloze_text_files(p)
    ctx.phase("cloze")
    noisy = f", {p['cloze_noise']:.0%} of them in the noisy form" if p["cloze_noise"] else ""
    negatives = (f"; {p['negatives']} unanswerable cop{'y' if p['negatives'] == 1 else 'ies'} of each training "
                 "question with another article's paragraph, taught by the teacher alone") if p["negatives"] else ""
    ctx.log(f"cloze questions: {p['cloze']} a paragraph about the training contexts and {described}{noisy}{negatives}")
    summary = cloze_data(data, files, per_context=p["cloze"], seed=p["seed"], noise=p["cloze_noise"],
                         negatives=p["negatives"])
    ctx.end_phase()
    made = "made questions" if p["negatives"] else "cloze questions"  # the negatives are no cloze questions
    ctx.log(f"cloze: {summary['originals']:,} training questions + {summary['augmented']:,} {made} "
            f"({describe_contexts(summary['contexts'])}) in {summary['time_s']:.1f} s")
    if "intermediate" not in p["stages"] or not summary["augmented"]:
        return None
    ctx.log(f"the intermediate stage trains on the {summary['originals']:,} training questions, the prediction "
            "stage on them and the cloze questions")
    return summary["originals"]


def _check_made_questions(p: dict, data) -> None:
    """A job that calibrates its student's "no answer" (``calibrate_null``) or makes negatives
    is refused before any training when its distillation questions cannot be calibrated on
    (made ones only, one article) or paired with another article's paragraph (one title)."""
    if p["calibrate_null"]:
        from ..null_calibration import calibration_questions

        calibration_questions(data.train)
    if p["negatives"]:
        from ..cloze import negative_sources

        negative_sources(data.train)


def _train_size(data, default: int) -> int:
    return int((getattr(data, "source", None) or {}).get("train_size") or default)


def _eval_size(data) -> int:
    return int((getattr(data, "source", None) or {}).get("eval_size") or 0)


def benchmark_in_child(ctx, task: str, teacher_ref: str, models: list[str], source_kw: dict, eval_samples: int,
                       result: dict) -> list[dict]:
    """Run the quick benchmark in a fresh process; returns the stored rows' summaries.
    A failed benchmark leaves the models as they are (finished, unbenchmarked)."""
    spec = {"task": task, "teacher": teacher_ref, "models": models, "data": source_kw, "eval_samples": eval_samples,
            "names": {ref: short_name(ref) for ref in [teacher_ref, *models]},
            "rows_file": str(ctx.folder / BENCH_ROWS)}
    spec_path = ctx.folder / BENCH_SPEC
    spec_path.write_text(json.dumps(spec, indent=1))
    ctx.phase("benchmark")
    ctx.log("benchmarking teacher and student in a fresh process (quick protocol) ...")
    code = ctx.run_child([sys.executable, "-m", "hub.jobs.pipeline", "bench", str(spec_path)])
    ctx.end_phase()
    if code != 0 or not Path(spec["rows_file"]).is_file():
        why = "stopped" if ctx.cancel.is_set() else f"failed (exit code {code})"
        ctx.log(f"benchmark {why}: the models are kept, without leaderboard timings")
        result["benchmark"] = why
        return []
    rows = json.loads(Path(spec["rows_file"]).read_text())
    result["benchmark"] = "quick"
    ctx.log(f"leaderboard: {len(rows)} row(s) added")
    return rows


def bench_main(spec_path: str) -> int:
    """The benchmark process: measure, store the rows, write their summaries."""
    from ..benchmark import Protocol, load_for_bench, run_benchmark
    from ..data import DataSource
    from ..kinds import get_kind
    from ..leaderboard import LeaderboardStore
    from ..tasks import get_task

    spec = json.loads(Path(spec_path).read_text())
    task = get_task(spec["task"])
    reference, _, _ = load_for_bench(spec["teacher"], task)
    data = get_kind(task).load_data(task, DataSource(**spec["data"]), max_eval=spec["eval_samples"],
                                    need_train=False, reference=reference)
    del reference
    rows = run_benchmark(task, spec["models"], teacher=spec["teacher"], data=data, protocol=Protocol.quick(),
                         log=lambda m: print(m, flush=True), names=spec["names"])
    LeaderboardStore().add_rows(rows)
    write_text_atomic(spec["rows_file"], json.dumps([{k: r.get(k) for k in ROW_SUMMARY} for r in rows], default=str))
    return 0


def dry_run(ctx) -> dict:
    """Check a job without training: its settings, its data (rows counted) and
    the plan of phases; the result says what a real run would do."""
    p = validate_params(ctx.params)
    _, used = resolve_data(p)
    rows, _ = train_rows(p)
    ctx.event("data", **used)
    ctx.log(f"dry run: data: {used['description']}" + (f", {rows:,} training rows" if rows is not None else ""))
    n_kd = p["train_samples"] if rows is None else min(rows, p["train_samples"])
    plan = [(s, plan_steps(n_kd, p["epochs"], p["batch_size"], p["max_steps"])) for s in p["stages"]]
    ctx.set_plan(plan)
    return {"status": FINISHED, "dry_run": True, "name": ctx.name, "data": used, "train_rows": rows, "plan": plan}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "bench":
        print("usage: python -m hub.jobs.pipeline bench SPEC.json", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return bench_main(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
