"""A QA student's null-answer threshold, calibrated to its teacher (``python -m hub calibrate-null``).

A distilled SQuAD 2.0 student imitates its teacher's start and end logits, but its
"no answer" margin (null score - best span score, see
``hub.squad_postprocess.postprocess``) need not sit on the teacher's scale: at the
same threshold it may abstain much less (or more) often than its teacher. This
module picks the student's threshold so that its "no answer" decisions agree with
the teacher's as often as possible, on question/paragraph pairs that carry **no
labels**: no held-out SQuAD 2.0 set is needed, and the evaluation set is never
touched (choosing a threshold on the questions it is scored on reports an upper
bound, see ``hub.kinds.qa``).

The pairs: each calibration question with its own paragraph, and with a paragraph
of another article (:func:`unanswerable_pairs`: a pair that cannot hold its
answer, the kind of question a SQuAD 2.0 model must decline). The teacher
decides at its own threshold (its run card's, else 0); the student's threshold
is the one that maximises agreement, the nearest to the student's current one
among equally good ones (:func:`agreement_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .data import DataError

if TYPE_CHECKING:
    from .tasks import Task

OTHER = "#other-article"  # suffix of the ids of the paired-with-another-article questions


def articles_of(examples: Sequence[dict]):
    """The articles of ``examples``: their keys in first-seen order, each one's
    paragraphs (first-seen order) and the function giving an example's key.
    Articles are told apart by ``title``, by paragraph when all share one title;
    fewer than two is refused (no paragraph could be another article's)."""
    use_title = len({ex.get("title") or "" for ex in examples}) > 1

    def article(ex) -> str:
        return (ex.get("title") or "") if use_title else ex["context"]

    articles: dict[str, list[str]] = {}
    for ex in examples:
        paragraphs = articles.setdefault(article(ex), [])
        if ex["context"] not in paragraphs:
            paragraphs.append(ex["context"])
    keys = list(articles)
    if len(keys) < 2:
        raise DataError("unanswerable pairs need questions from at least two articles (or paragraphs) to pair a "
                        "question with a paragraph that cannot answer it")
    return keys, articles, article


def unanswerable_pairs(examples: Sequence[dict]) -> list[dict]:
    """Each question of ``examples`` paired with a paragraph of another article.

    Articles are told apart by ``title`` (by paragraph when all share one title).
    The ``i``-th question of ``examples`` (counted over the whole list) gets
    paragraph ``i mod n`` of the article after its own (the last article's
    questions go to the first one's), ``n`` that article's paragraphs; ids end in
    ``OTHER``, no answers. Deterministic: the same file gives the same pairs.

    >>> ex = [{"id": "1", "title": "A", "context": "a1", "question": "q1"},
    ...       {"id": "2", "title": "B", "context": "b1", "question": "q2"},
    ...       {"id": "3", "title": "B", "context": "b2", "question": "q3"}]
    >>> [(p["id"], p["context"]) for p in unanswerable_pairs(ex)]
    [('1#other-article', 'b1'), ('2#other-article', 'a1'), ('3#other-article', 'a1')]
    """
    keys, articles, article = articles_of(examples)
    position = {k: i for i, k in enumerate(keys)}
    out = []
    for i, ex in enumerate(examples):
        other = articles[keys[(position[article(ex)] + 1) % len(keys)]]
        out.append({"id": f"{ex['id']}{OTHER}", "title": "", "context": other[i % len(other)],
                    "question": ex["question"], "answers": {"text": [], "answer_start": []}, "is_impossible": True})
    return out


def agreement_threshold(margins: Sequence[float], reference_null: Sequence[bool], prefer: float = 0.0) -> dict:
    """The threshold at which "no answer" (``margin > threshold``) agrees most with ``reference_null``.

    ``margins``: the student's null score - best span score per pair (``inf``: no
    span at all, always "no answer"); ``reference_null``: the teacher's decisions.
    Agreement is constant between consecutive margins; among the best stretches
    the threshold is ``prefer`` when it lies in one, else the middle of the
    stretch nearest to ``prefer`` (1 beyond the extreme margin for an open-ended
    one: a threshold on a margin itself would sit on the edge of the decision).

    Returns ``threshold``, ``agreement`` (share of pairs, 0-1) and
    ``agreement_at_prefer``, ``null_rate`` (the student's at ``threshold``) and
    ``reference_null_rate``, ``n``.

    >>> r = agreement_threshold([-3.0, -1.0, 2.0, 5.0], [False, True, True, True])
    >>> r["threshold"], r["agreement"], r["agreement_at_prefer"]
    (-2.0, 1.0, 0.75)
    >>> agreement_threshold([-3.0, 2.0], [False, True])["threshold"]   # 0 already agrees fully: kept
    0.0
    """
    n = len(margins)
    if not n:
        raise ValueError("no calibration pairs")
    if not math.isfinite(prefer):
        raise ValueError(f"the preferred threshold must be finite, got {prefer!r}")
    if n != len(reference_null):
        raise ValueError(f"{n} margins against {len(reference_null)} reference decisions")
    ref = [bool(x) for x in reference_null]
    always = sum(r for m, r in zip(margins, ref) if not math.isfinite(m))  # no span: "no answer" at any threshold
    finite = sorted((float(m), r) for m, r in zip(margins, ref) if math.isfinite(m))
    # threshold below every finite margin: all of them "no answer"
    agree = always + sum(r for _, r in finite)
    points = sorted({m for m, _ in finite})
    stretches = []  # (agreement, low, high): thresholds in [low, high) give that agreement
    low, i = -math.inf, 0
    for p in points:
        stretches.append((agree, low, p))
        while i < len(finite) and finite[i][0] == p:  # margins equal to p stop being "no answer" once threshold >= p
            agree += -1 if finite[i][1] else 1
            i += 1
        low = p
    stretches.append((agree, low, math.inf))

    def inside(s):
        return s[1] <= prefer < s[2]

    def pick(s):
        if inside(s):
            return float(prefer)
        if math.isinf(s[1]):
            return s[2] - 1.0
        if math.isinf(s[2]):
            return s[1] + 1.0
        return (s[1] + s[2]) / 2

    def distance(s):  # from prefer to the stretch [low, high)
        return max(s[1] - prefer, prefer - s[2], 0.0)

    best = max(s[0] for s in stretches)
    chosen = min((s for s in stretches if s[0] == best), key=lambda s: (distance(s), abs(pick(s) - prefer)))
    threshold = pick(chosen)
    at_prefer = next(s[0] for s in stretches if inside(s))
    null_rate = (sum(not math.isfinite(m) for m in margins) + sum(m > threshold for m, _ in finite)) / n
    return {"threshold": threshold, "agreement": best / n, "agreement_at_prefer": at_prefer / n,
            "null_rate": null_rate, "reference_null_rate": sum(ref) / n, "n": n}


def margins_of(found: dict, examples: Sequence[dict]) -> list[float]:
    """Null score - best span score of each example from ``postprocess`` results (``inf``: no span)."""
    out = []
    for ex in examples:
        r = found[ex["id"]]
        out.append(math.inf if r.get("span_score") is None else float(r["null_score"]) - float(r["span_score"]))
    return out


def calibrate_null(kind, teacher, teacher_tokenizer, student, student_tokenizer, questions: Sequence[dict],
                   teacher_threshold: float = 0.0, student_threshold: float = 0.0,
                   teacher_length: int = 384, student_length: int = 384, batch_size: int = 64) -> dict:
    """The student's threshold that agrees most with the teacher's "no answer" decisions on
    ``questions`` (their own paragraphs) and :func:`unanswerable_pairs` of them.

    ``kind``: the QA kind (its ``answers`` runs a model over the pairs); the
    teacher decides at ``teacher_threshold``; ``student_threshold`` is the one the
    student uses now (kept when nothing better exists). Returns
    :func:`agreement_threshold`'s result with ``student_threshold_before``,
    ``teacher_threshold``, ``questions`` and ``pairs``, and the agreement on each
    half (``own_paragraph``, ``other_article``)."""
    if not questions:
        raise DataError("no calibration questions")
    pairs = list(questions) + unanswerable_pairs(questions)
    t = kind.answers(teacher, teacher_tokenizer, pairs, teacher_length, batch_size, teacher_threshold)
    s = kind.answers(student, student_tokenizer, pairs, student_length, batch_size, student_threshold)
    teacher_margins = margins_of(t, pairs)
    reference = [m > teacher_threshold for m in teacher_margins]  # inf > x: no span is "no answer"
    margins = margins_of(s, pairs)
    result = agreement_threshold(margins, reference, prefer=student_threshold)
    half = len(questions)
    for name, part in (("own_paragraph", slice(0, half)), ("other_article", slice(half, None))):
        ms, rs = margins[part], reference[part]
        result[name] = {
            "teacher_null_rate": sum(rs) / len(rs),
            "student_null_rate_before": sum(m > student_threshold for m in ms) / len(ms),
            "student_null_rate_after": sum(m > result["threshold"] for m in ms) / len(ms),
            "agreement_after": sum((m > result["threshold"]) == r for m, r in zip(ms, rs)) / len(ms),
        }
    return {**result, "student_threshold_before": float(student_threshold), "teacher_threshold": float(teacher_threshold),
            "questions": half, "pairs": len(pairs)}


def calibrate_saved(task, teacher_ref: str, model_ref: str, questions: Sequence[dict], batch_size: int = 64) -> dict:
    """:func:`calibrate_null` for two saved models (folders or Hub ids), each loaded with its
    trained head, its recorded null threshold (its run card's, else the kind's) and its
    training length (``hub.inference.load_trained``); refused when either has no trained head."""
    from .inference import load_trained
    from .kinds import get_kind

    kind = get_kind(task)
    (t, t_tok, t_options, t_length), (s, s_tok, s_options, s_length) = (load_trained(ref, task)
                                                                        for ref in (teacher_ref, model_ref))
    return calibrate_null(kind, t, t_tok, s, s_tok, questions,
                          teacher_threshold=t_options.get("null_threshold", kind.null_threshold),
                          student_threshold=s_options.get("null_threshold", kind.null_threshold),
                          teacher_length=t_length, student_length=s_length, batch_size=batch_size)


def recordable_card(folder) -> dict:
    """The run card of ``folder`` when a threshold can be recorded in it (a finished run of
    this hub); refused otherwise."""
    from .runs import read_card

    card = read_card(folder)
    if card is None:
        raise DataError(f"{folder} has no run card (run.json): only models trained here can record a threshold")
    if card.get("status") != "finished":
        raise DataError(f"{folder} has status {card.get('status')!r}: only a finished run records a threshold")
    return card


def real_questions(examples: Sequence[dict]) -> list[dict]:
    """The real questions of ``examples``: not a transfer set's made ones (``synthetic``
    cloze questions and negatives, ``augmented`` question copies)."""
    return [ex for ex in examples if not ex.get("synthetic") and not ex.get("augmented")]


def calibration_questions(examples: Sequence[dict]) -> list[dict]:
    """The questions of ``examples`` a calibration runs over: the real ones (a transfer
    set's made ones — ``synthetic`` cloze questions and negatives, ``augmented`` question
    copies — are left out); refused when none are left or they come from fewer than two
    articles (no other-article pairs).

    >>> calibration_questions([{"id": "1", "title": "A", "context": "a", "question": "q"},
    ...                        {"id": "2", "title": "B", "context": "b", "question": "q"},
    ...                        {"id": "3", "title": "C", "context": "c", "question": "q", "synthetic": "cloze"},
    ...                        {"id": "2-aug0", "title": "B", "context": "b", "question": "q2", "augmented": True}])[-1]["id"]
    '2'
    """
    questions = real_questions(examples)
    if not questions:
        raise DataError("no real training questions to calibrate on (only made ones: cloze questions, negatives, "
                        "augmented copies)")
    articles_of(questions)  # two articles at least
    return questions


def calibration_record(result: dict, teacher: str, calibration_data: str, how: str = "calibrate-null",
                       source: dict | None = None) -> dict:
    """What a run card keeps of a calibration (``null_calibration``): the threshold, the one
    before, the teacher and its threshold, the agreement before and after, the data and its
    size, how it was made (``calibrate-null`` or ``distill``) and when; ``source``: the
    calibration questions as ``calibrate-null`` flags take them (``train_file`` or
    ``dataset``/``dataset_config``, ``max_train_samples``), for the model card's command."""
    from .runs import utc_now

    return {"threshold": float(result["threshold"]), "before": result.get("student_threshold_before"),
            "teacher": teacher, "teacher_threshold": result.get("teacher_threshold"),
            "agreement": result.get("agreement"), "agreement_before": result.get("agreement_at_prefer"),
            "calibration_data": calibration_data, "questions": result.get("questions"), "pairs": result.get("pairs"),
            "how": how, **({"source": {k: v for k, v in source.items() if v is not None}} if source else {}),
            "at": utc_now()}


def record_calibration(folder, result: dict, teacher: str, calibration_data: str,
                       rescore: Callable[[float], dict] | None = None, source: dict | None = None) -> dict:
    """Make a calibrated threshold the model's own (``calibrate-null --apply``).

    The run card of ``folder`` (a finished QA model) gets ``eval_options.null_threshold``
    = ``result["threshold"]`` — what ``evaluate``, ``bench`` and the app's Compare read
    (see ``hub.kinds.qa``) — and the calibration under ``null_calibration``. Its recorded
    evaluation was made at the old threshold, so a card with scores needs
    ``rescore(threshold) -> scores`` (the same evaluation set): they are redone at the new
    threshold and the retention recomputed; the scores from before the first calibration
    stay as ``eval_before_calibration``. Scores are computed before anything is written,
    so a failed rescoring leaves the card as it was. The model card (README.md) is
    rewritten. Returns the new run card."""
    from pathlib import Path

    from .model_card import write_model_card
    from .runs import write_card
    from .tasks import get_task, retention

    folder = Path(folder)
    card = recordable_card(folder)
    old = card.get("eval")
    if old and rescore is None:
        raise DataError(f"{folder} has recorded scores made at another threshold: give the evaluation set to score "
                        "it again at the new one")
    threshold = float(result["threshold"])
    scores = rescore(threshold) if old else None
    card["eval_options"] = {**(card.get("eval_options") or {}), "null_threshold": threshold}
    card["null_calibration"] = calibration_record(result, teacher, calibration_data, source=source)
    if old:
        card.setdefault("eval_before_calibration", old)  # a second calibration keeps the uncalibrated scores
        key = "student" if "student" in old else "model"
        task = get_task(card["task"])
        card["eval"] = {**old, key: scores}
        teacher_scores = old.get("teacher") or {}
        if key == "student" and teacher_scores.get("eval_size") == scores.get("eval_size"):
            card["eval"]["retention"] = retention(task, scores.get(task.headline), teacher_scores.get(task.headline))
        else:
            card["eval"].pop("retention", None)
    write_card(folder, card)
    write_model_card(folder, card)
    return card


def check_calibrate_null(kind, task: Task, eval_options: dict | None) -> None:
    """``--calibrate-null`` is refused for a task without a null answer and with a threshold given."""
    if "null_threshold" not in getattr(kind, "eval_options", ()):
        raise ValueError(f"--calibrate-null is for question answering; task {task.name} has no null answer")
    if (eval_options or {}).get("null_threshold") is not None:
        raise ValueError("--calibrate-null sets the student's null threshold: give it without --null-threshold")


def null_calibrator(kind, task: Task, teacher_ref: str, teacher, tokenizer, data, max_length: int,
                    eval_options: dict | None, progress: Callable[[dict], None] | None = None):
    """``calibrate(student) -> null_calibration`` for :func:`hub.training.finish`
    (``distill --calibrate-null``): :func:`calibrate_null` over the
    real training questions of ``data`` (a transfer set's made ones left out), each with
    its own paragraph and another article's, the teacher deciding at its recorded
    threshold. Refuses, before any training, a task without a null answer, a
    threshold given as well, and questions from fewer than two articles."""
    from .inference import eval_options as recorded_options

    check_calibrate_null(kind, task, eval_options)
    questions = calibration_questions(data.train)
    teacher_threshold = recorded_options(teacher_ref, task).get("null_threshold", kind.null_threshold)
    described = getattr(data, "source", None) or {}
    where = described.get("train_file") or described.get("dataset") or "the training questions"

    def calibrate(student) -> dict:
        if progress:  # a phase over the pairs: each question with its own paragraph and another article's
            progress({"stage": "calibrate", "step": 0, "total": 2 * len(questions), "losses": {}})
        result = calibrate_null(kind, teacher, tokenizer, student, tokenizer, questions,
                                teacher_threshold=teacher_threshold, student_threshold=kind.null_threshold,
                                teacher_length=max_length, student_length=max_length)
        return calibration_record(result, teacher_ref, str(where), how="distill")

    return calibrate
