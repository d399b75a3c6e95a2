"""Greedy model soups: which ingredients to average, chosen on held-out data.

Wortsman et al. (2022), *Model soups*, recipe "greedy soup": score every
ingredient alone on a held-out selection set, rank them best first, start the
soup with the best one, and add each next one only when the soup's score on the
selection set does not fall. A uniform soup of every run can be pulled down by a
run from another basin or a weaker learning rate; the greedy soup leaves those
out, and is never worse on the selection set than its best ingredient alone.

The selection set must not be the evaluation set (a soup chosen on the questions
it is scored on reports an upper bound; ``hub soup`` refuses it). Two ways to
score, both "higher is better":

- against the selection file's labels: the task's headline metric (negated when
  lower is better, e.g. perplexity);
- against a teacher (``--teacher``): agreement with the teacher's predictions on
  the selection set (:func:`fidelity`); the file's labels are not used for the
  score (it must still be valid data of the task), so rule-made questions or
  unlabelled text the students never saw will do, and the soup is chosen for what
  distillation aims at: doing what the teacher does.

Greedy soups choose on per-example predictions: extractive QA and text
classification (``GREEDY_KINDS``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where weights are read: the server's checks import this module
    import torch

GREEDY_KINDS = ("qa", "classification")
MAX_SELECT = 5_000  # examples of an app's selection file: 2 passes a student over it, 16 students at most


def check_greedy(task) -> None:
    """A ``ValueError`` for a task whose soups cannot be chosen greedily here."""
    if task.kind not in GREEDY_KINDS or not task.head:
        raise ValueError(f"a greedy soup chooses on per-example predictions (extractive QA, text classification); "
                         f"task {task.name} is {task.kind}: average its students uniformly (no --greedy)")


def selection_passes(students: int, teacher: bool) -> int:
    """Passes over the selection set a greedy choice makes, in student passes: each student alone,
    each soup after the first, and the teacher's (about two student passes: a twice deeper model)."""
    return 2 * students - 1 + 2 * bool(teacher)


def fidelity(kind, predictions: list, reference: list) -> float:
    """Agreement (0-100) of ``predictions`` with a reference model's ``reference``: the kind's
    graded ``agreement_f1`` when it has one (QA: mean token F1 of the two answers, "no answer"
    against "no answer" 1), else its share of equal predictions."""
    graded = getattr(kind, "agreement_f1", None)
    return 100.0 * (graded(predictions, reference) if graded else kind.agreement(predictions, reference))


def score_name(task, teacher: str | None) -> str:
    """What a selection score is, for the run card."""
    from .kinds import get_kind

    if teacher:
        graded = getattr(get_kind(task), "agreement_f1", None) is not None
        return f"{'mean F1 of the answers against' if graded else 'agreement (%) with'} the teacher's, 0-100"
    return task.headline if task.higher_is_better else f"-{task.headline} (lower is better)"


def greedy_select(folders: list, score: Callable[[dict[str, torch.Tensor]], float],
                  progress: Callable[[str], None] = lambda line: None,
                  label: Callable[[Path], str] = str) -> tuple[list[Path], list[dict]]:
    """(the chosen folders in the order added, one record per ingredient): ``score(state)`` of each
    folder's weights alone, then of the uniform average of the chosen ones and the next, best
    alone first (ties: the order given); kept when the score does not fall below the soup's so far.
    The folders' weights must have one set of tensors (``hub.soup.check_ingredients``).

    Each record: ``path``, ``alone`` (its own score), ``rank`` (1 = best alone), ``soup_score``
    (the soup's score with it, None for the first), ``kept``, ``name`` (``label(folder)``: how
    progress lines and the model card name it)."""
    import math

    from safetensors.torch import load_file

    from .soup import WEIGHTS, WeightSum

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise ValueError("a greedy soup chooses among at least two models")
    alone, first = [], None
    for i, f in enumerate(folders):
        state = load_file(f / WEIGHTS)
        if first is None:
            first = WeightSum(state, label(f))
        else:
            first.check(state, label(f))  # refused before the passes, not after them
        alone.append(score(state))
        if not math.isfinite(alone[-1]):
            raise ValueError(f"{label(f)} scores {alone[-1]} on the selection set: it cannot be ranked")
        progress(f"{label(f)}: {alone[-1]:.3f} alone ({i + 1}/{len(folders)})")
    order = sorted(range(len(folders)), key=lambda i: -alone[i])
    chosen, best = [folders[order[0]]], alone[order[0]]
    del first
    total = WeightSum(load_file(chosen[0] / WEIGHTS), label(chosen[0]))
    records = [{"path": str(chosen[0]), "name": label(chosen[0]), "alone": alone[order[0]], "rank": 1,
                "soup_score": None, "kept": True}]
    for rank, i in enumerate(order[1:], start=2):
        state = load_file(folders[i] / WEIGHTS)
        with_it = score(total.mean(state))
        kept = with_it >= best
        progress(f"{label(folders[i])}: soup of {len(chosen) + 1} {with_it:.3f} against {best:.3f}: "
                 f"{'kept' if kept else 'left out'}")
        if kept:
            chosen.append(folders[i])
            total.add(state, label(folders[i]))
            best = with_it
        records.append({"path": str(folders[i]), "name": label(folders[i]), "alone": alone[i], "rank": rank,
                        "soup_score": with_it, "kept": kept})
    return chosen, records


def selection_size(task, data) -> int:
    """Examples in a selection set (questions, texts)."""
    from .kinds import get_kind

    return len(get_kind(task).tokenize_inputs(data, task))


def ingredient_evaluations(task, cards: list, reference) -> list:
    """The evaluation data each ingredient's run card names (``hub.soup.eval_source``), each
    distinct set once, those found and readable from here (``reference``: a loaded model, for a
    classifier's labels)."""
    from .data import DataError, DataSource
    from .kinds import get_kind
    from .soup import eval_source

    out, seen = [], set()
    for card in cards:
        source = eval_source([card])
        key = repr(source)
        if source is None or key in seen:
            continue
        seen.add(key)
        try:
            out.append(get_kind(task).load_data(task, DataSource(**source[0]), max_eval=source[1], need_train=False,
                                                reference=reference))
        except (DataError, OSError):  # a Hub set offline: nothing to compare with here
            continue
    return out


def check_held_out(task, selection, evaluations: list) -> None:
    """A ``ValueError`` when the selection set shares examples (the same question and paragraph,
    the same text) with one of ``evaluations`` (the soup's evaluation data, its ingredients'): a
    soup chosen on the examples it is scored on reports an upper bound."""
    from .kinds import get_kind

    kind = get_kind(task)
    chosen_on = kind.tokenize_inputs(selection, task)
    for evaluation in evaluations:
        scored = set(kind.tokenize_inputs(evaluation, task))
        shared = sum(x in scored for x in chosen_on)
        if shared:
            raise ValueError(f"the selection file shares {shared} example(s) with the evaluation set: a soup chosen "
                             "on the examples it is scored on reports an upper bound; choose on other held-out data")


def selection_scorer(task, folder: Path, options: dict, data, teacher: str | None = None, batch_size: int = 64,
                     max_length: int | None = None) -> Callable[[dict[str, torch.Tensor]], float]:
    """``score(state)``: the model of ``folder`` (its architecture and tokenizer) with ``state``
    loaded, evaluated on ``data`` (the kind's ``load_data`` result) with ``options`` (its
    evaluation options) at ``max_length`` (default: its training length); the headline metric in
    its "higher is better" direction, or with ``teacher`` (a model reference) the agreement with
    the teacher's predictions at the same length, computed once."""
    from .inference import load_trained
    from .kinds import get_kind

    check_greedy(task)
    kind = get_kind(task)
    model, tokenizer, _, length = load_trained(str(folder), task)
    max_length = max_length or length
    reference = None
    if teacher is not None:
        t_model, t_tokenizer, t_options, _ = load_trained(teacher, task)
        kind.check_teacher(t_model, data)  # e.g. a classifier with other labels
        reference = kind.evaluate(t_model, t_tokenizer, data, max_length=max_length, batch_size=batch_size,
                                  **t_options)["predictions"]
        del t_model
    sign = 1.0 if task.higher_is_better else -1.0

    def score(state: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(state)  # every tensor, or a clear error: a soup of partial weights is no soup
        result = kind.evaluate(model, tokenizer, data, max_length=max_length, batch_size=batch_size, **options)
        if reference is None:
            return sign * float(result[task.headline])
        return fidelity(kind, result["predictions"], reference)

    return score


def choose(task, folders: list, options: dict, selection, source: str, evaluations: list = (),
           teacher: str | None = None,
           batch_size: int = 64, max_length: int | None = None,
           progress: Callable[[str], None] = lambda line: None, label: Callable[[Path], str] = str
           ) -> tuple[list[Path], dict]:
    """A greedy soup's ingredients among ``folders`` (checked by ``hub.soup.check_ingredients``),
    chosen on ``selection`` (the kind's data; ``source``: its file, for the record) with the
    soup's evaluation ``options``: (the chosen folders, the record for the soup's run card,
    ``soup.selection``). Refused before any scoring when the selection set shares examples with
    one of ``evaluations`` (the soup's evaluation data and its ingredients', when known)."""
    import time

    check_greedy(task)
    check_held_out(task, selection, evaluations)
    start = time.perf_counter()
    score = selection_scorer(task, folders[0], options, selection, teacher=teacher, batch_size=batch_size,
                             max_length=max_length)
    if teacher is not None:
        progress("the teacher's predictions on the selection file are in")
    chosen, records = greedy_select(folders, score, progress=progress, label=label)
    return chosen, {"method": "greedy soup (Wortsman et al., 2022)", "data": source,
                    "size": selection_size(task, selection), "score": score_name(task, teacher), "teacher": teacher,
                    "options": options, "max_length": max_length, "ingredients": records,
                    "time_s": round(time.perf_counter() - start, 1)}
