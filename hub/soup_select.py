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
  the selection set (:func:`fidelity`), so no labels are needed — any unlabelled
  text the students never saw will do, and the soup is chosen for what
  distillation aims at: doing what the teacher does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file


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


def greedy_select(folders: list[Path], score: Callable[[dict[str, torch.Tensor]], float],
                  average: Callable[[list[Path]], dict[str, torch.Tensor]],
                  progress: Callable[[str], None] = lambda line: None) -> tuple[list[Path], list[dict]]:
    """(the chosen folders in the order added, one record per ingredient): ``score(state)`` of each
    folder's weights alone, then of ``average(chosen + [next])`` for each next one, best alone
    first (ties: the order given); kept when the score does not fall below the soup's so far.

    Each record: ``path``, ``alone`` (its own score), ``rank`` (1 = best alone), ``soup_score``
    (the soup's score with it, None for the first), ``kept``."""
    if len(folders) < 2:
        raise ValueError("a greedy soup chooses among at least two models")
    alone = []
    for i, f in enumerate(folders):
        alone.append(score(load_file(Path(f) / "model.safetensors")))
        progress(f"{f}: {alone[-1]:.3f} alone ({i + 1}/{len(folders)})")
    order = sorted(range(len(folders)), key=lambda i: -alone[i])
    chosen, best = [folders[order[0]]], alone[order[0]]
    records = [{"path": str(folders[order[0]]), "alone": alone[order[0]], "rank": 1, "soup_score": None, "kept": True}]
    for rank, i in enumerate(order[1:], start=2):
        with_it = score(average([*chosen, folders[i]]))
        kept = with_it >= best
        progress(f"{folders[i]}: soup of {len(chosen) + 1} {with_it:.3f} against {best:.3f}: "
                 f"{'kept' if kept else 'left out'}")
        if kept:
            chosen.append(folders[i])
            best = with_it
        records.append({"path": str(folders[i]), "alone": alone[i], "rank": rank, "soup_score": with_it, "kept": kept})
    return chosen, records


def selection_scorer(task, folder: Path, options: dict, data, teacher: str | None = None, batch_size: int = 64,
                     max_length: int | None = None) -> Callable[[dict[str, torch.Tensor]], float]:
    """``score(state)``: the model of ``folder`` (its architecture and tokenizer) with ``state``
    loaded, evaluated on ``data`` (the kind's ``load_data`` result) with ``options`` (its
    evaluation options); the headline metric in its "higher is better" direction, or with
    ``teacher`` (a model reference) the agreement with the teacher's predictions, computed once."""
    from .inference import load_trained
    from .kinds import get_kind

    kind = get_kind(task)
    model, tokenizer, _, length = load_trained(str(folder), task)
    max_length = max_length or length
    reference = None
    if teacher is not None:
        t_model, t_tokenizer, t_options, t_length = load_trained(teacher, task)
        result = kind.evaluate(t_model, t_tokenizer, data, max_length=t_length, batch_size=batch_size, **t_options)
        reference = result.get("predictions")
        if reference is None:
            raise ValueError(f"task {task.name!r} gives no predictions to compare with a teacher's: "
                             "select against the file's labels (no --teacher)")
        del t_model
    sign = 1.0 if task.higher_is_better else -1.0

    def score(state: dict[str, torch.Tensor]) -> float:
        model.load_state_dict(state)  # every tensor, or a clear error: a soup of partial weights is no soup
        result = kind.evaluate(model, tokenizer, data, max_length=max_length, batch_size=batch_size, **options)
        if reference is None:
            return sign * float(result[task.headline])
        return fidelity(kind, result["predictions"], reference)

    return score
