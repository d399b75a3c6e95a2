"""Extractive question answering (SQuAD v1.1 and v2.0), as pure building blocks.

* ``read_squad`` / ``squad_from_records``: read and validate the data before any
  training; every problem raises :class:`hub.data.DataError` naming the file, the
  article and the question.
* ``encode_train`` / ``encode_eval``: question + context into overlapping windows
  of at most ``max_length`` tokens (a fast tokenizer is required: the answer is
  located through its character offsets).
* ``postprocess`` (in :mod:`hub.squad_postprocess`): start/end logits of the
  windows back to answer texts, with SQuAD 2.0's "no answer".
* scoring (exact match, F1, the null-answer threshold search) lives in
  :mod:`hub.squad_scores`.

A flat *example* is ``{"id", "title", "context", "question", "answers": {"text":
[...], "answer_start": [...]}, "is_impossible"}``, the layout of the Hub's
``squad``/``squad_v2`` data sets plus the ``is_impossible`` flag.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .data import DataError
from .squad_postprocess import postprocess

__all__ = [  # reading and encoding, and postprocess (moved to .squad_postprocess, still importable from here)
    "ROW_COLUMNS", "read_squad", "parse_squad_text", "parse_squad", "squad_from_records", "squad_document",
    "encode_train", "encode_eval", "postprocess",
]

ROW_COLUMNS = ("id", "context", "question", "answers")  # "title" is optional


# ---------------------------------------------------------------- reading


def read_squad(path: str | Path) -> list[dict]:
    """Flat examples from a SQuAD-format JSON file (v1.1 or v2.0).

    The file is ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id",
    "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}``;
    v1.1 files have no ``is_impossible`` (every question is answerable). SQuAD 2.0's
    ``plausible_answers`` of unanswerable questions are ignored.
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{name}: not a valid JSON file ({exc})") from exc
    return parse_squad(raw, name)


def parse_squad_text(text: str, name: str = "pasted JSON") -> list[dict]:
    """Flat examples from SQuAD JSON given as text (a pasted file), validated as
    :func:`read_squad` validates a file; ``name`` stands for the file in messages."""
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"{name}: not valid JSON ({exc})") from exc
    return parse_squad(raw, name)


def parse_squad(raw, name: str) -> list[dict]:
    """Flat examples from a parsed SQuAD document (see :func:`read_squad`)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise DataError(
            f"{name}: no 'data' list at the top level; a SQuAD file is "
            "{'data': [{'title': ..., 'paragraphs': [{'context': ..., 'qas': [...]}]}]}"
        )
    examples = []
    for a, article in enumerate(raw["data"]):
        title = (article.get("title") or "") if isinstance(article, dict) else ""
        where = f"{name}: article {a}" + (f" ({title!r})" if title else "")
        if not isinstance(title, str):
            raise DataError(f"{where}: 'title' must be text, got {type(title).__name__}")
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataError(f"{where}: missing 'paragraphs' list")
        for p, paragraph in enumerate(article["paragraphs"]):
            at = f"{where}, paragraph {p}"
            if not isinstance(paragraph, dict):
                raise DataError(f"{at}: a paragraph must be an object with 'context' and 'qas'")
            context = paragraph.get("context")
            _require_text(context, at, "context")
            if not isinstance(paragraph.get("qas"), list):
                raise DataError(f"{at}: missing 'qas' list")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, dict):
                    raise DataError(f"{at}, question #{q}: a question must be an object")
                qid = qa.get("id")
                at_q = f"{at}, question " + (f"{qid!r}" if qid not in (None, "") else f"#{q} (no 'id')")
                answers = qa.get("answers")
                if not isinstance(answers, list) or not all(isinstance(x, dict) for x in answers):
                    raise DataError(f"{at_q}: 'answers' must be a list of {{'text', 'answer_start'}}")
                missing = [k for x in answers for k in ("text", "answer_start") if k not in x]
                if missing:
                    raise DataError(f"{at_q}: answer without {sorted(set(missing))}")
                ex = _example(at_q, qid, title, context, qa.get("question"),
                              [x["text"] for x in answers], [x["answer_start"] for x in answers],
                              qa.get("is_impossible", False), allow_unanswerable=True)
                if isinstance(qa.get("synthetic"), str) and qa["synthetic"]:  # a transfer set's made question
                    ex["synthetic"] = qa["synthetic"]
                if qa.get("augmented") is True:  # an augmented copy of a question (hub augment)
                    ex["augmented"] = True
                examples.append(ex)
    if not examples:
        raise DataError(f"{name}: no questions")
    _check_unique_ids(examples, name)
    return examples


def squad_from_records(records: Iterable[Mapping], name: str, allow_unanswerable: bool = True) -> list[dict]:
    """Validate Hub ``squad``/``squad_v2`` rows (``id, title, context, question,
    answers={"text": [...], "answer_start": [...]}``) into flat examples.

    A row with no answers is an unanswerable (SQuAD 2.0) question; with
    ``allow_unanswerable=False`` (SQuAD v1.1 data) it is an error. ``records`` may be
    a list of dicts, a ``datasets.Dataset`` or a pandas DataFrame.
    """
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # pandas
        records = records.to_dict("records")
    examples = []
    for i, row in enumerate(records):
        missing = [c for c in ROW_COLUMNS if c not in row]
        if missing:
            raise DataError(f"{name}: row {i}: missing column(s) {missing}; a SQuAD row has "
                            "id, title, context, question, answers")
        title = row.get("title") or ""
        where = f"{name}: row {i}" + (f", article {title!r}" if title else "") + f", question {row['id']!r}"
        answers = row["answers"]
        if not isinstance(answers, Mapping) or "text" not in answers or "answer_start" not in answers:
            raise DataError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}}")
        texts, starts = list(answers["text"]), list(answers["answer_start"])
        if len(texts) != len(starts):
            raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values")
        examples.append(_example(where, row["id"], title, row["context"], row["question"], texts, starts,
                                 is_impossible=not texts, allow_unanswerable=allow_unanswerable))
    if not examples:
        raise DataError(f"{name}: no questions")
    _check_unique_ids(examples, name)
    return examples


def _example(where, qid, title, context, question, texts, starts, is_impossible, allow_unanswerable) -> dict:
    """One validated flat example; ``where`` names the file, article and question."""
    if isinstance(qid, numbers.Integral) and not isinstance(qid, bool):
        qid = str(qid)
    if not isinstance(qid, str) or not qid.strip():
        raise DataError(f"{where}: missing question 'id'")
    _require_text(context, where, "context")
    _require_text(question, where, "question")
    if not isinstance(is_impossible, bool):
        raise DataError(f"{where}: 'is_impossible' must be true or false, got {is_impossible!r}")
    if is_impossible and texts:
        raise DataError(f"{where}: marked is_impossible but has {len(texts)} answer(s)")
    if not is_impossible and not texts:
        raise DataError(f"{where}: an answerable question (no is_impossible: true) has no answers")
    if is_impossible and not allow_unanswerable:
        raise DataError(f"{where}: no answers, and this data set does not allow unanswerable questions")
    clean_starts = []
    for k, (text, start) in enumerate(zip(texts, starts)):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: answer {k} has an empty text")
        if not isinstance(start, numbers.Integral) or isinstance(start, bool) or start < 0:
            raise DataError(f"{where}: answer {k} ({text!r}) has answer_start {start!r}; "
                            "expected a character offset >= 0")
        found = context[start:start + len(text)]
        if found != text:
            raise DataError(f"{where}: answer {k} {text!r} is not at answer_start {start} "
                            f"(the context there reads {found!r})")
        clean_starts.append(int(start))
    return {"id": qid, "title": title, "context": context, "question": question,
            "answers": {"text": list(texts), "answer_start": clean_starts}, "is_impossible": is_impossible}


def squad_document(examples: Sequence[Mapping], extra: Sequence[str] = ()) -> dict:
    """Flat examples back into a SQuAD 2.0 document (what :func:`parse_squad` reads):
    one article per title and one paragraph per context, in first-seen order; the
    keys named in ``extra`` are kept on each question when present.

    >>> ex = {"id": "q1", "title": "T", "context": "Paris is in France.", "question": "Where is Paris?",
    ...       "answers": {"text": ["France"], "answer_start": [12]}, "is_impossible": False}
    >>> parse_squad(squad_document([ex]), "doc") == [ex]
    True
    """
    articles: dict[str, dict[str, list]] = {}
    for ex in examples:
        answers = [{"text": t, "answer_start": s} for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"])]
        qa = {"id": ex["id"], "question": ex["question"], "answers": answers,
              "is_impossible": bool(ex.get("is_impossible", False))}
        qa.update({k: ex[k] for k in extra if k in ex})
        articles.setdefault(ex.get("title") or "", {}).setdefault(ex["context"], []).append(qa)
    return {"version": "v2.0", "data": [
        {"title": title, "paragraphs": [{"context": context, "qas": qas} for context, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}


def _require_text(value, where: str, field: str) -> None:
    if value is None:
        raise DataError(f"{where}: missing {field!r}")
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: empty {field!r}")


def _check_unique_ids(examples: list[dict], name: str) -> None:
    seen = {}
    for ex in examples:
        if ex["id"] in seen:
            raise DataError(f"{name}: question id {ex['id']!r} appears twice "
                            f"(articles {seen[ex['id']]!r} and {ex['title']!r})")
        seen[ex["id"]] = ex["title"]


# ---------------------------------------------------------------- encoding


def _tokenize_windows(tokenizer, examples: Sequence[dict], max_length: int, doc_stride: int):
    """Tokenize question + context into overlapping windows.

    ``doc_stride`` is the overlap, in tokens, between consecutive windows of one
    context (the tokenizer's ``stride``, as in transformers' ``run_qa.py``).
    Returns the tokenizer's ``BatchEncoding`` and the sequence id of the context.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} is a slow (Python) tokenizer; question answering needs a fast "
            "tokenizer (character offsets): load it with AutoTokenizer.from_pretrained(..., use_fast=True) "
            "or use a model folder that has tokenizer.json"
        )
    if not examples:
        raise ValueError("no examples to encode")
    if not 0 <= doc_stride < max_length:
        raise ValueError(f"doc_stride={doc_stride} must be >= 0 and smaller than max_length={max_length}")
    questions = [ex["question"].lstrip() for ex in examples]  # leading spaces waste tokens
    contexts = [ex["context"] for ex in examples]
    # Tokenizers that pad on the left (XLNet) expect the context first.
    question_first = tokenizer.padding_side == "right"
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    q_lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for ex, n in zip(examples, q_lengths):
        room = max_length - specials - n
        if room <= doc_stride:  # the tokenizer would fail (or panic) on this question
            raise ValueError(
                f"question {ex['id']!r} takes {n} tokens: with max_length={max_length} only {room} tokens "
                f"are left for the context, which must be more than doc_stride={doc_stride}; "
                "raise max_length, lower doc_stride or shorten the question"
            )
    encoding = tokenizer(
        questions if question_first else contexts,
        contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first",
        max_length=max_length,
        stride=doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    return encoding, 1 if question_first else 0


def _model_inputs(encoding) -> dict[str, list]:
    return {k: list(encoding[k]) for k in ("input_ids", "token_type_ids", "attention_mask") if k in encoding}


IGNORE = -100  # a target position the hard-label loss skips (PyTorch's cross_entropy ignore_index)


def _cls_index(input_ids: list[int], cls_token_id) -> int:
    return input_ids.index(cls_token_id) if cls_token_id in input_ids else 0


def encode_train(tokenizer, examples: Sequence[dict], max_length: int = 384, doc_stride: int = 128) -> dict[str, list]:
    """Training windows with gold answer positions.

    Returns a dict of lists, one entry per window: ``input_ids``, ``attention_mask``
    (and ``token_type_ids`` when the tokenizer makes them), ``start_positions`` and
    ``end_positions`` (token indices of the first and last token of the first gold
    answer; the CLS index, 0 for BERT, for unanswerable questions and for windows
    that do not hold the whole answer) and ``example_index`` (index into
    ``examples``). Windows are not padded (pad per batch, e.g. with
    ``DataCollatorWithPadding``). An example marked ``teacher_only`` (a made negative
    under ``distill --negative-target teacher``) has no gold positions: ``IGNORE``
    (-100) in both, which the hard-label loss skips.
    """
    encoding, context_id = _tokenize_windows(tokenizer, examples, max_length, doc_stride)
    out = _model_inputs(encoding)
    out.update(start_positions=[], end_positions=[], example_index=[])
    for w, ex_index in enumerate(encoding["overflow_to_sample_mapping"]):
        ex = examples[ex_index]
        cls = _cls_index(encoding["input_ids"][w], tokenizer.cls_token_id)
        start = end = IGNORE if ex.get("teacher_only") else cls
        if ex["answers"]["text"] and not ex.get("is_impossible", False):
            start_char = ex["answers"]["answer_start"][0]
            end_char = start_char + len(ex["answers"]["text"][0])
            start, end = _gold_positions(encoding["offset_mapping"][w], encoding.sequence_ids(w),
                                         context_id, start_char, end_char, cls)
        out["start_positions"].append(start)
        out["end_positions"].append(end)
        out["example_index"].append(ex_index)
    return out


def _gold_positions(offsets, sequence_ids, context_id: int, start_char: int, end_char: int, cls: int):
    """First and last token of the answer ``[start_char, end_char)`` in one window,
    or ``(cls, cls)`` when the window's context does not hold all of it."""
    context = [k for k, s in enumerate(sequence_ids) if s == context_id]
    if not context or offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
        return cls, cls
    inside = [k for k in context if offsets[k][1] > start_char and offsets[k][0] < end_char]
    if not inside:  # the answer's characters were dropped by the tokenizer's normaliser
        return cls, cls
    return inside[0], inside[-1]


def encode_eval(tokenizer, examples: Sequence[dict], max_length: int = 384, doc_stride: int = 128) -> dict[str, list]:
    """Evaluation windows: the model inputs plus what ``postprocess`` needs.

    Per window: ``input_ids``, ``attention_mask`` (``token_type_ids``),
    ``offset_mapping`` (one ``(start_char, end_char)`` per token of the context,
    ``None`` for question, special and padding tokens), ``example_id`` (the
    example's ``id``) and ``cls_index`` (the CLS token's position, where a null
    answer points). Drop the last three before calling the model.
    """
    encoding, context_id = _tokenize_windows(tokenizer, examples, max_length, doc_stride)
    out = _model_inputs(encoding)
    out.update(offset_mapping=[], example_id=[], cls_index=[])
    for w, ex_index in enumerate(encoding["overflow_to_sample_mapping"]):
        sequence_ids = encoding.sequence_ids(w)
        out["offset_mapping"].append([tuple(o) if s == context_id else None
                                      for o, s in zip(encoding["offset_mapping"][w], sequence_ids)])
        out["example_id"].append(examples[ex_index]["id"])
        out["cls_index"].append(_cls_index(encoding["input_ids"][w], tokenizer.cls_token_id))
    return out
