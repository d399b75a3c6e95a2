"""Compare section for extractive question answering: one question about one
context, both models' answers side by side, each highlighted in the context,
with its score and latency, whether the two agree (same normalised answer) and
their F1 against each other. The model math is the kind's (``hub.kinds.qa``:
``compare``); a long context is read in overlapping windows there.

Examples are the task's own (no gold answer) and, when the local eval set is
there (``$HUB_DATA_DIR``, the task's ``local_files["eval"]``), a few of its
questions with their gold answers.

Batch mode compares many questions at once: ``n`` questions spread over the
task's eval set (read by the kind's data loader from the local data folder, else
from the embedded sample) or pasted SQuAD JSON, at most ``MAX_BATCH_QUESTIONS``.
It reports the agreement of the two models (same normalised answer), each
model's exact match and F1 against the gold answers, and each model's
throughput in questions per second (``hub.kinds.qa``: ``compare_batch``).

Each answer says which runtime produced it (PyTorch, or ONNX Runtime fp32/int8
for an exported variant), beside its latency.

Shared links carry one ``text``: here it is ``{"question": ..., "context": ...}``
as JSON (:func:`link_text`, :func:`parse_link_text`), at most
``ui.MAX_TEXT_CHARS`` characters in all; a longer pair gets no link (the copy
button says so) rather than a cut one.
"""

from __future__ import annotations

import functools
import json

import gradio as gr

import pandas as pd

from hub import views
from hub.squad import read_squad
from hub.tasks import TASKS

from . import MAX_TEXT_CHARS, PRIVATE, as_warning, esc, keyed, log
from .compare_qa_api import (API, DEFAULT_BATCH_QUESTIONS, KIND, MAX_BATCH_QUESTIONS, MAX_CONTEXT_CHARS,
                             MAX_QUESTION_CHARS, MAX_SQUAD_JSON_CHARS, api_compare_qa, api_compare_qa_batch,
                             check_count, check_pair, eval_items, pasted_items)
from .links import compare_link_js

__all__ = [  # the section, and what moved to .compare_qa_api (still importable from here)
    "TITLE", "LINK_INPUT", "LINK_OUTPUTS", "EVAL_EXAMPLES", "EXAMPLE_CONTEXT_CHARS", "EXCERPT_CHARS", "BATCH_COLUMNS",
    "CONTEXT_STYLE", "MARK_STYLE", "examples", "example_choices", "gold_text", "pick_example", "link_text",
    "parse_link_text", "link_js", "highlight", "answer_html", "compare_view", "batch_stats", "pasted_view",
    "batch_view", "on_task", "from_link", "build", "wire",
    "KIND", "MAX_QUESTION_CHARS", "MAX_CONTEXT_CHARS", "MAX_BATCH_QUESTIONS", "DEFAULT_BATCH_QUESTIONS",
    "MAX_SQUAD_JSON_CHARS", "API", "api_compare_qa", "api_compare_qa_batch", "check_pair", "check_count",
    "pasted_items", "eval_items",
]

TITLE = "Question answering"
LINK_INPUT = "link_text"
LINK_OUTPUTS = ("question", "context", "gold", "out_a", "out_b", "stats")
EVAL_EXAMPLES = 6  # eval-set questions offered as examples (half of them unanswerable when possible)
EXAMPLE_CONTEXT_CHARS = 1_200  # eval examples with shorter contexts read better on the page
EXCERPT_CHARS = 400  # context shown on each side of a highlighted answer
BATCH_COLUMNS = ["#", "question", "a", "b"]
# inline styles: the section ships no stylesheet of its own
CONTEXT_STYLE = "style='white-space:pre-wrap;line-height:1.5;margin-top:6px;max-height:22em;overflow:auto'"
MARK_STYLE = "style='padding:0 2px;border-radius:3px'"


# ---------------------------------------------------------------- examples


@functools.lru_cache(maxsize=4)
def _eval_examples(path: str, n: int) -> tuple:
    """``n`` short eval questions of a SQuAD file, answerable and unanswerable alternating."""
    try:
        flat = read_squad(path)
    except Exception:  # noqa: BLE001 - a broken eval file must not break the page
        log.exception("reading the QA eval examples failed")
        return ()
    short = [e for e in flat if len(e["context"]) <= EXAMPLE_CONTEXT_CHARS and len(e["question"]) <= MAX_QUESTION_CHARS]
    seen, answerable, impossible = set(), [], []
    for e in short:  # one question per context: the examples differ
        if e["context"] in seen:
            continue
        seen.add(e["context"])
        (answerable if e["answers"]["text"] else impossible).append(e)
    mixed = [x for pair in zip(answerable, impossible) for x in pair] + answerable[len(impossible):]
    return tuple({"question": e["question"], "context": e["context"], "gold": list(e["answers"]["text"]),
                  "source": "eval set"} for e in mixed[:n])


def examples(task: str) -> list[dict]:
    """The task's examples (``gold`` None: not known) then eval-set questions with their gold answers."""
    out = [{"question": q, "context": c, "gold": None, "source": "example"} for q, c in TASKS[task].examples]
    root, rel = views.data_dir(), TASKS[task].local_files.get("eval")
    if root is not None and rel and (root / rel).is_file():
        out += list(_eval_examples(str(root / rel), EVAL_EXAMPLES))
    return out


def example_choices(task: str) -> list[tuple[str, int]]:
    """(label, index) pairs for the examples dropdown."""
    def label(e):
        q = e["question"] if len(e["question"]) <= 80 else e["question"][:79] + "…"
        return f"{q} ({e['source']})"
    return [(label(e), i) for i, e in enumerate(examples(task))]


def gold_text(gold: list[str] | None) -> str:
    """The gold answer line of an eval example ("" when there is none to show)."""
    if gold is None:
        return ""
    if not gold:
        return "**Gold answer** (eval set): *no answer* — the context does not answer this question."
    alts = sorted(set(gold[1:]) - {gold[0]})
    also = f" · also accepted: {', '.join(esc(a) for a in alts)}" if alts else ""
    return f"**Gold answer** (eval set): {esc(gold[0])}{also}"


def pick_example(task: str, index) -> dict:
    items = examples(task) if task in TASKS and TASKS[task].kind == KIND else []
    if not isinstance(index, int) or not 0 <= index < len(items):
        return {}
    e = items[index]
    return {"question": e["question"], "context": e["context"], "gold": gold_text(e["gold"])}


# ---------------------------------------------------------------- links


def link_text(question: str, context: str) -> str:
    """The ``text`` of a shared link: the pair as compact JSON."""
    return json.dumps({"question": question, "context": context}, ensure_ascii=False, separators=(",", ":"))


def parse_link_text(text) -> tuple[str, str] | None:
    """(question, context) of a link's ``text``; None when it is not a pair."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in ("question", "context")):
        return None
    return value["question"], value["context"]


def link_js() -> str:
    """Browser-side: the link of (task, a, b, question, context); the pair is the link's
    text as JSON (``link_text``), refused when longer than the link allows."""
    return """(task, a, b, question, context) => {
  const text = JSON.stringify({question: question || '', context: context || ''});
  if (text.length > %d) {
    return 'The question and context are too long for a link (' + text.length
      + ' characters; a link holds %s). Shorten the context to share it.';
  }
  const make = %s;
  return make(task, a, b, text);
}""" % (MAX_TEXT_CHARS, f"{MAX_TEXT_CHARS:,}", compare_link_js())


# ---------------------------------------------------------------- views


def highlight(context: str, start: int | None, end: int | None, limit: int = EXCERPT_CHARS) -> str:
    """HTML of the context with ``context[start:end]`` in ``<mark>`` (text escaped);
    a long context is cut to ``limit`` characters on each side of the answer."""
    if start is None or end is None or not 0 <= start <= end <= len(context):
        text = context if len(context) <= 2 * limit else context[: 2 * limit] + " …"
        return f"<div {CONTEXT_STYLE}>{esc(text)}</div>"
    lo, hi = max(0, start - limit), min(len(context), end + limit)
    before = ("… " if lo > 0 else "") + esc(context[lo:start])
    after = esc(context[end:hi]) + (" …" if hi < len(context) else "")
    return f"<div {CONTEXT_STYLE}>{before}<mark {MARK_STYLE}>{esc(context[start:end])}</mark>{after}</div>"


def _threshold_words(r: dict) -> str:
    """The model's own "no answer" threshold, when it is not the default 0 (a calibrated or
    tuned one, recorded in its run card)."""
    t = r.get("null_threshold")
    return f" · \"no answer\" when the null score beats the best span by more than {t:.2f}" if t else ""


def answer_html(which: str, name: str, r: dict, context: str, runtime_words: str = "PyTorch") -> str:
    """One model's answer card: the answer (or "no answer"), score, latency and runtime,
    the context highlighted."""
    if r["no_answer"]:
        answer = "<i>no answer</i> — the model finds none in the context"
    else:
        answer = f"<b>{esc(r['answer'])}</b>"
    return (f"<div class='qa-answer'><div class='hub-caption'>{which} · {esc(name)}</div>"
            f"<div style='font-size:1.1em;margin:4px 0'>{answer}</div>"
            f"<div class='hub-caption'>score {r['score']:.2f} (start + end logit) · {r['latency_ms']:.1f} ms · "
            f"{esc(runtime_words)}{_threshold_words(r)}</div>"
            f"{highlight(context, r['start_char'], r['end_char'])}</div>")


def compare_view(task: str, a: str, b: str, question: str, context: str) -> dict:
    """One comparison as updates by name."""
    r = api_compare_qa(task, a, b, question, context)
    ra, rb, rt = r["a"], r["b"], r["runtime"]
    agree = "**The models agree.**" if r["agree"] else "**The models disagree.**"
    stats = (f"{agree} F1 between the answers {100 * r['f1_between']:.0f}% · latency A {ra['latency_ms']:.1f} ms "
             f"({rt['a']}), B {rb['latency_ms']:.1f} ms ({rt['b']}) (one question, tokenization and every window "
             "of the context included)")
    return {"out_a": answer_html("A", a, ra, r["context"], rt["a"]),
            "out_b": answer_html("B", b, rb, r["context"], rt["b"]), "stats": stats}


def batch_stats(r: dict) -> str:
    """The batch result in one paragraph: agreement, EM/F1 against gold, throughput and runtime."""
    rt = r["runtime"]
    gold = ""
    if r.get("n_gold"):
        gold = (f" · against the gold answers ({r['n_gold']} questions): A EM {r['exact_match_a']:.1f} / "
                f"F1 {r['f1_a']:.1f}, B EM {r['exact_match_b']:.1f} / F1 {r['f1_b']:.1f}")
    return (f"**Agreement {100 * r['agreement']:.1f}%** on {r['n']} questions ({esc(views.redact_text(r['source']))}){gold} · "
            f"throughput A {r['throughput_a']:.1f} questions/s ({rt['a']}), B {r['throughput_b']:.1f} "
            f"questions/s ({rt['b']}) · {len(r['disagreements'])} disagreement(s)")


def pasted_view(task: str, a: str, b: str, squad_json) -> dict:
    """The batch comparison of pasted SQuAD JSON (refused when nothing is pasted)."""
    pasted_items(squad_json)  # the refusal for empty or malformed JSON, before any model loads
    return batch_view(task, a, b, DEFAULT_BATCH_QUESTIONS, squad_json)


def batch_view(task: str, a: str, b: str, n, squad_json: str = "") -> dict:
    """A batch comparison as updates by name: the stats and the disagreements table
    ("no answer" written out)."""
    r = api_compare_qa_batch(task, a, b, n, squad_json)
    rows = [{"#": d["line"], "question": d["question"], "a": d["a"] or "(no answer)", "b": d["b"] or "(no answer)"}
            for d in r["disagreements"]]
    return {"batch_stats": batch_stats(r), "disagreements": pd.DataFrame(rows, columns=BATCH_COLUMNS)}


def on_task(task: str) -> dict:
    return {"examples": gr.Dropdown(choices=example_choices(task), value=None), "gold": ""}


def from_link(task: str, a: str, b: str, text: str) -> dict:
    """The comparison a shared link shows at once: its question and context, and both
    answers; nothing when its values are not usable."""
    pair = parse_link_text(text)
    if pair is None:
        return {}
    out = {"question": pair[0], "context": pair[1], "gold": ""}
    try:
        out.update(compare_view(task, a, b, *pair))
    except gr.Error:
        pass
    return out


# ---------------------------------------------------------------- the section


def build() -> dict:
    c: dict = {}
    c["link_text"] = gr.State("")
    with gr.Tabs():
        with gr.Tab("One question"):
            _build_one(c)
        with gr.Tab("Batch"):
            _build_batch(c)
    return c


def _build_batch(c: dict) -> None:
    with gr.Row():
        c["batch_n"] = gr.Slider(1, MAX_BATCH_QUESTIONS, value=DEFAULT_BATCH_QUESTIONS, step=1, scale=3,
                                 label="Eval-set questions", elem_id="compare-qa-batch-n",
                                 info="spread over the task's eval set (the embedded sample when there is no local data)")
        c["run_eval"] = gr.Button("Compare eval questions", variant="primary", scale=1,
                                  elem_id="compare-qa-run-eval")
    c["squad_json"] = gr.Textbox(label=f"…or paste SQuAD JSON (v1.1 or v2.0, at most {MAX_BATCH_QUESTIONS} questions)",
                                 lines=6, max_lines=12, elem_id="compare-qa-json",
                                 placeholder='{"data": [{"title": "...", "paragraphs": [{"context": "...", '
                                             '"qas": [{"id": "q1", "question": "...", "answers": '
                                             '[{"text": "...", "answer_start": 0}]}]}]}]}')
    c["run_json"] = gr.Button("Compare the pasted questions", variant="secondary", elem_id="compare-qa-run-json")
    c["batch_stats"] = gr.Markdown(elem_id="compare-qa-batch-stats")
    c["disagreements"] = gr.Dataframe(headers=BATCH_COLUMNS, label="Disagreements", interactive=False, wrap=True,
                                      column_widths=["6%", "54%", "20%", "20%"], elem_id="compare-qa-disagreements")


def _build_one(c: dict) -> None:
    c["question"] = gr.Textbox(label="Question", lines=1, elem_id="compare-qa-question",
                               info=f"at most {MAX_QUESTION_CHARS:,} characters",
                               placeholder="Ask a question the context answers, or pick an example below")
    c["context"] = gr.Textbox(label="Context", lines=6, elem_id="compare-qa-context",
                              info=f"at most {MAX_CONTEXT_CHARS:,} characters; a long one is read in overlapping windows",
                              placeholder="Paste the text that holds the answer")
    c["examples"] = gr.Dropdown(choices=[], value=None, label="Examples (task examples, then eval-set questions "
                                "with their gold answers)", elem_id="compare-qa-examples")
    c["gold"] = gr.Markdown(elem_id="compare-qa-gold")
    with gr.Row():
        c["run"] = gr.Button("Compare", variant="primary", elem_id="compare-qa-run")
        c["copy"] = gr.Button("Copy link", variant="secondary", elem_id="compare-qa-copy")
    c["link"] = gr.Textbox(label="Shareable link", interactive=False, buttons=["copy"], elem_id="compare-qa-link")
    with gr.Row(equal_height=False):
        c["out_a"] = gr.HTML(elem_id="compare-qa-out-a")
        c["out_b"] = gr.HTML(elem_id="compare-qa-out-b")
    c["stats"] = gr.Markdown(elem_id="compare-qa-stats")


def wire(c: dict, header: dict) -> None:
    pair = [header["task"], header["model_a"], header["model_b"]]
    fields = [c["question"], c["context"], c["gold"]]
    c["examples"].input(lambda t, i: keyed(c, pick_example(t, i)), [header["task"], c["examples"]], fields,
                        **PRIVATE, show_progress="hidden")
    gr.on([c["question"].input, c["context"].input], lambda: "", None, c["gold"], **PRIVATE,
          show_progress="hidden")  # an edited example no longer has that gold answer
    # a shared link's text lands in link_text: fill the fields even when the models are not there
    c["link_text"].change(lambda text: keyed(c, dict(zip(("question", "context"), parse_link_text(text) or ()))),
                          c["link_text"], [c["question"], c["context"]], **PRIVATE, show_progress="hidden")
    compare = as_warning(lambda t, a, b, q, ctx: keyed(c, compare_view(t, a, b, q, ctx)))
    gr.on([c["run"].click, c["question"].submit], compare, [*pair, c["question"], c["context"]],
          [c["out_a"], c["out_b"], c["stats"]], **PRIVATE, concurrency_limit=2)
    c["copy"].click(None, [*pair, c["question"], c["context"]], c["link"], js=link_js(), **PRIVATE)
    batch_outputs = [c["batch_stats"], c["disagreements"]]
    c["run_eval"].click(as_warning(lambda t, a, b, n: keyed(c, batch_view(t, a, b, n))), [*pair, c["batch_n"]],
                        batch_outputs, **PRIVATE, concurrency_limit=1)
    c["run_json"].click(as_warning(lambda t, a, b, text: keyed(c, pasted_view(t, a, b, text))),
                        [*pair, c["squad_json"]], batch_outputs, **PRIVATE, concurrency_limit=1)
