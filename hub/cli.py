"""``python -m hub COMMAND``: finetune, distill, augment, cloze, evaluate, bench, profile, bench-distill, leaderboard, export, delete.

Thin: parse arguments, call the package, print results. Misspelled options fail
(argparse's abbreviation matching is off), errors print one clear line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _data_args(p: argparse.ArgumentParser, train: bool = True, limit_train: bool = True) -> None:
    g = p.add_argument_group("data (one source)")
    g.add_argument("--data-dir", help="folder with the task's local files, e.g. ../shared/data (sst2/train.tsv, sst2/validation.tsv)")
    if train:
        g.add_argument("--train-file", help="CSV, TSV, JSONL or Parquet training file")
    g.add_argument("--eval-file", help="CSV, TSV, JSONL or Parquet evaluation file")
    g.add_argument("--dataset", help="Hub data set id (online), e.g. glue")
    g.add_argument("--dataset-config", help="Hub data set config, e.g. sst2")
    g.add_argument("--text-column")
    g.add_argument("--label-column")
    if train and limit_train:
        g.add_argument("--max-train-samples", type=int)
    g.add_argument("--max-eval-samples", type=int)


def _eval_args(p: argparse.ArgumentParser, recorded: bool = False) -> None:
    """Evaluation settings of a task kind (``hub.kinds`` ``eval_options``)."""
    where = ("used for the evaluation and recorded in the run card (evaluate, bench and the app then use it)"
             if recorded else "default: the one the model's run card records, else 0")
    p.add_argument("--null-threshold", type=float, metavar="X",
                   help="question answering: answer \"no answer\" when the null score beats the best span by more "
                        f"than X logits; {where}. evaluate reports best_f1_thresh, the best X for its eval set")


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


def _train_args(p: argparse.ArgumentParser, **defaults) -> None:
    from .config import TrainConfig, add_arguments

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    g.add_argument("--overwrite", action="store_true", help="replace what --output-dir holds")
    g.add_argument("--push-to-hub", metavar="REPO", help="upload the finished model folder to this Hub repo (online)")
    # no --max-length: the task kind's default_max_length (QA 384), else TrainConfig's (see _train_config)
    add_arguments(p, TrainConfig, defaults={"max_length": None, **defaults})
    p.add_argument("--block-size", dest="max_length", type=int,
                   help="text tasks: tokens per block of text (the same setting as --max-length)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("finetune", help="train a task head on a teacher", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="model folder, Hub id, or minilm-l6")
    _data_args(p)
    _train_args(p, epochs=3.0, learning_rate=1e-4)
    _eval_args(p, recorded=True)

    p = sub.add_parser("distill", help="distill a teacher into a TinyBERT-style student", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder or Hub id")
    p.add_argument("--student", default="teacher-layers:3",
                   help="tinybert-4l-312 | tinybert-6l-768 | teacher-layers:K | custom | checkpoint folder/Hub id")
    p.add_argument("--student-layers", type=int)
    p.add_argument("--student-hidden", type=int)
    p.add_argument("--student-heads", type=int)
    p.add_argument("--student-ffn", type=int)
    p.add_argument("--prune-ffn", type=int, metavar="N",
                   help="keep the N most important neurons of each feed-forward layer of a teacher-layers:K or "
                        "checkpoint student before distilling (structured pruning: a faster student)")
    from .config import DistillConfig, TrainConfig, add_arguments

    add_arguments(p, DistillConfig)
    p.set_defaults(stages=None)  # none given: the task kind's stages (general distillation: intermediate only)
    _data_args(p)
    _train_args(p)
    _eval_args(p, recorded=True)

    p = sub.add_parser("augment", help="TinyBERT data augmentation: more training examples from word replacements "
                       "(text classification: the sentence; extractive QA: the question)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--mlm", help="propose words with this masked LM (folder or Hub id with a trained head; "
                   "offline: the output of `finetune --task mlm`)")
    g.add_argument("--embeddings", metavar="MODEL", help="propose the nearest words in this model's input "
                   "embeddings (any model, e.g. the teacher or minilm-l6)")
    p.add_argument("--output-file", required=True, help="classification: .tsv, .csv or .jsonl, the originals, then "
                   "their copies; QA: .json (SQuAD 2.0), each question followed by its copies")
    p.add_argument("--overwrite", action="store_true")
    g = p.add_argument_group("data (one source)")
    g.add_argument("--data-dir")
    g.add_argument("--train-file")
    g.add_argument("--dataset", help="Hub data set id (online)")
    g.add_argument("--dataset-config")
    g.add_argument("--text-column")
    g.add_argument("--label-column")
    g.add_argument("--max-train-samples", type=int)
    from .augment import AugmentConfig

    d = AugmentConfig()
    g = p.add_argument_group("augmentation (TinyBERT's defaults)")
    g.add_argument("--per-example", type=int, default=d.per_example, help="copies drawn per example (N)")
    g.add_argument("--replace-prob", type=float, default=d.replace_prob, help="chance a word is replaced (p)")
    g.add_argument("--candidates", type=int, default=d.candidates, help="masked-LM proposals per word (K)")
    g.add_argument("--max-length", type=int, default=d.max_length, help="tokens the masked LM reads per word")
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--seed", type=int, default=d.seed)

    p = sub.add_parser("cloze", help="extractive QA: cloze questions about unlabelled paragraphs (a transfer set "
                       "for distillation), written as SQuAD 2.0 JSON after the training questions", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--contexts", nargs="*", default=[], metavar="FILE", help="unlabelled text: .txt (a paragraph a "
                   "line; WikiText headings skipped), .jsonl or .csv (--text-column, default text)")
    p.add_argument("--per-context", type=int, default=2, help="cloze questions per paragraph (from different "
                   "sentences)")
    p.add_argument("--max-contexts", type=int, help="paragraphs read per --contexts file (default: all)")
    p.add_argument("--output-file", required=True, help=".json (SQuAD 2.0): the training questions, then cloze "
                   "questions about their contexts and about the --contexts paragraphs")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--seed", type=int, default=42)
    g = p.add_argument_group("training questions to keep (optional; their contexts are asked about too)")
    g.add_argument("--data-dir")
    g.add_argument("--train-file")
    g.add_argument("--dataset", help="Hub data set id (online)")
    g.add_argument("--dataset-config")
    g.add_argument("--text-column", help="text column of .jsonl/.csv --contexts files")
    g.add_argument("--max-train-samples", type=int)

    p = sub.add_parser("evaluate", help="accuracy/F1 of a model on the eval set (JSON)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, help="tokens per example (default: the model's training length)")
    _eval_args(p)
    _data_args(p, train=False)

    p = sub.add_parser("bench", help="benchmark models: quality, latency, memory, size", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True, help="folder, Hub id or arch:NAME (repeatable)")
    p.add_argument("--teacher", help="reference model for retention, agreement and speedup")
    p.add_argument("--quantize", choices=["int8"], help="also measure a dynamically quantized int8 variant")
    p.add_argument("--runtime", default="torch",
                   help="comma-separated runtimes to measure: torch (PyTorch eager), onnx (ONNX Runtime); default torch")
    p.add_argument("--threads", type=int, help="torch threads for every model (default: all cores)")
    p.add_argument("--min-calls", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-memory", action="store_true", help="skip the memory subprocess (faster)")
    p.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    p.add_argument("--no-save", action="store_true", help="do not write rows to the leaderboard")
    _eval_args(p)
    _data_args(p, train=False)

    p = sub.add_parser("profile", help="where one batch-1 call's time goes: tokenisation, matmuls, attention, "
                       "other ops, framework overhead; with the FLOP bound", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True,
                   help="folder, Hub id, arch:NAME or an exported ONNX folder (ONNX Runtime's profiler; repeatable)")
    p.add_argument("--calls", type=int, default=20, help="profiled forward passes per model (after the warm-up)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    _data_args(p, train=False)

    p = sub.add_parser("bench-distill", help="time our distillation loop against a TinyBERT task_distill.py-style "
                       "reference loop (examples/s per stage and the ratio)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder or Hub id")
    p.add_argument("--student", default="teacher-layers:3", help="as for distill: a preset, teacher-layers:K, a folder")
    p.add_argument("--steps", type=int, default=50,
                   help="optimisation steps per stage and loop (uses the first steps x batch size training examples)")
    p.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    p.add_argument("--threads", type=int, help="torch threads for both loops (default: all cores)")
    p.add_argument("--json", action="store_true", help="the result as one JSON object on stdout")
    _data_args(p, limit_train=False)

    p = sub.add_parser("leaderboard", help="show or export the leaderboard", allow_abbrev=False)
    p.add_argument("--task")
    p.add_argument("--hardware")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")

    p = sub.add_parser("export", help="export a model to ONNX Runtime (fp32 or int8) with a parity check",
                       allow_abbrev=False)
    p.add_argument("--model", required=True, help="a model folder (or Hub id)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization through ONNX Runtime")
    p.add_argument("--task", help="the model's task (default: from its run.json)")
    _data_args(p, train=False)

    p = sub.add_parser("delete", help="delete a trained model folder and its leaderboard rows", allow_abbrev=False)
    p.add_argument("model", help="a model folder written by finetune/distill (it has a run.json)")
    return parser


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
    elif event.get("stage") == "warning":
        print(f"warning: {event['message']}", file=sys.stderr, flush=True)
    elif event.get("stage") == "teacher-logits":
        if step == total and total:
            print(f"cached the teacher's logits for {total} training examples", file=sys.stderr, flush=True)
    elif step == 1 or step == total or step % 25 == 0:
        terms = " ".join(f"{k}={v:.4f}" for k, v in event.get("losses", {}).items())
        print(
            f"[{event['stage']}] step {step}/{total} {terms} "
            f"{event.get('examples_per_s', 0):.1f} ex/s eta {event.get('eta_s', 0):.0f}s",
            file=sys.stderr, flush=True,
        )


def _report(card: dict, args) -> int:
    print(json.dumps({"status": card["status"], "output_dir": args.output_dir, **card.get("eval", {}),
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
    from .tasks import get_task

    task = get_task(args.task)
    spec = parse_student(args.student, args.student_layers, args.student_hidden, args.student_heads, args.student_ffn,
                         args.prune_ffn)
    if args.stages is None:
        args.stages = kind_stages(get_kind(task))
    dcfg = from_args(DistillConfig, args)
    options = _eval_options(args, task)
    data = _load_data(args, task)
    card = distill(task, args.teacher, spec, data, args.output_dir, _train_config(args, default_learning_rate(spec, task.kind), task), dcfg,
                   progress=_print_progress, resume=args.resume, overwrite=args.overwrite, eval_options=options)
    return _report(card, args)


def cmd_cloze(args) -> int:
    from .cloze import cloze_file
    from .data import DataSource
    from .tasks import get_task

    has_source = args.data_dir or args.train_file or args.dataset
    source = DataSource.from_args(args) if has_source else None
    summary = cloze_file(get_task(args.task), source, args.contexts, args.output_file, args.per_context,
                         args.text_column, args.max_contexts, args.seed, args.max_train_samples, args.overwrite)
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


def cmd_evaluate(args) -> int:
    from .inference import eval_options, trained_length
    from .kinds import get_kind
    from .models import load_model, load_tokenizer, resolve_model_ref
    from .tasks import get_task

    task = get_task(args.task)
    flags = _eval_options(args, task)
    model, trained = load_model(args.model, task)
    if not trained:
        raise SystemExit(f"error: {args.model} has no trained {task.head} head; fine-tune it first")
    data = _load_data(args, task, reference=model, need_train=False)
    max_length = args.max_length or trained_length(args.model, getattr(get_kind(task), "default_max_length", 128))
    options = {**eval_options(resolve_model_ref(args.model), task), **flags}  # the flag wins over the run card
    result = get_kind(task).evaluate(model, load_tokenizer(args.model), data, max_length=max_length,
                                     batch_size=args.batch_size, **options)
    result.pop("predictions", None)
    print(json.dumps({"model": args.model, "task": task.name, "max_length": max_length, **result}, indent=2))
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
    from .config import TrainConfig
    from .models import parse_student
    from .tasks import get_task

    task = get_task(args.task)
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError("--steps and --batch-size take positive numbers")
    spec = parse_student(args.student)
    args.max_train_samples = args.steps * args.batch_size  # one epoch of each loop: nothing more is read
    data = _load_data(args, task)
    result = bench_distill(task, args.teacher, spec, data, steps=args.steps, cfg=TrainConfig(batch_size=args.batch_size),
                           threads=args.threads, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result) if args.json else format_result(result))
    return 0


def cmd_leaderboard(args) -> int:
    from .benchmark import format_table
    from .leaderboard import LeaderboardStore
    from .tasks import TASKS

    if args.task is not None and args.task not in TASKS:
        raise ValueError(f"unknown task {args.task!r}; choose one of {sorted(TASKS)}")
    store = LeaderboardStore()
    if args.csv:
        sys.stdout.write(store.to_csv(task=args.task, hardware=args.hardware))
    elif args.json:
        sys.stdout.write(store.to_json(task=args.task, hardware=args.hardware) + "\n")
    else:
        print(format_table(store.rows(task=args.task, hardware=args.hardware), TASKS.get(args.task or "")))
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


COMMANDS = {
    "finetune": cmd_finetune, "distill": cmd_distill, "augment": cmd_augment, "cloze": cmd_cloze,
    "evaluate": cmd_evaluate,
    "bench": cmd_bench, "profile": cmd_profile, "bench-distill": cmd_bench_distill, "leaderboard": cmd_leaderboard, "export": cmd_export, "delete": cmd_delete,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress lines only
    from .data import DataError
    from .export import ExportError
    from .model_card import HubUploadError
    from .models import ModelNotFoundError, UntrainedHeadError

    try:
        return COMMANDS[args.command](args)
    except (DataError, ModelNotFoundError, UntrainedHeadError, FileExistsError, ValueError, NotImplementedError,
            HubUploadError, ExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume", file=sys.stderr)
        return 130
