"""Compare section for masked-language models (fill-mask): a sentence with one to
five masks (``[MASK]`` or the model's own mask token) -> each model's five most
likely tokens per mask with their probabilities, side by side, with latency, the
overlap of the two top-5 lists and KL(A‖B) at each mask. The model math is the
kind's (``hub.kinds.mlm``: ``compare``). A shared link carries the sentence.
"""

from __future__ import annotations

import gradio as gr

from hub.kinds import get_kind
from hub.kinds.mlm import MAX_MASKS
from hub.tasks import TASKS

from . import MAX_TEXT_CHARS, PRIVATE, as_warning, esc, fault, keyed, refuse
from .compare import check_task, predictors
from .links import compare_link_js

KIND = "mlm"
TITLE = "Fill-mask"
LINK_INPUT = "text"
LINK_OUTPUTS = ("out_a", "out_b", "stats")
MASK = "[MASK]"


def _warm(predictor) -> None:
    for _ in range(2):  # the first calls are slow; the latency shown must not include them
        predictor.predict(f"a {MASK} warm-up")


def check_text(text) -> str:
    """The sentence, stripped; refused when empty or over ``MAX_TEXT_CHARS`` (never cut)."""
    if not isinstance(text, str) or not text.strip():
        raise refuse(f"Type a sentence with {MASK} where a word is missing.")
    if len(text) > MAX_TEXT_CHARS:
        raise refuse(f"The text is too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,}): "
                     "shorten it and compare again.")
    return text.strip()


def check_masks(text: str, mask_token: str) -> int:
    """How many masks ``text`` holds (``[MASK]`` or ``mask_token``); refused outside 1..``MAX_MASKS``."""
    n = text.replace(MASK, mask_token).count(mask_token)
    own = f" (or {mask_token})" if mask_token != MASK else ""
    if n == 0:
        raise refuse(f"The text has no {MASK}{own}: put it where a word should be predicted.")
    if n > MAX_MASKS:
        raise refuse(f"The text has {n} masks; at most {MAX_MASKS} are predicted at once.")
    return n


def api_compare_fill_mask(task: str, model_a: str, model_b: str, text: str) -> dict:
    """Both models fill the masks of one sentence: per mask, each model's top-5
    tokens with probabilities, ``overlap`` (shared tokens / 5), ``agree`` (same
    top-1) and ``kl`` = KL(A‖B) in nats over the vocabulary; each model's latency;
    ``agree`` (every mask's top-1 the same), ``mean_overlap`` and ``mean_kl``.

    Args:
        task: a fill-mask task, e.g. "mlm".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        text: a sentence with 1 to 5 [MASK] (or the model's own mask token), at most 2,000 characters.
    """
    t = check_task(task, KIND)
    text = check_text(text)
    pa, pb = predictors(t, model_a, model_b, warm=_warm)
    n = check_masks(text, pa.tokenizer.mask_token)
    if pb.tokenizer.mask_token != pa.tokenizer.mask_token:
        raise refuse("The two models write their mask differently: use [MASK].")
    try:
        result = get_kind(t).compare(pa, pb, text)
    except ValueError as exc:  # the kind's own refusals (text past the model's length, other vocabularies)
        raise refuse(f"These models cannot fill this text: {exc}.") from None
    except Exception as exc:  # noqa: BLE001 - a model that fails on an input is a fault, not the user's
        raise fault("Running the models", exc) from None
    return {"task": task, "model_a": model_a, "model_b": model_b, "n_masks": n, **result}


API = {"compare_fill_mask": api_compare_fill_mask}


# ---------------------------------------------------------------- views


def side_html(which: str, name: str, side: dict, masks: list[dict]) -> str:
    """One model's top-5 per mask as a small table with probability bars; a token the
    other model also lists in its top 5 is bold."""
    other = "b" if which == "A" else "a"
    parts = [f"<div class='hub-caption'>{which} · {esc(name)} · {side['latency_ms']:.1f} ms</div>"]
    for m in masks:
        shared = {t["id"] for t in m[other]}
        rows = []
        for t in m[which.lower()]:
            p = 100 * t["probability"]
            token = f"<b>{esc(t['token'])}</b>" if t["id"] in shared else esc(t["token"])
            rows.append(f"<tr style='border:none'><td style='border:none;padding:1px 8px 1px 0;white-space:nowrap'>{token}</td>"
                        f"<td style='border:none;width:100%'><div style='background:var(--color-accent);height:10px;"
                        f"width:{p:.1f}%;border-radius:3px'></div></td>"
                        f"<td style='border:none;padding-left:8px;text-align:right;white-space:nowrap'>{p:.1f}%</td></tr>")
        parts.append(f"<div style='margin-top:8px'><b>Mask {m['mask']}</b>"
                     f"<table style='width:100%;border:none;border-collapse:collapse'>{''.join(rows)}</table></div>")
    return "".join(parts)


def stats_text(r: dict) -> str:
    agree = ("**The models agree** on every mask's top token." if r["agree"]
             else "**The models disagree** on at least one mask's top token.")
    per = " · ".join(f"mask {m['mask']}: overlap {m['overlap'] * 5:.0f}/5, KL {m['kl']:.3f}" for m in r["masks"])
    return (f"{agree} Top-5 overlap {100 * r['mean_overlap']:.0f}% · mean KL(A‖B) {r['mean_kl']:.4f} nats "
            f"({per}) · latency A {r['a']['latency_ms']:.1f} ms, B {r['b']['latency_ms']:.1f} ms "
            "(one sentence, tokenization included). Bold: a token both models list.")


def compare_view(task: str, a: str, b: str, text: str) -> dict:
    """One comparison as updates by name."""
    r = api_compare_fill_mask(task, a, b, text)
    return {"out_a": side_html("A", a, r["a"], r["masks"]), "out_b": side_html("B", b, r["b"], r["masks"]),
            "stats": stats_text(r)}


def on_task(task: str) -> dict:
    return {"examples": gr.Dropdown(choices=list(TASKS[task].examples), value=None)}


def from_link(task: str, a: str, b: str, text: str) -> dict:
    """The comparison a shared link shows at once; nothing when its values are not usable."""
    try:
        return compare_view(task, a, b, text)
    except gr.Error:
        return {}


# ---------------------------------------------------------------- the section


def build() -> dict:
    c: dict = {}
    c["text"] = gr.Textbox(label=f"Sentence with {MASK}", lines=2, elem_id="compare-mlm-text",
                           info=f"1 to {MAX_MASKS} masks ({MASK} or the model's own mask token), "
                                f"at most {MAX_TEXT_CHARS:,} characters",
                           placeholder=f"The capital of France is {MASK}.")
    c["examples"] = gr.Dropdown(choices=[], value=None, label="Examples", elem_id="compare-mlm-examples")
    with gr.Row():
        c["run"] = gr.Button("Compare", variant="primary", elem_id="compare-mlm-run")
        c["copy"] = gr.Button("Copy link", variant="secondary", elem_id="compare-mlm-copy")
    c["link"] = gr.Textbox(label="Shareable link", interactive=False, buttons=["copy"], elem_id="compare-mlm-link")
    with gr.Row(equal_height=False):
        c["out_a"] = gr.HTML(elem_id="compare-mlm-out-a")
        c["out_b"] = gr.HTML(elem_id="compare-mlm-out-b")
    c["stats"] = gr.Markdown(elem_id="compare-mlm-stats")
    return c


def wire(c: dict, header: dict) -> None:
    pair = [header["task"], header["model_a"], header["model_b"]]
    c["examples"].input(lambda e: e or gr.skip(), c["examples"], c["text"], **PRIVATE, show_progress="hidden")
    compare = as_warning(lambda t, a, b, text: keyed(c, compare_view(t, a, b, text)))
    gr.on([c["run"].click, c["text"].submit], compare, [*pair, c["text"]], [c["out_a"], c["out_b"], c["stats"]],
          **PRIVATE, concurrency_limit=2)
    c["copy"].click(None, [*pair, c["text"]], c["link"], js=compare_link_js(), **PRIVATE)
