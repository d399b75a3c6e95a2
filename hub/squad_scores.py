"""SQuAD scoring with the official SQuAD 2.0 rules, as pure functions.

* ``squad_scores``: exact match and F1 (answers normalised: lower case, no
  punctuation, no articles, collapsed spaces; best over the gold answers), and for
  SQuAD 2.0 the HasAns/NoAns split; the ``evaluate`` module under
  ``hub/metric_modules/squad_v2_local`` computes the same numbers
  (``squad_metric()`` loads it offline).
* ``best_threshold`` / ``null_threshold_search``: the official script's search for
  the null-answer threshold that would have scored best.

>>> normalize_answer("The  Eiffel Tower!")
'eiffel tower'
>>> round(answer_f1("the cat sat", "a cat sat on the mat"), 4)   # P = 2/2, R = 2/4
0.6667
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

METRIC_MODULE = Path(__file__).resolve().parent / "metric_modules" / "squad_v2_local"


# ---------------------------------------------------------------- scoring


def normalize_answer(s: str) -> str:
    """The official SQuAD normalisation: lower case, drop punctuation, drop the
    articles a/an/the, collapse whitespace.

    >>> normalize_answer("An  apple, (the RED one).")
    'apple red one'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def answer_exact(prediction: str, gold: str) -> float:
    """1.0 when the two answers are equal after ``normalize_answer``, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def answer_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 (0..1) of two answers after ``normalize_answer``; two
    empty answers score 1, an empty one against a non-empty one 0 (SQuAD 2.0).

    >>> answer_f1("Santa Clara", "Santa Clara, California")   # P = 1, R = 2/3
    0.8
    >>> answer_f1("", "the")   # both normalise to nothing
    1.0
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_answers(example: Mapping) -> list[str]:
    """The gold texts of an example as the official script uses them: answers that
    normalise to nothing are dropped, and an unanswerable question's gold is ``[""]``."""
    if example.get("is_impossible", False):
        return [""]
    texts = [t for t in example["answers"]["text"] if normalize_answer(t)]
    return texts or [""]


def squad_scores(predictions: Mapping[str, str], examples: Sequence[Mapping]) -> dict:
    """Exact match and F1 (0-100) of ``predictions`` (id -> answer text, ``""`` for
    no answer) against ``examples`` (needs ``id``, ``answers`` and, optionally,
    ``is_impossible``; a question with no answers is unanswerable).

    Each question scores its best over its gold answers. Returns ``exact_match``,
    ``f1``, ``total``, and ``HasAns_exact``, ``HasAns_f1``, ``HasAns_total``
    (answerable questions) and ``NoAns_exact``, ``NoAns_f1``, ``NoAns_total``
    (unanswerable ones); a group's keys are absent when it has no question. Every
    example needs a prediction; predictions for other ids are ignored.
    """
    if not examples:
        raise ValueError("cannot score an empty evaluation set")
    missing = [ex["id"] for ex in examples if ex["id"] not in predictions]
    if missing:
        raise ValueError(f"no prediction for {len(missing)} question(s), e.g. {missing[:5]}")
    groups = {"HasAns": ([], []), "NoAns": ([], [])}
    for ex in examples:
        golds = gold_answers(ex)
        prediction = predictions[ex["id"]]
        has_answer = bool(ex["answers"]["text"]) and not ex.get("is_impossible", False)
        exact, f1 = groups["HasAns" if has_answer else "NoAns"]
        exact.append(max(answer_exact(prediction, g) for g in golds))
        f1.append(max(answer_f1(prediction, g) for g in golds))
    all_exact = groups["HasAns"][0] + groups["NoAns"][0]
    all_f1 = groups["HasAns"][1] + groups["NoAns"][1]
    out = {"exact_match": 100.0 * sum(all_exact) / len(all_exact),
           "f1": 100.0 * sum(all_f1) / len(all_f1),
           "total": len(all_exact)}
    for group, (exact, f1) in groups.items():
        if exact:
            out[f"{group}_exact"] = 100.0 * sum(exact) / len(exact)
            out[f"{group}_f1"] = 100.0 * sum(f1) / len(f1)
            out[f"{group}_total"] = len(exact)
    return out


# ---------------------------------------------------------------- the null-answer threshold


def best_threshold(margins: Sequence[float], span_scores: Sequence[float],
                   null_scores: Sequence[float]) -> tuple[float, float]:
    """The best mean score (0-100) over every null-answer threshold, and that threshold.

    Question i answers "no answer" when ``margins[i] > threshold`` (``margin`` =
    null score - best span score, the rule of :func:`postprocess`), scoring
    ``null_scores[i]``, else its best span, scoring ``span_scores[i]``; a margin of
    ``inf`` (no span at all) is always "no answer".

    This is ``find_best_thresh`` of the official SQuAD 2.0 evaluation script
    (``evaluate-v2.0.py``), with the margin in the place of its ``na_prob``: start
    with every question null, switch them to their span in order of increasing
    margin, keep the best running total (the lowest threshold on a tie). Two
    differences, both so that the threshold returned reproduces the score when
    passed back as ``postprocess(null_threshold=...)``: questions with equal
    margins switch together (the script may stop inside such a group, at a
    threshold that would switch all of them), and when answering nothing is
    best the threshold is 1 below the smallest margin (the script says 0.0,
    which for margins below 0 would answer some of them).

    >>> # margins -2, 1, 3: switching q0 gains 1, q1 loses 1 (unanswerable), q2 gains 0.5
    >>> best_threshold([-2.0, 1.0, 3.0], [1.0, 0.0, 0.5], [0.0, 1.0, 0.0])
    (66.66666666666667, -2.0)
    >>> best_threshold([-2.0, 1.0, 3.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0])   # +1 -1 +1: a tie keeps the lower one
    (66.66666666666667, -2.0)
    >>> best_threshold([0.5, 4.0], [0.0, 0.0], [1.0, 1.0])   # both unanswerable: answer nothing
    (100.0, -0.5)
    """
    n = len(margins)
    if not n:
        raise ValueError("cannot search a threshold on no questions")
    if not n == len(span_scores) == len(null_scores):
        raise ValueError(f"{n} margins, {len(span_scores)} span scores and {len(null_scores)} null scores")
    current = float(sum(null_scores))  # every question "no answer"
    best, best_t = current, None
    gains = sorted((float(m), s - z) for m, s, z in zip(margins, span_scores, null_scores) if math.isfinite(m))
    i = 0
    while i < len(gains):
        margin = gains[i][0]
        while i < len(gains) and gains[i][0] == margin:  # a group of equal margins switches together
            current += gains[i][1]
            i += 1
        if current > best + 1e-9:  # strictly better (float sums of F1 values may differ by rounding)
            best, best_t = current, margin
    if best_t is None:
        best_t = gains[0][0] - 1.0 if gains else 0.0
    return 100.0 * best / n, best_t


def null_threshold_search(examples: Sequence[Mapping], found: Mapping[str, Mapping]) -> dict:
    """``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh`` of
    :func:`postprocess` results ``found`` (any threshold: it reads the best span and
    the null score of each question) against ``examples``' gold answers, as the
    official SQuAD 2.0 script reports them (scores 0-100, thresholds in logits, the
    ``null_threshold`` to pass back).

    These thresholds are fitted on the very questions they score: ``best_f1`` is an
    upper bound for this model on this set, not a held-out number (see
    ``hub.kinds.qa``).
    """
    margins, exact_span, exact_null, f1_span, f1_null = [], [], [], [], []
    for ex in examples:
        r = found[ex["id"]]
        golds = gold_answers(ex)
        span = r.get("span_text")
        margins.append(math.inf if span is None else float(r["null_score"]) - float(r["span_score"]))
        exact_null.append(max(answer_exact("", g) for g in golds))
        f1_null.append(max(answer_f1("", g) for g in golds))
        exact_span.append(exact_null[-1] if span is None else max(answer_exact(span, g) for g in golds))
        f1_span.append(f1_null[-1] if span is None else max(answer_f1(span, g) for g in golds))
    best_exact, exact_t = best_threshold(margins, exact_span, exact_null)
    best_f1, f1_t = best_threshold(margins, f1_span, f1_null)
    return {"best_exact": best_exact, "best_exact_thresh": exact_t, "best_f1": best_f1, "best_f1_thresh": f1_t}


def squad_metric(**kwargs):
    """Our SQuAD metric as an ``evaluate`` module, loaded offline from
    ``hub/metric_modules/squad_v2_local`` (computes ``squad_scores``)."""
    import evaluate

    return evaluate.load(str(METRIC_MODULE), **kwargs)
