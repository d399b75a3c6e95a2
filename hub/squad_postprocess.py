"""SQuAD post-processing (``hub.squad``): the start/end logits of ``encode_eval``'s
windows back to answer texts, the best span of each question over all its
windows, with SQuAD 2.0's "no answer" decided by the null-answer threshold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence


def postprocess(examples: Sequence[dict], windows: Mapping[str, list], start_logits, end_logits,
                n_best: int = 20, max_answer_length: int = 30, null_threshold: float = 0.0,
                version_2: bool = True) -> dict[str, dict]:
    """Answer texts from the start/end logits of ``encode_eval``'s windows.

    ``start_logits``, ``end_logits``: (W, L) arrays or tensors (or W rows of
    different lengths), W = number of windows; positions past a window's own
    length (batch padding) are ignored.

    In each window the ``n_best`` highest start and end logits among the context
    tokens are paired (an (n_best, n_best) grid, vectorised); a pair is a span when
    ``start <= end`` and it is at most ``max_answer_length`` tokens long; its score
    is ``start_logit + end_logit``. (When no top pair is a valid span, all spans of
    that window are searched.) The best span over all windows of an example wins.

    ``null_score`` is the CLS token's ``start_logit + end_logit``, the minimum over
    the example's windows (as in transformers' ``run_qa.py``). With ``version_2``,
    the answer is empty (no answer) when ``null_score - best_span_score >
    null_threshold``: the threshold is the margin, in logits, by which "no answer"
    must beat the best span. Raise it to answer more often, lower it (negative
    values allowed) to abstain more often. With ``version_2=False`` the best span
    is always returned.

    Returns ``{id: {"text", "score", "null_score", "start_char", "end_char",
    "span_text", "span_score"}}``: ``text = context[start_char:end_char]``; for a
    null answer ``text`` is ``""``, ``score`` is the null score and the offsets are
    ``None``. ``span_text``/``span_score`` are the best span whatever the threshold
    (None when the windows hold no context token): what
    :func:`hub.squad_scores.null_threshold_search` needs to score every other threshold.
    """
    import numpy as np

    n_windows = len(windows["example_id"])
    start_rows = _logit_rows(start_logits, n_windows, "start_logits")
    end_rows = _logit_rows(end_logits, n_windows, "end_logits")
    cls_index = windows.get("cls_index") or [0] * n_windows
    by_example = defaultdict(list)
    for w, example_id in enumerate(windows["example_id"]):
        by_example[example_id].append(w)

    results = {}
    for ex in examples:
        window_ids = by_example.get(ex["id"])
        if not window_ids:
            raise ValueError(f"example {ex['id']!r} has no window; pass the windows encode_eval made for these examples")
        best = None  # (score, start_char, end_char)
        null_score = np.inf
        for w in window_ids:
            offsets = windows["offset_mapping"][w]
            n = len(offsets)
            if len(start_rows[w]) < n or len(end_rows[w]) < n:
                raise ValueError(f"window {w}: {len(start_rows[w])} logits for {n} tokens")
            start, end = start_rows[w][:n], end_rows[w][:n]
            c = cls_index[w]
            null_score = min(null_score, float(start[c] + end[c]))
            is_context = np.fromiter((o is not None for o in offsets), dtype=bool, count=n)
            span = _best_span(start, end, is_context, n_best, max_answer_length)
            if span is not None and (best is None or span[0] > best[0]):
                best = (span[0], offsets[span[1]][0], offsets[span[2]][1])
        span = {"span_text": None, "span_score": None}
        if best is not None:
            span = {"span_text": ex["context"][best[1]:best[2]], "span_score": best[0]}
        if best is None or (version_2 and null_score - best[0] > null_threshold):
            results[ex["id"]] = {"text": "", "score": null_score, "null_score": null_score,
                                 "start_char": None, "end_char": None, **span}
        else:
            score, start_char, end_char = best
            results[ex["id"]] = {"text": span["span_text"], "score": score, "null_score": null_score,
                                 "start_char": start_char, "end_char": end_char, **span}
    return results


def _logit_rows(logits, n_windows: int, name: str) -> list:
    """W float64 rows from a (W, L) tensor/array or a list of rows."""
    import numpy as np

    if hasattr(logits, "detach"):  # torch tensor
        logits = logits.detach().float().cpu().numpy()
    if isinstance(logits, np.ndarray):
        if logits.ndim != 2:
            raise ValueError(f"{name} must be (windows, tokens), got shape {logits.shape}")
        rows = logits.astype(np.float64, copy=False)
    else:
        rows = [np.asarray(row, dtype=np.float64) for row in logits]
    if len(rows) != n_windows:
        raise ValueError(f"{name} has {len(rows)} rows for {n_windows} windows")
    return rows


def _best_span(start, end, is_context, n_best: int, max_answer_length: int):
    """(score, start_token, end_token) of the best span of one window, or None.

    start, end: (L,) logits; is_context: (L,) bool, True on context tokens.
    """
    import numpy as np

    k = min(n_best, int(is_context.sum()))
    if k == 0 or max_answer_length < 1:
        return None
    s = np.where(is_context, start, -np.inf)
    e = np.where(is_context, end, -np.inf)
    top_s = np.argpartition(-s, k - 1)[:k]  # (k,) the k best start positions, unordered
    top_e = np.argpartition(-e, k - 1)[:k]
    length = top_e[None, :] - top_s[:, None]  # (k, k) end - start
    valid = (length >= 0) & (length < max_answer_length)
    if valid.any():
        score = np.where(valid, s[top_s][:, None] + e[top_e][None, :], -np.inf)  # (k, k)
        i, j = np.unravel_index(int(np.argmax(score)), score.shape)
        return float(score[i, j]), int(top_s[i]), int(top_e[j])
    # No valid pair among the top k: search every span of up to max_answer_length
    # tokens, one length at a time (L x max_answer_length, vectorised over L).
    best = None
    for gap in range(min(max_answer_length, len(s))):
        scores = s[:len(s) - gap] + e[gap:]  # spans (i, i + gap)
        i = int(np.argmax(scores))
        if np.isfinite(scores[i]) and (best is None or scores[i] > best[0]):
            best = (float(scores[i]), i, i + gap)
    return best
