"""``python -m hub COMMAND``: finetune, distill, evaluate, bench, leaderboard.

Thin: parse arguments, call the package, print results. Misspelled options fail
(argparse's abbreviation matching is off), errors print one clear line.
"""

from __future__ import annotations

import argparse
import json
import sys


def _data_args(p: argparse.ArgumentParser, train: bool = True) -> None:
    g = p.add_argument_group("data (one source)")
    g.add_argument("--data-dir", help="folder with the task's local files, e.g. ../shared/data (sst2/train.tsv, sst2/validation.tsv)")
    if train:
        g.add_argument("--train-file", help="CSV, TSV, JSONL or Parquet training file")
    g.add_argument("--eval-file", help="CSV, TSV, JSONL or Parquet evaluation file")
    g.add_argument("--dataset", help="Hub data set id (online), e.g. glue")
    g.add_argument("--dataset-config", help="Hub data set config, e.g. sst2")
    g.add_argument("--text-column")
    g.add_argument("--label-column")
    if train:
        g.add_argument("--max-train-samples", type=int)
    g.add_argument("--max-eval-samples", type=int)


def _train_args(p: argparse.ArgumentParser, epochs: float, lr: float | None) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--epochs", type=float, default=epochs, help=f"epochs (per stage when distilling; default {epochs})")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--learning-rate", type=float, default=lr,
                   help=f"default {lr}" if lr else "default 1e-4 for students initialised from trained weights "
                   "(teacher-layers:K, checkpoints), 5e-4 for randomly initialised shapes")
    g.add_argument("--max-length", type=int, default=128)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--save-steps", type=int, default=200)
    g.add_argument("--max-steps", type=int, default=-1, help="cap on optimisation steps per stage (quick runs)")
    g.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    g.add_argument("--overwrite", action="store_true", help="replace what --output-dir holds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("finetune", help="train a task head on a teacher", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True, help="model folder, Hub id, or minilm-l6")
    _data_args(p)
    _train_args(p, epochs=3, lr=1e-4)

    p = sub.add_parser("distill", help="distill a teacher into a TinyBERT-style student", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--teacher", required=True, help="fine-tuned teacher folder or Hub id")
    p.add_argument("--student", default="teacher-layers:3",
                   help="tinybert-4l-312 | tinybert-6l-768 | teacher-layers:K | custom | checkpoint folder/Hub id")
    p.add_argument("--student-layers", type=int)
    p.add_argument("--student-hidden", type=int)
    p.add_argument("--student-heads", type=int)
    p.add_argument("--student-ffn", type=int)
    p.add_argument("--stages", default="intermediate,prediction")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of hard-label CE; 1 - alpha weighs the KD term")
    p.add_argument("--layer-map", help="comma-separated 1-based teacher layer per student layer (default uniform)")
    p.add_argument("--intermediate-learning-rate", type=float, help="learning rate of the intermediate stage")
    for term in ("embedding", "attention", "hidden", "prediction"):
        p.add_argument(f"--w-{term}", type=float, default=1.0, help=f"weight of the {term} loss")
    _data_args(p)
    _train_args(p, epochs=1, lr=None)

    p = sub.add_parser("evaluate", help="accuracy/F1 of a model on the eval set (JSON)", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--batch-size", type=int, default=64)
    _data_args(p, train=False)

    p = sub.add_parser("bench", help="benchmark models: quality, latency, memory, size", allow_abbrev=False)
    p.add_argument("--task", required=True)
    p.add_argument("--model", action="append", required=True, help="folder, Hub id or arch:NAME (repeatable)")
    p.add_argument("--teacher", help="reference model for retention, agreement and speedup")
    p.add_argument("--quantize", choices=["int8"], help="also measure a dynamically quantized int8 variant")
    p.add_argument("--threads", type=int, help="torch threads for every model (default: all cores)")
    p.add_argument("--min-calls", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--skip-memory", action="store_true", help="skip the memory subprocess (faster)")
    p.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    p.add_argument("--no-save", action="store_true", help="do not write rows to the leaderboard")
    _data_args(p, train=False)

    p = sub.add_parser("leaderboard", help="show or export the leaderboard", allow_abbrev=False)
    p.add_argument("--task")
    p.add_argument("--hardware")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    return parser


def _load_data(args, task, label_names=None, need_train=True):
    from .data import load_classification

    return load_classification(
        task, data_dir=args.data_dir, train_file=getattr(args, "train_file", None), eval_file=args.eval_file,
        dataset=args.dataset, dataset_config=args.dataset_config, text_column=args.text_column,
        label_column=args.label_column, max_train_samples=getattr(args, "max_train_samples", None),
        max_eval_samples=args.max_eval_samples, label_names=label_names, need_train=need_train,
    )


def _train_config(args, learning_rate: float | None = None):
    from .distill import TrainConfig

    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate or learning_rate,
        max_length=args.max_length, seed=args.seed, save_steps=args.save_steps, max_steps=args.max_steps,
    )


def _print_progress(event: dict) -> None:
    step, total = event.get("step", 0), event.get("total", 0)
    if event.get("stage") == "evaluate":
        print("evaluating ...", file=sys.stderr, flush=True)
    elif event.get("stage") == "teacher-logits":
        if step == total:
            print(f"cached the teacher's logits for {total} training examples", file=sys.stderr, flush=True)
    elif step == 1 or step == total or step % 25 == 0:
        terms = " ".join(f"{k}={v:.4f}" for k, v in event.get("losses", {}).items())
        print(
            f"[{event['stage']}] step {step}/{total} {terms} "
            f"{event.get('examples_per_s', 0):.1f} ex/s eta {event.get('eta_s', 0):.0f}s",
            file=sys.stderr, flush=True,
        )


def cmd_finetune(args) -> int:
    from .distill import finetune
    from .tasks import get_task

    task = get_task(args.task)
    data = _load_data(args, task)
    card = finetune(task, args.model, data, args.output_dir, _train_config(args), progress=_print_progress,
                    resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({"status": card["status"], "output_dir": args.output_dir, **card["eval"]}, indent=2))
    return 0 if card["status"] == "finished" else 3


def cmd_distill(args) -> int:
    from .distill import DistillConfig, default_learning_rate, distill
    from .models import parse_student
    from .tasks import get_task

    task = get_task(args.task)
    spec = parse_student(args.student, args.student_layers, args.student_hidden, args.student_heads, args.student_ffn)
    dcfg = DistillConfig(
        stages=tuple(s.strip() for s in args.stages.split(",") if s.strip()),
        temperature=args.temperature, alpha=args.alpha,
        weights={t: getattr(args, f"w_{t}") for t in ("embedding", "attention", "hidden", "prediction")},
        layer_map=[int(x) for x in args.layer_map.split(",")] if args.layer_map else None,
        intermediate_lr=args.intermediate_learning_rate,
    )
    data = _load_data(args, task)
    card = distill(task, args.teacher, spec, data, args.output_dir, _train_config(args, default_learning_rate(spec)), dcfg,
                   progress=_print_progress, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({"status": card["status"], "output_dir": args.output_dir, **card["eval"]}, indent=2))
    return 0 if card["status"] == "finished" else 3


def cmd_evaluate(args) -> int:
    from .inference import evaluate
    from .models import load_model, load_tokenizer
    from .tasks import get_task

    task = get_task(args.task)
    model, trained = load_model(args.model, task)
    if not trained:
        raise SystemExit(f"error: {args.model} has no trained {task.head} head; fine-tune it first")
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    data = _load_data(args, task, label_names=names, need_train=False)
    result = evaluate(model, load_tokenizer(args.model), data.eval_texts, data.eval_labels, args.batch_size)
    result.pop("predictions")
    print(json.dumps({"model": args.model, "task": task.name, "eval_size": len(data.eval_texts), **result}, indent=2))
    return 0


def cmd_bench(args) -> int:
    from .benchmark import run_cli

    return run_cli(args)


def cmd_leaderboard(args) -> int:
    from .leaderboard import LeaderboardStore

    store = LeaderboardStore()
    if args.csv:
        sys.stdout.write(store.to_csv(task=args.task, hardware=args.hardware))
    elif args.json:
        sys.stdout.write(store.to_json(task=args.task, hardware=args.hardware) + "\n")
    else:
        from .benchmark import format_table

        print(format_table(store.rows(task=args.task, hardware=args.hardware)))
    return 0


COMMANDS = {
    "finetune": cmd_finetune, "distill": cmd_distill, "evaluate": cmd_evaluate,
    "bench": cmd_bench, "leaderboard": cmd_leaderboard,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .data import DataError
    from .models import ModelNotFoundError, UntrainedHeadError

    try:
        return COMMANDS[args.command](args)
    except (DataError, ModelNotFoundError, UntrainedHeadError, FileExistsError, ValueError, NotImplementedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the last checkpoint is kept; rerun with --resume", file=sys.stderr)
        return 130
