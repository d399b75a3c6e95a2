"""Masked-token accuracy and perplexity for Distill Hub's masked-LM task, as an ``evaluate`` module.

Loaded offline from its folder: ``evaluate.load(".../mlm_local")`` (in the hub:
``hub.metrics.load_metric("mlm_local")``). One row per masked token: the model's
top-k token ids (best first), the original token id, and the model's negative
log-likelihood of the original token. The same fixed masks for every model make
the numbers comparable (``hub.kinds.mlm``).

One import per line: evaluate's dependency scanner misreads ``import a, b``.
"""

import math

import datasets
import evaluate

_DESCRIPTION = "Top-1 and top-k accuracy of masked-token predictions, and perplexity = exp(mean NLL)."
_KWARGS = """
Args:
    predictions (list of list of int): per masked token, the model's top-k token ids, best first.
    references (list of int): per masked token, the original token id.
    nll (list of float): per masked token, -log p(original token) in nats.
    k (int): the k of top-k accuracy (default 5; each prediction list needs at least k ids).
Returns:
    top1_accuracy (float), top5_accuracy (float, the share whose reference is among the first k ids),
    perplexity (float, exp of the mean NLL).
Examples:
    >>> m = evaluate.load("hub/metric_modules/mlm_local")
    >>> m.compute(predictions=[[7, 3], [2, 5]], references=[7, 5], nll=[0.0, math.log(4)], k=2)
    {'top1_accuracy': 0.5, 'top5_accuracy': 1.0, 'perplexity': 2.0}
"""


def masked_lm_scores(predictions, references, nll, k=5):
    """The arithmetic of the module on plain lists.

    >>> masked_lm_scores([[7, 3, 1], [2, 5, 9], [4, 4, 4]], [7, 9, 8], [0.1, 0.2, 0.3], k=3)["top5_accuracy"]
    0.6666666666666666
    >>> round(masked_lm_scores([[1]], [1], [math.log(10)], k=1)["perplexity"], 6)
    10.0
    """
    n = len(references)
    if n == 0:
        raise ValueError("cannot score an empty evaluation set (no masked tokens)")
    if len(predictions) != n or len(nll) != n:
        raise ValueError(f"{len(predictions)} predictions and {len(nll)} NLL values for {n} references")
    short = [i for i, p in enumerate(predictions) if len(p) < k]
    if short:
        raise ValueError(f"predictions {short[:5]} hold fewer than k={k} token ids")
    top1 = sum(int(p[0] == r) for p, r in zip(predictions, references)) / n
    topk = sum(int(r in p[:k]) for p, r in zip(predictions, references)) / n
    return {"top1_accuracy": top1, "top5_accuracy": topk, "perplexity": math.exp(sum(nll) / n)}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MlmLocal(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("int64")),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, nll=None, k=5):
        if nll is None:
            raise ValueError("mlm_local needs nll: the negative log-likelihood of each reference token")
        return masked_lm_scores(list(predictions), list(references), list(nll), int(k))
