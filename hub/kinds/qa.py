"""Extractive question answering (SQuAD v1.1/v2.0): the ``qa`` kind.

Data: SQuAD JSON files (``hub.squad.read_squad``) or Hub ``squad``/``squad_v2``
rows (``hub.squad.squad_from_records``), validated before any training.
Encoding: question + context in overlapping windows of ``max_length`` tokens
(384 by default, the kind's ``default_max_length``), ``doc_stride`` tokens of
overlap (128, at most a third of ``max_length``); a long context is never cut
off, it gets more windows.
Targets: ``start_positions``/``end_positions`` (B,) per window (the CLS index
when the window holds no answer). Adaptor: two ``(B, L)`` logits tensors, start
and end, one distribution over positions per window, with question and padding
positions filled with ``NEG`` (CLS stays allowed: it is the "no answer" position).
Metrics: exact match and F1 (0-100) with the official SQuAD 2.0 rules, through
our ``evaluate`` module ``squad_v2_local``.

The null-answer threshold. A question gets "no answer" when its null score beats
its best span by more than ``null_threshold`` logits (``hub.squad_postprocess.postprocess``).
``evaluate`` scores exact match and F1 at the threshold it is given, and also
reports what the official SQuAD 2.0 script reports: ``best_exact``/``best_f1``,
the scores at the best threshold for this eval set, and ``best_exact_thresh``/
``best_f1_thresh``, those thresholds. Where a threshold comes from, first found:

1. an explicit one (``--null-threshold`` of ``evaluate``/``bench``, the
   ``null_threshold`` argument);
2. the model's run card, ``eval_options.null_threshold``: ``finetune``/``distill``
   record there the threshold they were given (and evaluated with), and
   ``evaluate``, ``bench`` and the Compare predictor use it;
3. ``QAKind.null_threshold`` (0.0, transformers' ``run_qa.py`` default).

``best_f1_thresh`` is never applied by itself: it is fitted on the questions it
scores, so using it there would report an upper bound as the model's F1. To tune
a threshold, run ``evaluate`` on questions held out from the final eval set, and
pass its ``best_f1_thresh`` as ``--null-threshold`` to ``distill``/``finetune``
(which records it) or to ``evaluate``/``bench``. Without a labelled held-out set,
``python -m hub calibrate-null`` (``hub.null_calibration``) gives a student the
threshold at which its "no answer" decisions agree most with its teacher's, on
the training questions alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

from .. import squad
from ..squad_postprocess import postprocess
from ..squad_scores import answer_f1, normalize_answer, null_threshold_search, squad_scores
from ..config import QA_NULL_THRESHOLD
from ..data import DataError, augmentation_of
from ..metrics import load_metric
from .qa_data import (DEFAULT_MAX_LENGTH, DOC_STRIDE, MODEL_INPUTS, QACollator, QAData, QATargets, _answerable,
                      _context_masks, _hub_examples, check_source, doc_stride_for, read_examples)
from .qa_predict import Answer, QAPredictor, _pair_and_gold, window_logits

__all__ = [  # the kind, and what moved to .qa_data and .qa_predict (still importable from here)
    "KIND", "NEG", "QAKind",
    "DEFAULT_MAX_LENGTH", "DOC_STRIDE", "MODEL_INPUTS", "QACollator", "QAData", "QATargets", "check_source",
    "doc_stride_for", "read_examples", "Answer", "QAPredictor", "window_logits",
]

NEG = -1.0e4  # logit of a position that must not take probability (finite: KL stays 0 * finite there)


# ---------------------------------------------------------------- the kind


class QAKind:
    name = "qa"
    head = "QuestionAnswering"
    target_columns = ("start_positions", "end_positions")
    token_level = True  # the logit cache stores (L,) start and end scores per window
    cache_logits = True
    default_max_length = DEFAULT_MAX_LENGTH
    bench_fixed_length = DEFAULT_MAX_LENGTH  # the benchmark times full 384-token windows beside the natural length
    null_threshold = QA_NULL_THRESHOLD  # postprocess: answer "" when null_score - best_span > this
    eval_options = ("null_threshold",)  # settings evaluate/predictor take and run cards record (see the module doc)

    # ------------------------------------------------------------ data
    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None) -> QAData:
        """Validated flat examples from ``source`` (a :class:`hub.data.DataSource`);
        ``reference`` (a loaded model) is not needed for QA."""
        check_source(source)
        if source.dataset:
            train, evals, meta = _hub_examples(task, source.dataset, source.dataset_config, need_train)
        else:
            train_file, eval_file = source.files(task, need_train)
            train = read_examples(train_file) if need_train else []
            evals = read_examples(eval_file)
            meta = {"kind": "files", "data_dir": source.data_dir, "train_file": train_file, "eval_file": eval_file}
            if need_train and (augmented := augmentation_of(train_file)):  # how its training file was made
                meta["augmentation"] = augmented
        if max_train is not None and need_train:
            train = train[: max(int(max_train), 0)]
        if max_eval is not None:
            evals = evals[: max(int(max_eval), 0)]
        if need_train and not train:
            raise DataError("no training questions left (check --max-train-samples)")
        if not evals:
            raise DataError("no evaluation questions left (check --max-eval-samples)")
        meta.update(train_size=len(train), eval_size=len(evals), train_answerable=_answerable(train),
                    eval_answerable=_answerable(evals))
        return QAData(train, evals, meta)

    def first_examples(self, data: QAData, n: int) -> QAData:
        """The first ``n`` training questions (a stage's share: ``--intermediate-train-samples``)."""
        return replace(data, train=data.train[:n])

    def negatives_teacher_only(self, data: QAData) -> QAData:
        """``distill --negative-target teacher``: the training questions' made
        negatives (``synthetic: "negative"``, from ``cloze --negatives``) marked
        ``teacher_only`` (no gold positions: the teacher's distributions alone teach
        them). Refused when the training data has none."""
        marked = [{**ex, "teacher_only": True} if ex.get("synthetic") == "negative" else ex for ex in data.train]
        if not any(ex.get("teacher_only") for ex in marked):
            raise DataError("--negative-target teacher: the training data has no made negatives (questions paired "
                            "with another article's paragraph); make them with `python -m hub cloze ... --negatives 1`")
        return replace(data, train=marked)

    def head_kwargs(self, data) -> dict:
        return {}

    def check_teacher(self, teacher, data) -> None:
        """Any extractive QA model can teach on any SQuAD data (no label vocabulary)."""
        if "QuestionAnswering" not in type(teacher).__name__:
            raise ValueError(f"{type(teacher).__name__} is not an extractive question-answering model")

    # ------------------------------------------------------------ training
    def encode_train(self, tokenizer, data: QAData, max_length: int):
        """Training windows as a ``datasets.Dataset``: model inputs, ``start_positions``,
        ``end_positions``, ``context_mask`` (1 on context and CLS), ``idx`` (window
        index, the logit cache's key) and ``length`` (tokens)."""
        from datasets import Dataset

        if not data.train:
            raise DataError("no training questions")
        stride = doc_stride_for(max_length)
        train = squad.encode_train(tokenizer, data.train, max_length, stride)
        windows = squad.encode_eval(tokenizer, data.train, max_length, stride)  # same windows: offsets for the mask
        if windows["input_ids"] != train["input_ids"]:
            raise RuntimeError("training and evaluation windows differ (tokenizer not deterministic?)")
        columns = {k: train[k] for k in MODEL_INPUTS if k in train}
        columns.update(start_positions=train["start_positions"], end_positions=train["end_positions"],
                       context_mask=_context_masks(windows))
        columns["idx"] = list(range(len(train["input_ids"])))
        columns["length"] = [len(ids) for ids in train["input_ids"]]
        return Dataset.from_dict(columns)

    def collator(self, tokenizer) -> QACollator:
        return QACollator(tokenizer)

    def split_targets(self, batch: dict) -> QATargets:
        """Pops ``start_positions``/``end_positions`` (the targets) and ``context_mask``
        (kept on the returned targets for :meth:`adapt`) out of ``batch``."""
        targets = {k: batch.pop(k) for k in self.target_columns if k in batch}
        return QATargets(targets, batch.pop("context_mask", None))

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict:
        """Start and end logits (B, L) with non-context positions (question, special,
        padding; CLS excepted) at ``NEG``; labels (B,) each or None; ``mask`` None
        (each tensor is one distribution over positions per window).

        The allowed positions come from ``targets.context_mask`` (see
        :meth:`split_targets`); without one, only padding is masked."""
        allowed = getattr(targets, "context_mask", None)
        if allowed is None:
            allowed = inputs["attention_mask"]
        allowed = allowed.to(outputs.start_logits.device).bool()
        length = outputs.start_logits.shape[1]
        if allowed.shape[1] != length:
            raise ValueError(f"context mask of {allowed.shape[1]} positions for logits of {length}")
        logits = [x.masked_fill(~allowed, NEG) for x in (outputs.start_logits, outputs.end_logits)]
        labels = [targets.get("start_positions"), targets.get("end_positions")]
        return {"logits": logits, "labels": [None, None] if labels[0] is None else labels, "mask": None}

    # ------------------------------------------------------------ evaluation
    def threshold(self, null_threshold: float | None) -> float:
        """The threshold to use: ``null_threshold`` when given (finite), else the kind's default."""
        if null_threshold is None:
            return self.null_threshold
        if isinstance(null_threshold, bool) or not isinstance(null_threshold, (int, float)) \
                or not math.isfinite(null_threshold):
            raise ValueError(f"null_threshold must be a finite number of logits, got {null_threshold!r}")
        return float(null_threshold)

    def answers(self, model, tokenizer, examples: list[dict], max_length: int, batch_size: int = 64,
                null_threshold: float | None = None) -> dict:
        """``hub.squad_postprocess.postprocess`` results of ``model`` on ``examples``: {id: {text, score, ...}}."""
        windows = squad.encode_eval(tokenizer, examples, max_length, doc_stride_for(max_length))
        starts, ends = window_logits(model, tokenizer, windows, batch_size)
        return postprocess(examples, windows, starts, ends, null_threshold=self.threshold(null_threshold))

    def evaluate(self, model, tokenizer, data: QAData, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 64,
                 null_threshold: float | None = None) -> dict:
        """``exact_match``, ``f1``, ``HasAns_exact``, ``HasAns_f1`` (and ``NoAns_exact``,
        ``NoAns_f1`` when the eval set has unanswerable questions), 0-100, at
        ``null_threshold`` (None: the kind's default; see the module doc);
        ``best_exact``, ``best_exact_thresh``, ``best_f1``, ``best_f1_thresh`` (the
        official script's threshold search on this eval set); ``eval_size``
        (questions), ``null_threshold`` (the one used) and ``predictions`` (answer
        texts in eval order, ``""`` for no answer)."""
        threshold = self.threshold(null_threshold)
        found = self.answers(model, tokenizer, data.eval, max_length, batch_size, threshold)
        preds = [found[ex["id"]]["text"] for ex in data.eval]
        scores = load_metric("squad_v2_local").compute(
            predictions=[{"id": ex["id"], "prediction_text": p, "no_answer_probability": 0.0}
                         for ex, p in zip(data.eval, preds)],
            references=[{"id": ex["id"], "answers": ex["answers"]} for ex in data.eval],
        )
        keep = ("exact_match", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1")
        return {**{k: float(scores[k]) for k in keep if k in scores},
                **null_threshold_search(data.eval, found), "eval_size": len(data.eval),
                "null_threshold": threshold, "predictions": preds}

    def agreement(self, predictions_a: list, predictions_b: list) -> float:
        """Share of questions where the two normalised answers are equal (both "no answer" agrees)."""
        return _mean_over(predictions_a, predictions_b, lambda a, b: normalize_answer(a) == normalize_answer(b))

    def agreement_f1(self, predictions_a: list, predictions_b: list) -> float:
        """Mean token F1 (0..1) of one model's answers against the other's (both "no answer": 1; one: 0)."""
        return _mean_over(predictions_a, predictions_b, answer_f1)

    chance_name = 'always answering "no answer"'  # what chance_level scores

    def chance_level(self, data: QAData) -> float:
        """Overall F1 (0-100) of always answering "no answer" (the share of
        unanswerable questions, on SQuAD 2.0 data about 50)."""
        return squad_scores({ex["id"]: "" for ex in data.eval}, data.eval)["f1"]

    def eval_pairs(self, data, task) -> list[tuple[str, str]]:
        if data is not None:
            return [(ex["question"], ex["context"]) for ex in data.eval]
        return [tuple(x) for x in task.examples] or [("What is this?", "This is a test.")]

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None,
                       max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        """Batch-1 encodings of question + context: the first window at its natural
        length (at most ``max_length``), or padded/truncated to ``fixed_len``."""
        out = []
        for q, c in self.eval_pairs(data, task):
            if fixed_len is None:
                enc = tokenizer(q, c, truncation=True, max_length=max_length, return_tensors="pt")
            else:
                enc = tokenizer(q, c, truncation=True, max_length=fixed_len, padding="max_length", return_tensors="pt")
            out.append(dict(enc))
        return out

    def batches(self, tokenizer, data, task, batch_size: int, max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        """First windows, sorted by length, in padded batches (the throughput measurement)."""
        pairs = sorted(self.eval_pairs(data, task), key=lambda p: len(p[0]) + len(p[1]))
        return [dict(tokenizer([q for q, _ in pairs[i : i + batch_size]], [c for _, c in pairs[i : i + batch_size]],
                               truncation=True, max_length=max_length, padding=True, return_tensors="pt"))
                for i in range(0, len(pairs), batch_size)]

    def tokenize_inputs(self, data, task) -> list[tuple[str, str]]:
        """What a user sends: (question, context) pairs (tokenization is timed apart)."""
        return self.eval_pairs(data, task)

    # ------------------------------------------------------------ demo
    def predictor(self, model, tokenizer, task, max_length: int = DEFAULT_MAX_LENGTH,
                  null_threshold: float | None = None) -> QAPredictor:
        """The demo's predictor; ``null_threshold`` None is the kind's default (the
        loader passes the one a run card records)."""
        return QAPredictor(model, tokenizer, task, max_length, self.threshold(null_threshold))

    def compare(self, a: QAPredictor, b: QAPredictor, question: str, context: str) -> dict:
        """Both models on one question: their answers, ``agree`` (same normalised
        answer) and ``f1_between`` (token F1 of one answer against the other, 0..1)."""
        pa, pb = a.predict(question, context), b.predict(question, context)
        return {"a": pa, "b": pb,
                "agree": normalize_answer(pa["answer"]) == normalize_answer(pb["answer"]),
                "f1_between": answer_f1(pa["answer"], pb["answer"])}

    def compare_batch(self, a: QAPredictor, b: QAPredictor, items: list) -> dict:
        """Agreement, each model's questions/s, the disagreements and, over the items
        that carry gold answers, each model's exact match and F1 (0-100)."""
        parsed = [_pair_and_gold(item, i) for i, item in enumerate(items)]
        pairs = [(q, c) for q, c, _ in parsed]

        def run(predictor):
            t0 = time.perf_counter()
            answers = predictor.predict_batch(pairs)
            return answers, len(pairs) / max(time.perf_counter() - t0, 1e-9)

        ans_a, tput_a = run(a)
        ans_b, tput_b = run(b)
        disagree = [{"line": i + 1, "question": q, "a": x, "b": y}
                    for i, ((q, _), x, y) in enumerate(zip(pairs, ans_a, ans_b))
                    if normalize_answer(x) != normalize_answer(y)]
        out = {"n": len(pairs), "agreement": 1 - len(disagree) / len(pairs) if pairs else float("nan"),
               "throughput_a": tput_a, "throughput_b": tput_b, "disagreements": disagree}
        gold = [(i, g) for i, (_, _, g) in enumerate(parsed) if g is not None]
        if gold:
            examples = [{"id": str(i), "answers": {"text": g, "answer_start": [0] * len(g)}, "is_impossible": not g}
                        for i, g in gold]
            for name, answers in (("a", ans_a), ("b", ans_b)):
                s = squad_scores({str(i): answers[i] for i, _ in gold}, examples)
                out[f"exact_match_{name}"], out[f"f1_{name}"] = s["exact_match"], s["f1"]
            out["n_gold"] = len(gold)
        return out


def _mean_over(predictions_a: list, predictions_b: list, score) -> float:
    """The mean of ``score(a, b)`` over two models' answers to the same questions."""
    if len(predictions_a) != len(predictions_b):
        raise ValueError(f"{len(predictions_a)} answers against {len(predictions_b)}")
    if not predictions_a:
        raise ValueError("no answers to compare")
    return sum(score(a, b) for a, b in zip(predictions_a, predictions_b)) / len(predictions_a)


KIND = QAKind()
