"""The ``python -m hub`` commands (``hub.cli`` parses the arguments and calls them):
one ``cmd_<name>(args)`` per command, returning the exit code, and what they
share: the data and training settings from the arguments, progress lines and
result printing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _eval_options(args, task) -> dict:
    """``{"null_threshold": X}`` from ``--null-threshold`` (checked against the task's kind), else {}."""
    import math

    from .kinds import check_eval_options

    x = getattr(args, "null_threshold", None)
    if x is None:
        return {}
    if not math.isfinite(x):
        raise ValueError(f"--null-threshold must be a finite number of logits, got {x}")
    return check_eval_options(task, {"null_threshold": x})


def _load_data(args, task, reference=None, need_train=True):
    from .data import DataSource
    from .kinds import get_kind

    return get_kind(task).load_data(
        task, DataSource.from_args(args), max_train=getattr(args, "max_train_samples", None),
        max_eval=args.max_eval_samples, need_train=need_train, reference=reference,
    )


def _train_config(args, learning_rate: float | None = None, task=None):
    from .config import TrainConfig, from_args
    from .kinds import get_kind

    cfg = from_args(TrainConfig, args)
    if cfg.learning_rate is None:
        cfg.learning_rate = learning_rate
    if getattr(args, "max_length", None) is None and task is not None:
        cfg.max_length = getattr(get_kind(task), "default_max_length", cfg.max_length)
    return cfg


def _print_progress(event: dict) -> None:
    step, total = event.get("step", 0), event.get("total", 0)
    if event.get("stage") == "evaluate":
        print("evaluating ...", file=sys.stderr, flush=True)
    elif event.get("stage") == "evaluate-teacher":
        print("evaluating the teacher on the eval set ...", file=sys.stderr, flush=True)
    elif event.get("stage") == "calibrate":
        print("calibrating the student's null threshold to the teacher's \"no answer\" decisions ...",
              file=sys.stderr, flush=True)
    elif event.get("stage") == "warning":
        print(f"warning: {event['message']}", file=sys.stderr, flush=True)
    elif event.get("stage") == "teacher-logits":
        if step == total and total:
            done = f"read the teacher's logits for {total} training examples from {event['cache_file']}" \
                if event.get("cache_file") else f"cached the teacher's logits for {total} training examples"
            print(done, file=sys.stderr, flush=True)
    elif step == 1 or step == total or step % 25 == 0:
        terms = " ".join(f"{k}={v:.4f}" for k, v in event.get("losses", {}).items())
        print(
            f"[{event['stage']}] step {step}/{total} {terms} "
            f"{event.get('examples_per_s', 0):.1f} ex/s eta {event.get('eta_s', 0):.0f}s",
            file=sys.stderr, flush=True,
        )


def _report(card: dict, args) -> int:
    calibrated = card.get("null_calibration")
    print(json.dumps({"status": card["status"], "output_dir": args.output_dir, **card.get("eval", {}),
                      **({"null_calibration": calibrated} if calibrated else {}),
                      **({"warnings": card["warnings"]} if card.get("warnings") else {})}, indent=2, default=str))
    if card["status"] == "finished" and getattr(args, "push_to_hub", None):
        from .model_card import push_to_hub

        print(f"uploaded to {push_to_hub(Path(args.output_dir), args.push_to_hub)}", file=sys.stderr)
    return 0 if card["status"] == "finished" else 3


def cmd_finetune(args) -> int:
    from .training import finetune
    from .tasks import get_task

    task = get_task(args.task)
    options = _eval_options(args, task)
    data = _load_data(args, task)
    card = finetune(task, args.model, data, args.output_dir, _train_config(args, task=task), progress=_print_progress,
                    resume=args.resume, overwrite=args.overwrite, eval_options=options)
    return _report(card, args)


def cmd_distill(args) -> int:
    from .config import DistillConfig, from_args
    from .distill import default_learning_rate, distill, kind_stages
    from .kinds import get_kind
    from .models import parse_student
    from .null_calibration import check_calibrate_null
    from .tasks import get_task

    task = get_task(args.task)
    spec = parse_student(args.student, args.student_layers, args.student_hidden, args.student_heads, args.student_ffn,
                         args.prune_ffn)
    if args.stages is None:
        args.stages = kind_stages(get_kind(task))
    dcfg = from_args(DistillConfig, args)
    options = _eval_options(args, task)
    if args.calibrate_null:  # refused before any data or model is loaded
        check_calibrate_null(get_kind(task), task, options)
    data = _load_data(args, task)
    card = distill(task, args.teacher, spec, data, args.output_dir, _train_config(args, default_learning_rate(spec, task.kind), task), dcfg,
                   progress=_print_progress, resume=args.resume, overwrite=args.overwrite, eval_options=options,
                   teacher_cache=args.teacher_cache, calibrate_null=args.calibrate_null)
    return _report(card, args)


def cmd_cloze(args) -> int:
    from .cloze import cloze_file
    from .data import DataSource
    from .tasks import get_task

    has_source = args.data_dir or args.train_file or args.dataset
    source = DataSource.from_args(args) if has_source else None
    summary = cloze_file(get_task(args.task), source, args.contexts, args.output_file, args.per_context,
                         args.text_column, args.max_contexts, args.seed, args.max_train_samples, args.overwrite,
                         args.negatives, args.noise)
    print(json.dumps({k: summary[k] for k in ("output_file", "originals", "augmented", "contexts", "time_s")}))
    print(f"distill on it: python -m hub distill --task {args.task} --train-file {args.output_file} "
          "--eval-file EVAL ...")
    return 0


def cmd_augment(args) -> int:
    from .augment import AugmentConfig, augment_file
    from .data import DataSource
    from .tasks import get_task

    cfg = AugmentConfig(args.per_example, args.replace_prob, args.candidates, args.max_length, args.batch_size,
                        args.seed)
    proposer = ("mlm", args.mlm) if args.mlm else ("embeddings", args.embeddings)
    summary = augment_file(get_task(args.task), DataSource.from_args(args), proposer, args.output_file, cfg,
                           args.max_train_samples, args.overwrite, progress=lambda line: print(line, flush=True))
    print(json.dumps({k: summary[k] for k in ("output_file", "originals", "augmented", "positions", "time_s")}))
    print(f"distill on it with the teacher's soft labels only: python -m hub distill --task {args.task} "
          f"--train-file {args.output_file} --eval-file EVAL --alpha 0 ...")
    return 0


def _trained(ref: str, task):
    """(model, tokenizer, the evaluation options its run card records, its training length) of a
    model with a trained head for ``task`` (``hub.inference.load_trained``); exits with a clear
    line when it has none."""
    from .inference import load_trained
    from .models import UntrainedHeadError

    try:
        return load_trained(ref, task)
    except UntrainedHeadError as exc:
        raise SystemExit(f"error: {exc}") from None


def _evaluate(args, task, ref: str) -> dict:
    """The task kind's scores of the model ``ref`` on the eval data of ``args`` (with ``max_length``)."""
    from .kinds import get_kind

    flags = _eval_options(args, task)
    model, tokenizer, recorded, length = _trained(ref, task)
    data = _load_data(args, task, reference=model, need_train=False)
    max_length = args.max_length or length
    options = {**recorded, **flags}  # the flag wins over the run card
    result = get_kind(task).evaluate(model, tokenizer, data, max_length=max_length,
                                     batch_size=args.batch_size, **options)
    result.pop("predictions", None)
    return {"max_length": max_length, **result}


def cmd_evaluate(args) -> int:
    from .tasks import get_task

    task = get_task(args.task)
    result = _evaluate(args, task, args.model)
    print(json.dumps({"model": args.model, "task": task.name, **result}, indent=2))
    return 0


def cmd_bench(args) -> int:
    from .benchmark import Protocol, format_table, is_arch, load_for_bench, run_benchmark
    from .leaderboard import LeaderboardStore
    from .tasks import get_task

    task = get_task(args.task)
    if not task.head:  # nothing to score and no task output to time against quality
        raise ValueError(f"bench --task {task.name} is not supported: a general-distillation student has no task "
                         "head; benchmark it through the task it is distilled for (distill --task sst2 --student "
                         "FOLDER ..., then bench that student)")
    options = _eval_options(args, task)
    protocol = Protocol(warmup=args.warmup, min_calls=args.min_calls, min_seconds=args.min_seconds,
                        threads=args.threads, memory=not args.skip_memory)
    data = None
    has_data = any([args.data_dir, args.eval_file, args.dataset])
    real = [m for m in ([args.teacher] if args.teacher else []) + args.model if not is_arch(m)]
    if has_data and real:
        model, _, _ = load_for_bench(real[0], task)
        data = _load_data(args, task, reference=model, need_train=False)
    elif real:
        raise ValueError("benchmarking trained models needs an eval set: --data-dir, --eval-file or --dataset")
    runtimes = tuple(r.strip() for r in args.runtime.split(",") if r.strip())
    if not runtimes or set(runtimes) - {"torch", "onnx"}:
        raise ValueError("--runtime takes torch, onnx or torch,onnx")
    rows = run_benchmark(task, args.model, teacher=args.teacher, data=data, quantize=args.quantize,
                         protocol=protocol, log=lambda m: print(m, file=sys.stderr, flush=True), runtimes=runtimes,
                         eval_options=options)
    if not args.no_save:
        LeaderboardStore().add_rows(rows)
    _print_results([{k: v for k, v in r.items() if k not in ("run_card", "hardware_json", "bench_json")} for r in rows],
                   args.json, lambda: format_table(rows, task))
    return 0


def _print_results(results: list[dict], as_json: bool, table) -> None:
    """One JSON line per result, or ``table()`` and the hardware the results were measured on."""
    if as_json:
        for r in results:
            print(json.dumps(r, default=str))
    else:
        print(table())
        print(f"\nhardware: {results[0]['hardware']}" if results else "")


def cmd_profile(args) -> int:
    from .bench_profile import format_profiles, profile_models
    from .benchmark import is_arch, load_for_bench
    from .tasks import get_task

    task = get_task(args.task)
    if args.calls < 1 or args.warmup < 0:
        raise ValueError("--calls takes a positive number and --warmup a non-negative one")
    data = None
    real = [m for m in args.model if not is_arch(m)]
    if any([args.data_dir, args.eval_file, args.dataset]):
        model, _, _ = load_for_bench((real or args.model)[0], task)
        data = _load_data(args, task, reference=model if real else None, need_train=False)
    profiles = profile_models(task, args.model, data, calls=args.calls, warmup=args.warmup, threads=args.threads,
                              log=lambda m: print(m, file=sys.stderr, flush=True))
    _print_results(profiles, args.json, lambda: format_profiles(profiles))
    return 0


def cmd_bench_distill(args) -> int:
    from .bench_loop import bench_distill, format_result
    from .config import TrainConfig, from_dict
    from .models import parse_student
    from .tasks import get_task

    task = get_task(args.task)
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError("--steps and --batch-size take positive numbers")
    spec = parse_student(args.student)
    args.max_train_samples = args.steps * args.batch_size  # one epoch of each loop: nothing more is read
    data = _load_data(args, task)
    cfg = from_dict(TrainConfig, {"batch_size": args.batch_size, "precision": args.precision,
                                  "attention_dropout": args.attention_dropout})  # ranges checked
    result = bench_distill(task, args.teacher, spec, data, steps=args.steps, cfg=cfg,
                           threads=args.threads, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result) if args.json else format_result(result))
    return 0


def cmd_leaderboard(args) -> int:
    from .benchmark import format_table
    from .leaderboard import LeaderboardStore
    from .tasks import TASKS
    from .views import notes_text, with_notes

    if args.task is not None and args.task not in TASKS:
        raise ValueError(f"unknown task {args.task!r}; choose one of {sorted(TASKS)}")
    store = LeaderboardStore()
    if args.csv:
        sys.stdout.write(store.to_csv(annotate=with_notes, task=args.task, hardware=args.hardware))
    elif args.json:
        sys.stdout.write(store.to_json(annotate=with_notes, task=args.task, hardware=args.hardware) + "\n")
    else:
        rows = with_notes(store.rows(task=args.task, hardware=args.hardware))
        print(format_table(rows, TASKS.get(args.task or "")))
        if notes := notes_text(rows):
            print("\n" + notes)
    return 0


def cmd_export(args) -> int:
    from .export import export_onnx
    from .inference import trained_length
    from .kinds import get_kind
    from .models import load_model, load_tokenizer, resolve_model_ref
    from .runs import read_card
    from .tasks import get_task

    task = get_task(args.task or (read_card(resolve_model_ref(args.model)) or {}).get("task") or "sst2")
    kind = get_kind(task)
    samples, eval_fn = None, None
    if any([args.data_dir, args.eval_file, args.dataset]):
        model, _ = load_model(args.model, task)
        data = _load_data(args, task, reference=model, need_train=False)
        samples = kind.tokenize_inputs(data, task)  # the whole eval set: prediction agreement with PyTorch
        tok, length = load_tokenizer(args.model), trained_length(args.model)

        def scores(m):
            result = kind.evaluate(m, tok, data, max_length=length)
            result.pop("predictions", None)
            return result

        eval_fn = scores
    card = export_onnx(args.model, args.output_dir, quantize=args.quantize, head=task.head, sample_texts=samples,
                       eval_fn=eval_fn)
    print(json.dumps(card, indent=2, default=str))
    return 0


def cmd_delete(args) -> int:
    from .runs import delete_run

    removed = delete_run(args.model)
    print(json.dumps(removed, indent=2))
    return 0
