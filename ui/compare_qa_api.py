"""The question-answering Compare section's API (``ui.compare_qa``): the limits on
its inputs and their checks, one question about one context on both models
(``/compare_qa``), and a batch of questions (``/compare_qa_batch``), read from the
task's eval set or from pasted SQuAD JSON.
"""

from __future__ import annotations

import functools

import gradio as gr

from hub import views
from hub.data import DataError, DataSource
from hub.kinds import get_kind
from hub.samples import choose_data_dir
from hub.squad import parse_squad_text
from hub.tasks import TASKS

from . import fault, refuse
from .compare import check_task, predictors, runtime

KIND = "qa"
MAX_QUESTION_CHARS = 500
MAX_CONTEXT_CHARS = 20_000
MAX_BATCH_QUESTIONS = 100  # per batch: both models read every window of every context
DEFAULT_BATCH_QUESTIONS = 20
MAX_SQUAD_JSON_CHARS = 500_000  # pasted SQuAD JSON (100 questions with their contexts fit)


def _warm(predictor) -> None:
    for _ in range(2):  # the first calls are slow; the latency shown must not include them
        predictor.predict("What is this?", "This is a warm-up.")


# ---------------------------------------------------------------- checks


def check_pair(question, context) -> tuple[str, str]:
    """The question and context, stripped; refused when empty or over the limits (never cut)."""
    if not isinstance(question, str) or not question.strip():
        raise refuse("Type a question first.")
    if not isinstance(context, str) or not context.strip():
        raise refuse("Paste a context (the text that holds the answer) first.")
    if len(question) > MAX_QUESTION_CHARS:
        raise refuse(f"The question is too long ({len(question):,} characters; the limit is "
                     f"{MAX_QUESTION_CHARS:,}): shorten it and compare again.")
    if len(context) > MAX_CONTEXT_CHARS:
        raise refuse(f"The context is too long ({len(context):,} characters; the limit is "
                     f"{MAX_CONTEXT_CHARS:,}): shorten it and compare again.")
    return question.strip(), context.strip()


# ---------------------------------------------------------------- the API


def api_compare_qa(task: str, model_a: str, model_b: str, question: str, context: str) -> dict:
    """Both models answer one question about one context: each answer (``""`` and
    ``no_answer`` when the model finds none), its character span in the context,
    score (start + end logit), latency; whether the two agree (same normalised
    answer) and ``f1_between`` (token F1 of one answer against the other, 0..1).

    Args:
        task: a question-answering task, e.g. "squad".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        question: at most 500 characters.
        context: the text holding the answer, at most 20,000 characters (read in overlapping windows).
    """
    t = check_task(task, KIND)
    question, context = check_pair(question, context)
    result = _run("compare", t, model_a, model_b, question, context)
    return {"task": task, "model_a": model_a, "model_b": model_b, "question": question, "context": context,
            **result}


def _run(method: str, t, a: str, b: str, *inputs) -> dict:
    """The kind's ``method`` on both models, with ``runtime`` {"a", "b"} ("PyTorch", "ONNX Runtime int8")."""
    pa, pb = predictors(t, a, b, warm=_warm)
    try:
        result = getattr(get_kind(t), method)(pa, pb, *inputs)
    except Exception as exc:  # noqa: BLE001 - a model that fails on an input is a fault, not the user's
        raise fault("Running the models", exc) from None
    return {**result, "runtime": {"a": runtime(pa), "b": runtime(pb)}}


def check_count(n) -> int:
    """The number of eval questions asked for: a whole number from 1 to ``MAX_BATCH_QUESTIONS``."""
    if isinstance(n, bool) or not isinstance(n, (int, float)) or n != int(n) or not 1 <= n <= MAX_BATCH_QUESTIONS:
        raise refuse(f"The number of questions must be a whole number from 1 to {MAX_BATCH_QUESTIONS}.")
    return int(n)


def pasted_items(text) -> list[dict]:
    """The questions of pasted SQuAD JSON (``{"data": [{"paragraphs": [{"context", "qas"}]}]}``,
    v1.1 or v2.0) as batch items with their gold answers; refused when malformed, empty
    or over the limits (never cut)."""
    if not isinstance(text, str) or not text.strip():
        raise refuse("Paste SQuAD JSON first, or compare eval-set questions.")
    if len(text) > MAX_SQUAD_JSON_CHARS:
        raise refuse(f"The pasted JSON is too long ({len(text):,} characters; the limit is "
                     f"{MAX_SQUAD_JSON_CHARS:,}).")
    try:
        examples = parse_squad_text(text, "the pasted JSON")
    except DataError as exc:
        raise refuse(str(exc)[:500]) from None
    if len(examples) > MAX_BATCH_QUESTIONS:
        raise refuse(f"The pasted JSON has {len(examples):,} questions; the limit is {MAX_BATCH_QUESTIONS}.")
    items = [_item(e) for e in examples]
    for i, item in enumerate(items):
        try:
            check_pair(item["question"], item["context"])
        except gr.Error as exc:
            raise refuse(f"Question {i + 1} ({examples[i]['id']!r}): {exc.message}") from None
    return items


def _item(example: dict) -> dict:
    """A batch item of a flat SQuAD example: question, context, gold answer texts ([] unanswerable)."""
    return {"question": example["question"], "context": example["context"],
            "answers": list(example["answers"]["text"])}


@functools.lru_cache(maxsize=4)
def _eval_set(task: str, folder: str) -> tuple:
    """The task's eval questions that fit the limits, read by the kind's data loader."""
    data = get_kind(TASKS[task]).load_data(TASKS[task], DataSource(data_dir=folder), need_train=False)
    return tuple(_item(e) for e in data.eval
                 if len(e["question"]) <= MAX_QUESTION_CHARS and len(e["context"]) <= MAX_CONTEXT_CHARS)


def eval_items(task: str, n: int) -> tuple[list[dict], str]:
    """``n`` eval questions spread evenly over the task's eval set (the local data
    folder, else the embedded sample) and where they come from."""
    rel = TASKS[task].local_files.get("eval")
    try:
        folder, where = choose_data_dir({"eval": rel}, views.data_dir())
        items = _eval_set(task, str(folder))
    except (FileNotFoundError, DataError, ValueError) as exc:
        raise fault("Reading the eval questions", exc) from None
    if not items:
        raise refuse("The eval set has no questions within the limits.")
    n = min(n, len(items))
    return [items[i * len(items) // n] for i in range(n)], where


def api_compare_qa_batch(task: str, model_a: str, model_b: str, n: int = DEFAULT_BATCH_QUESTIONS,
                         squad_json: str = "") -> dict:
    """Many questions at once: the pasted SQuAD JSON when given, else ``n`` questions
    spread over the task's eval set. Returns the agreement of the two models (share of
    questions with the same normalised answer), the questions where they disagree,
    each model's exact match and F1 against the gold answers (0-100), each model's
    throughput (questions/s) and runtime, and where the questions came from.

    Args:
        task: a question-answering task, e.g. "squad".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        n: eval-set questions to compare when no JSON is given, 1 to 100.
        squad_json: SQuAD v1.1/v2.0 JSON, at most 100 questions and 500,000 characters.
    """
    t = check_task(task, KIND)
    if isinstance(squad_json, str) and squad_json.strip():
        items, source = pasted_items(squad_json), "pasted JSON"
    else:
        items, source = eval_items(task, check_count(n))
    result = _run("compare_batch", t, model_a, model_b, items)
    return {"task": task, "model_a": model_a, "model_b": model_b, "source": source, **result}


API = {"compare_qa": api_compare_qa, "compare_qa_batch": api_compare_qa_batch}
