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
                         args.negatives)
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


def cmd_calibrate_null(args) -> int:
    from .augment import training_questions
    from .data import DataError, DataSource
    from .kinds import get_kind
    from .models import resolve_model_ref
    from .null_calibration import calibrate_saved, calibration_questions, record_calibration
    from .tasks import get_task

    task = get_task(args.task)
    kind = get_kind(task)
    if "null_threshold" not in getattr(kind, "eval_options", ()):
        raise ValueError(f"calibrate-null is for question answering; task {task.name} has no null answer")
    source = DataSource(data_dir=args.data_dir, train_file=args.train_file, dataset=args.dataset,
                        dataset_config=args.dataset_config)
    if sum(map(bool, (args.data_dir, args.train_file, args.dataset))) != 1:
        raise DataError("give one source of calibration questions: --data-dir, --train-file or --dataset")
    questions, described = training_questions(task, source, args.max_train_samples)
    where = described.get("train_file") or f"{source.dataset} (train)"
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    questions = calibration_questions(questions)  # real ones, two articles at least: before any model is loaded
    rescore = _rescore(args, task) if args.apply else None  # refusals before the calibration's models load
    print(f"calibrating on {len(questions)} questions, each with its own paragraph and another article's ...",
          file=sys.stderr, flush=True)
    result = calibrate_saved(task, args.teacher, args.model, questions, batch_size=args.batch_size)
    out = {"model": args.model, "teacher": args.teacher, "task": task.name, "calibration_data": where, **result}
    if not args.apply:
        print(json.dumps(out, indent=2))
        print(f"use it: python -m hub evaluate --task {task.name} --model {args.model} ... --null-threshold "
              f"{result['threshold']!r} (or record it as the model's own: --apply)", file=sys.stderr)
        return 0
    try:
        source = {"dataset": args.dataset, "dataset_config": args.dataset_config} if args.dataset else \
            {"train_file": described.get("train_file")}
        card = record_calibration(resolve_model_ref(args.model), result, args.teacher, str(where), rescore=rescore,
                                  source={**source, "max_train_samples": args.max_train_samples})
    except DataError as exc:  # e.g. a Hub evaluation set offline: the calibration is printed, the card untouched
        print(json.dumps(out, indent=2))
        raise DataError(f"threshold {result['threshold']!r} not recorded ({exc}); the run card is unchanged: pass "
                        "it as --null-threshold, or --apply again where the evaluation set can be read") from None
    out["eval"] = card.get("eval")
    print(json.dumps(out, indent=2))
    print(f"recorded in {args.model}'s run card: evaluate, bench and Compare now use threshold "
          f"{result['threshold']!r}; leaderboard rows made before keep their threshold (bench it again)",
          file=sys.stderr)
    return 0


def _rescore(args, task):
    """``rescore(threshold)`` for ``record_calibration``: ``evaluate`` of ``args.model`` on the
    evaluation set its run card names, at the new threshold (None when the card has no scores).
    Refuses (before any model is loaded) a model that is not a finished run of this hub, or
    whose recorded scores' evaluation set is not found from here."""
    import argparse

    from .data import DataError
    from .models import resolve_model_ref
    from .null_calibration import recordable_card
    from .soup import eval_source

    card = recordable_card(resolve_model_ref(args.model))
    if not card.get("eval"):
        return None
    source = eval_source([card])
    if source is None:
        raise DataError(f"--apply scores {args.model} again, but the evaluation set its run card names is not "
                        "found from here: run it where that file is, or calibrate without --apply")
    data, size = source
    flags = argparse.Namespace(**data, max_eval_samples=size, max_length=None, batch_size=args.batch_size,
                               null_threshold=None)
    unreadable = _unreadable_hub_eval(flags, task, args.model)
    if unreadable:  # before the calibration's minutes, not after
        raise DataError(f"--apply scores {args.model} again, but the evaluation set its run card names cannot be "
                        f"read here ({unreadable}): run it where it can, or calibrate without --apply")

    def rescore(threshold: float) -> dict:
        print(f"scoring {args.model} again at the new threshold on {data.get('eval_file') or data.get('dataset')} "
              "...", file=sys.stderr, flush=True)
        flags.null_threshold = threshold
        return _evaluate(flags, task, args.model)

    return rescore


def _unreadable_hub_eval(flags, task, model_ref: str) -> str | None:
    """Why the Hub evaluation set ``flags`` name cannot be read from here (offline it cannot);
    None when it can, or when they name a file (found already by ``hub.soup.eval_source``)."""
    if not getattr(flags, "dataset", None):
        return None
    from .data import DataError
    from .models import load_model

    try:
        _load_data(flags, task, reference=load_model(model_ref, task)[0], need_train=False)
    except DataError as exc:
        return str(exc)
    return None


def _students_eval_data(args, task) -> tuple[bool, str]:
    """Point ``args`` (no data flags given) at the evaluation data the soup's ingredients were
    scored on (``hub.soup.eval_source``; flags the user gave stay): (found and readable, why not)."""
    from .runs import read_card
    from .soup import eval_source

    cards = [read_card(m) or {} for m in args.model]
    source = eval_source(cards)
    if source is None:
        return False, "the students' run cards do not name one evaluation set found from here"
    for key in ("eval_file", "dataset", "dataset_config", "text_column", "label_column"):
        if getattr(args, key, None) is None:  # a column flag given by the user stays
            setattr(args, key, source[0].get(key))
    if args.max_eval_samples is None:
        args.max_eval_samples = source[1]
    unreadable = _unreadable_hub_eval(args, task, args.model[0])
    if unreadable:
        return False, f"their evaluation data cannot be read here ({unreadable})"
    unit = "blocks" if any("eval_blocks" in (c.get("data") or {}) for c in cards) else "examples"
    size = f" ({args.max_eval_samples} {unit})" if args.max_eval_samples is not None else ""
    print(f"scoring the soup on the students' evaluation data: {source[0].get('eval_file') or source[0].get('dataset')}"
          f"{size}", file=sys.stderr, flush=True)
    return True, ""


def cmd_soup(args) -> int:
    from .soup import make_soup
    from .tasks import get_task

    task = get_task(args.task)
    _eval_options(args, task)  # a bad flag fails before any writing

    def evaluate(folder) -> dict:
        print(f"averaged {len(args.model)} models into {folder}; evaluating ...", file=sys.stderr, flush=True)
        return _evaluate(args, task, str(folder))

    has_data = any([args.data_dir, args.eval_file, args.dataset])
    why = ""
    if not has_data and task.head:  # the evaluation data the ingredients were scored on, as the app's soup job does
        has_data, why = _students_eval_data(args, task)
    models, selection = args.model, None
    if args.greedy or args.select_file or args.teacher or args.max_select_samples is not None:
        models, selection = _greedy(args, task)
    card = make_soup(models, args.output_dir, task.name, overwrite=args.overwrite,
                     evaluate=evaluate if has_data else None, selection=selection)
    if not has_data:
        reason = f"; not scored: {why} (pass --data-dir, --eval-file or --dataset)" if task.head else ""
        print(f"averaged {len(args.model)} models into {args.output_dir}{reason}", file=sys.stderr, flush=True)
    ingredients = [{"path": i["path"], task.headline: (i["eval"] or {}).get(task.headline)}
                   for i in card["soup"]["ingredients"]]  # the card keeps their full scores
    chosen = {"selection": selection["ingredients"]} if selection else {}
    print(json.dumps({"model": args.output_dir, "task": task.name, "ingredients": ingredients, **chosen,
                      "eval": card.get("eval"), "warnings": card["warnings"]}, indent=2))
    if args.push_to_hub:
        from .model_card import push_to_hub

        print(f"uploaded to {push_to_hub(Path(args.output_dir), args.push_to_hub)}", file=sys.stderr)
    return 0


def _evaluation_files(args, task, cards: list) -> set[str]:
    """The resolved evaluation files a soup is (or its ingredients were) scored on, found from here."""
    files = set()
    for d in [{"eval_file": args.eval_file, "data_dir": args.data_dir}, *((c or {}).get("data") or {} for c in cards)]:
        if d.get("eval_file"):
            files.add(d["eval_file"])
        if d.get("data_dir") and task.local_files.get("eval"):
            files.add(str(Path(d["data_dir"]) / task.local_files["eval"]))
    return {str(Path(f).resolve()) for f in files if Path(f).exists()}


def _greedy(args, task) -> tuple[list[str], dict]:
    """A greedy soup's ingredients (``hub.soup_select``), chosen on ``--select-file``, and the record
    of the choice; refusals (no selection file, the evaluation set as one, a written --output-dir)
    before any model is scored."""
    import argparse
    import time

    from .kinds import get_kind
    from .models import load_model
    from .soup import average_state, check_ingredients, check_output, trained_options
    from .soup_select import greedy_select, score_name, selection_scorer

    if not args.greedy:
        raise ValueError("--select-file, --teacher and --max-select-samples choose a greedy soup's ingredients: "
                         "add --greedy")
    if not args.select_file:
        raise ValueError("--greedy needs --select-file: held-out data to choose the ingredients on (never the "
                         "evaluation set)")
    if not Path(args.select_file).is_file():
        raise ValueError(f"--select-file {args.select_file}: no such file")
    folders, cards, _ = check_ingredients(args.model, task.name)
    check_output(args.model, args.output_dir, args.overwrite)
    if str(Path(args.select_file).resolve()) in _evaluation_files(args, task, cards):
        raise ValueError(f"--select-file {args.select_file} is the evaluation set: a soup chosen on the examples it "
                         "is scored on reports an upper bound; choose on other held-out data")
    flags = argparse.Namespace(eval_file=args.select_file, data_dir=None, dataset=None, dataset_config=None,
                               text_column=args.text_column, label_column=args.label_column,
                               max_eval_samples=args.max_select_samples)
    data = _load_data(flags, task, reference=load_model(str(folders[0]), task)[0], need_train=False)
    options = {**trained_options(cards[0], getattr(get_kind(task), "eval_options", ())), **_eval_options(args, task)}
    against = f"agreement with {args.teacher}" if args.teacher else f"{task.headline} against the file's labels"
    print(f"greedy soup: scoring {len(folders)} models on {args.select_file} ({data.eval_size} examples; "
          f"{against}) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    score = selection_scorer(task, folders[0], options, data, teacher=args.teacher, batch_size=args.batch_size,
                             max_length=args.max_length)
    chosen, records = greedy_select(folders, score, average_state,
                                    progress=lambda line: print(line, file=sys.stderr, flush=True))
    selection = {"method": "greedy soup (Wortsman et al., 2022)", "data": str(Path(args.select_file).resolve()),
                 "size": data.eval_size, "score": score_name(task, args.teacher), "teacher": args.teacher, "options": options, "ingredients": records,
                 "time_s": round(time.perf_counter() - start, 1)}
    print(f"greedy soup: {len(chosen)} of {len(folders)} models kept", file=sys.stderr, flush=True)
    return [str(f) for f in chosen], selection


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
