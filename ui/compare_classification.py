"""Compare section for classification tasks: one text (label, probabilities and
latency of each model, agreement, KL) or a batch of lines (agreement rate,
throughputs, the lines where they disagree). The model math is the kind's
(``hub.kinds.classification``: ``compare``, ``compare_batch``).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from hub.kinds import get_kind
from hub.tasks import TASKS

from . import DEFAULT_TASK, MAX_BATCH_LINES, MAX_TEXT_CHARS, PRIVATE, as_warning, fault, keyed, refuse
from .compare import check_task, predictors, runtime
from .links import compare_link_js

KIND = "classification"
TITLE = "Classification"
LINK_INPUT = "text"
LINK_OUTPUTS = ("out_a", "out_b", "stats")


def _warm(predictor) -> None:
    for _ in range(2):  # the first calls are slow; the latency shown must not include them
        predictor.predict("warm-up")


def check_text(text) -> str:
    """The text, stripped; refused when empty or over the limit (never silently cut)."""
    if not isinstance(text, str) or not text.strip():
        raise refuse("Type a text first.")
    if len(text) > MAX_TEXT_CHARS:
        raise refuse(f"The text is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}): "
                     "shorten it and compare again.")
    return text.strip()


def check_lines(lines) -> list[str]:
    """Non-empty lines, at most ``MAX_BATCH_LINES`` of at most ``MAX_TEXT_CHARS`` each."""
    if not isinstance(lines, str):
        raise refuse("Paste one text per line.")
    texts = [t.strip() for t in lines.splitlines() if t.strip()]
    if not texts:
        raise refuse("Paste one text per line first.")
    if len(texts) > MAX_BATCH_LINES:
        raise refuse(f"Too many lines ({len(texts):,}); the limit is {MAX_BATCH_LINES}.")
    long = [i + 1 for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if long:
        raise refuse(f"Line(s) {long[:5]} are longer than {MAX_TEXT_CHARS:,} characters.")
    return texts


def _run(method: str, task: str, a: str, b: str, inputs) -> dict:
    """The kind's ``method`` on both models, with ``runtime`` {"a", "b"}: how each ran
    ("PyTorch", "ONNX Runtime int8")."""
    t = check_task(task, KIND)
    pa, pb = predictors(t, a, b, warm=_warm)
    try:
        result = getattr(get_kind(t), method)(pa, pb, inputs)
    except Exception as exc:  # noqa: BLE001 - a model that fails on an input is a fault, not the user's
        raise fault("Running the models", exc) from None
    return {**result, "runtime": {"a": runtime(pa), "b": runtime(pb)}}


def api_compare(task: str, model_a: str, model_b: str, text: str) -> dict:
    """Both models on one text: label, probabilities and latency of each, whether they
    agree, KL(a || b) in nats, and the runtime each ran in ("PyTorch", "ONNX Runtime int8").

    Args:
        task: a classification task, e.g. "sst2".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        text: the input, at most 2,000 characters.
    """
    check_task(task, KIND)
    text = check_text(text)
    result = _run("compare", task, model_a, model_b, text)
    return {"task": task, "model_a": model_a, "model_b": model_b, **result}


def api_compare_batch(task: str, model_a: str, model_b: str, lines: str) -> dict:
    """Many texts, one per line (at most 200): agreement rate, both throughputs
    (texts/s) and the lines where the models disagree.

    Args:
        task: a classification task, e.g. "sst2".
        model_a: a model name from /models.
        model_b: a model name from /models.
        lines: one text per line, at most 200 lines of at most 2,000 characters.
    """
    check_task(task, KIND)
    texts = check_lines(lines)
    result = _run("compare_batch", task, model_a, model_b, texts)
    return {"task": task, "model_a": model_a, "model_b": model_b, **result}


API = {"compare": api_compare, "compare_batch": api_compare_batch}


# ---------------------------------------------------------------- views


def compare_view(task: str, a: str, b: str, text: str) -> dict:
    """One comparison as updates by name."""
    r = api_compare(task, a, b, text)
    ra, rb, rt = r["a"], r["b"], r["runtime"]
    agree = "**The models agree.**" if r["agree"] else "**The models disagree.**"
    stats = (f"{agree} KL(A‖B) = {r['kl']:.4f} nats · latency A {ra['latency_ms']:.1f} ms ({rt['a']}), "
             f"B {rb['latency_ms']:.1f} ms ({rt['b']}) (one text, tokenization included)")
    return {"out_a": gr.Label(value=ra["probabilities"], label=f"A · {a} · {ra['latency_ms']:.1f} ms · {rt['a']}"),
            "out_b": gr.Label(value=rb["probabilities"], label=f"B · {b} · {rb['latency_ms']:.1f} ms · {rt['b']}"),
            "stats": stats}


def batch_view(task: str, a: str, b: str, lines: str) -> dict:
    r = api_compare_batch(task, a, b, lines)
    rt = r["runtime"]
    stats = (f"**Agreement {100 * r['agreement']:.1f}%** on {r['n']} lines · throughput A "
             f"{r['throughput_a']:.0f}/s ({rt['a']}), B {r['throughput_b']:.0f}/s ({rt['b']}) · "
             f"{len(r['disagreements'])} disagreement(s)")
    return {"batch_stats": stats,
            "disagreements": pd.DataFrame(r["disagreements"], columns=["line", "text", "a", "b"])}


def on_task(task: str) -> dict:
    return {"examples": gr.Dropdown(choices=list(TASKS[task].examples), value=None)}


def from_link(task: str, a: str, b: str, text: str) -> dict:
    """The comparison a shared link shows at once; nothing when its values are not usable
    (the link notice already says why)."""
    try:
        return compare_view(task, a, b, text)
    except gr.Error:
        return {}


# ---------------------------------------------------------------- the section


def build() -> dict:
    c: dict = {}
    with gr.Tabs():
        with gr.Tab("One text"):
            c["text"] = gr.Textbox(label="Text", lines=3, elem_id="compare-text",
                                   info=f"at most {MAX_TEXT_CHARS:,} characters",
                                   placeholder="Type a sentence, or pick an example below")
            c["examples"] = gr.Dropdown(list(TASKS[DEFAULT_TASK].examples), value=None, label="Examples")
            with gr.Row():
                c["run"] = gr.Button("Compare", variant="primary", elem_id="compare-run")
                c["copy"] = gr.Button("Copy link", variant="secondary", elem_id="compare-copy")
            c["link"] = gr.Textbox(label="Shareable link", interactive=False, buttons=["copy"], elem_id="compare-link")
            with gr.Row():
                c["out_a"] = gr.Label(label="A", num_top_classes=3, elem_id="compare-out-a")
                c["out_b"] = gr.Label(label="B", num_top_classes=3, elem_id="compare-out-b")
            c["stats"] = gr.Markdown(elem_id="compare-stats")
        with gr.Tab("Batch"):
            c["lines"] = gr.Textbox(label=f"One text per line (at most {MAX_BATCH_LINES} lines)", lines=8,
                                    elem_id="compare-lines")
            c["run_batch"] = gr.Button("Compare all lines", variant="primary", elem_id="compare-run-batch")
            c["batch_stats"] = gr.Markdown(elem_id="compare-batch-stats")
            c["disagreements"] = gr.Dataframe(headers=["line", "text", "a", "b"], label="Disagreements",
                                              interactive=False, wrap=True, column_widths=["8%", "62%", "15%", "15%"])
    return c


def wire(c: dict, header: dict) -> None:
    pair = [header["task"], header["model_a"], header["model_b"]]
    c["examples"].input(lambda e: e or gr.skip(), c["examples"], c["text"], **PRIVATE, show_progress="hidden")
    compare = as_warning(lambda t, a, b, text: keyed(c, compare_view(t, a, b, text)))
    gr.on([c["run"].click, c["text"].submit], compare, [*pair, c["text"]], [c["out_a"], c["out_b"], c["stats"]],
          **PRIVATE, concurrency_limit=2)
    batch = as_warning(lambda t, a, b, lines: keyed(c, batch_view(t, a, b, lines)))
    c["run_batch"].click(batch, [*pair, c["lines"]], [c["batch_stats"], c["disagreements"]], **PRIVATE,
                         concurrency_limit=1)
    c["copy"].click(None, [*pair, c["text"]], c["link"], js=compare_link_js(), **PRIVATE)
