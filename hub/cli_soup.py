"""The commands that make a model of trained ones: ``calibrate-null`` (a QA student's "no
answer" threshold calibrated to its teacher) and ``soup`` (a weight average of students
from one start, uniform or greedy); the rest of ``python -m hub`` is in ``hub.cli_commands``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .cli_commands import _eval_options, _evaluate, _load_data


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

    models, selection, recorded = args.model, None, None

    def evaluate(folder) -> dict:
        print(f"averaged {len(models)} models into {folder}; evaluating ...", file=sys.stderr, flush=True)
        return _evaluate(args, task, str(folder))

    greedy = args.greedy or args.select_file or args.teacher or args.max_select_samples is not None
    if greedy:
        _check_greedy_flags(args, task)
    has_data = any([args.data_dir, args.eval_file, args.dataset])
    why = ""
    if not has_data and task.head:  # the evaluation data the ingredients were scored on, as the app's soup job does
        has_data, why = _students_eval_data(args, task)
    if greedy:
        models, selection, recorded = _greedy(args, task, has_data)
    card = make_soup(models, args.output_dir, task.name, overwrite=args.overwrite,
                     evaluate=evaluate if has_data else None, selection=selection, eval_options=recorded)
    if not has_data:
        reason = f"; not scored: {why} (pass --data-dir, --eval-file or --dataset)" if task.head else ""
        print(f"averaged {len(models)} models into {args.output_dir}{reason}", file=sys.stderr, flush=True)
    ingredients = [{"path": i["path"], task.headline: (i["eval"] or {}).get(task.headline)}
                   for i in card["soup"]["ingredients"]]  # the card keeps their full scores
    chosen = {"selection": selection["ingredients"]} if selection else {}
    print(json.dumps({"model": args.output_dir, "task": task.name, "ingredients": ingredients, **chosen,
                      "eval": card.get("eval"), "warnings": card["warnings"]}, indent=2))
    if args.push_to_hub:
        from .model_card import push_to_hub

        print(f"uploaded to {push_to_hub(Path(args.output_dir), args.push_to_hub)}", file=sys.stderr)
    return 0


def _check_greedy_flags(args, task) -> None:
    """The greedy flags' refusals that need nothing loaded (before the soup's evaluation data is looked for)."""
    from .soup_select import check_greedy

    if not args.greedy:
        raise ValueError("--select-file, --teacher and --max-select-samples choose a greedy soup's ingredients: "
                         "add --greedy")
    check_greedy(task)
    if not args.select_file:
        raise ValueError("--greedy needs --select-file: held-out data to choose the ingredients on (never the "
                         "evaluation set)")
    if not Path(args.select_file).is_file():
        raise ValueError(f"--select-file {args.select_file}: no such file")


def _greedy(args, task, has_data: bool) -> tuple[list[str], dict, dict]:
    """A greedy soup's ingredients (``hub.soup_select.choose``) chosen on ``--select-file``, the
    record of the choice and the evaluation options to record for the soup (the first given
    model's, as a uniform soup of them all would have); refusals (a selection set that shares
    examples with an evaluation set, a written --output-dir) before any model is scored."""
    import argparse

    from .kinds import get_kind
    from .models import load_model
    from .soup import check_ingredients, check_output, trained_options
    from .soup_select import choose, ingredient_evaluations, score_name

    folders, cards, _ = check_ingredients(args.model, task.name)
    check_output(args.model, args.output_dir, args.overwrite)
    reference = load_model(str(folders[0]), task)[0]  # a classifier's labels: the data are read against them
    flags = argparse.Namespace(eval_file=args.select_file, data_dir=None, dataset=None, dataset_config=None,
                               text_column=args.text_column, label_column=args.label_column,
                               max_eval_samples=args.max_select_samples)
    selection = _load_data(flags, task, reference=reference, need_train=False)
    evaluations = ingredient_evaluations(task, cards, reference)
    if has_data:
        evaluations.append(_load_data(args, task, reference=reference, need_train=False))
    del reference
    recorded = trained_options(cards[0], getattr(get_kind(task), "eval_options", ()))
    options = {**recorded, **_eval_options(args, task)}  # as the soup will be scored
    print(f"greedy soup: scoring {len(folders)} models on {args.select_file} ({score_name(task, args.teacher)}) ...",
          file=sys.stderr, flush=True)
    chosen, record = choose(task, folders, options, selection, str(Path(args.select_file).resolve()), evaluations,
                            teacher=args.teacher, batch_size=args.batch_size, max_length=args.max_length,
                            progress=lambda line: print(line, file=sys.stderr, flush=True),
                            label=lambda f: Path(f).name)  # as a uniform soup's card names its ingredients
    record["max_samples"] = args.max_select_samples
    print(f"greedy soup: {len(chosen)} of {len(folders)} models kept", file=sys.stderr, flush=True)
    return [str(f) for f in chosen], record, recorded
