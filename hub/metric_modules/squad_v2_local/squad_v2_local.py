"""SQuAD v1.1/v2.0 exact match and F1 as an `evaluate` metric, computed offline
by ``hub.squad_scores.squad_scores`` (the official SQuAD 2.0 rules), so this module and
the package always agree. Inputs as in Hugging Face's ``squad_v2`` metric.

Load it by path (works offline; ``hub`` must be importable):
``evaluate.load("hub/metric_modules/squad_v2_local")`` or ``hub.squad_scores.squad_metric()``.
"""

import datasets
import evaluate

from hub.squad_scores import squad_scores

_CITATION = """\
@inproceedings{rajpurkar-etal-2018-know,
    title = "Know What You Don't Know: Unanswerable Questions for {SQ}u{AD}",
    author = "Rajpurkar, Pranav and Jia, Robin and Liang, Percy",
    booktitle = "Proceedings of ACL 2018",
    year = "2018",
}
"""

_DESCRIPTION = """\
Exact match and token F1 of extractive answers after the official SQuAD
normalisation (lower case, no punctuation, no articles a/an/the, collapsed
whitespace), best over the gold answers; an unanswerable question (no gold
answers) is answered correctly by the empty string. Scores are 0-100, with the
answerable (HasAns) and unanswerable (NoAns) questions also scored apart.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str, "no_answer_probability": float}.
    references: list of {"id": str, "answers": {"text": [str, ...], "answer_start": [int, ...]}};
        empty answer lists mark unanswerable questions.
    no_answer_threshold: a prediction whose no_answer_probability is above this
        counts as "no answer" (the empty string). Default 1.0: never, as in squad_v2.
Returns:
    exact_match, f1, total; HasAns_exact, HasAns_f1, HasAns_total and NoAns_exact,
    NoAns_f1, NoAns_total when the group has questions.
Examples:
    >>> metric = evaluate.load("hub/metric_modules/squad_v2_local")  # doctest: +SKIP
    >>> metric.compute(
    ...     predictions=[{"id": "q1", "prediction_text": "1976", "no_answer_probability": 0.0}],
    ...     references=[{"id": "q1", "answers": {"text": ["1976"], "answer_start": [97]}}],
    ... )  # doctest: +SKIP
    {'exact_match': 100.0, 'f1': 100.0, 'total': 1, 'HasAns_exact': 100.0, 'HasAns_f1': 100.0, 'HasAns_total': 1}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV2Local(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": {
                        "id": datasets.Value("string"),
                        "prediction_text": datasets.Value("string"),
                        "no_answer_probability": datasets.Value("float32"),
                    },
                    "references": {
                        "id": datasets.Value("string"),
                        "answers": datasets.Sequence(
                            {"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}
                        ),
                    },
                }
            ),
            reference_urls=["https://rajpurkar.github.io/SQuAD-explorer/"],
        )

    def _compute(self, predictions, references, no_answer_threshold=1.0):
        texts = {
            p["id"]: "" if p["no_answer_probability"] > no_answer_threshold else p["prediction_text"]
            for p in predictions
        }
        examples = [
            {"id": r["id"], "answers": r["answers"], "is_impossible": not r["answers"]["text"]}
            for r in references
        ]
        return squad_scores(texts, examples)
