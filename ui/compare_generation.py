"""Compare section for text generation (causal LMs): one prompt, both
continuations streamed side by side from one handler. The two models decode
alternately, token by token, in that handler's thread (``hub.kinds.generation``:
``compare_stream`` -> ``hub.lm_eval.stream_side_by_side``), so neither gets more
CPU; each model's TTFT and tokens/s count its own steps only. Greedy by default;
sampling shows its temperature, top-p and seed. ``max_new_tokens`` is capped on
the server (``MAX_NEW_TOKENS``). Stop cancels the stream (gradio ``cancels=``:
the generator is not resumed, so decoding ends after the current step).

A shared link carries ``{"prompt", "max_new_tokens", "sampling", "temperature",
"top_p", "seed", "chat"}`` as JSON in its ``text`` (:func:`link_text`); opening
it fills the fields, and Generate runs them (a stream is not started on load).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr

from hub.kinds import get_kind
from hub.lm_eval import DecodeSettings
from hub.tasks import TASKS

from . import MAX_TEXT_CHARS, PRIVATE, esc, fault, keyed, refuse
from .compare import check_task, model_path, predictors
from .links import compare_link_js

KIND = "generation"
TITLE = "Generation"
LINK_INPUT = "link_text"
LINK_OUTPUTS = ("prompt", "max_new_tokens", "sampling", "temperature", "top_p", "seed", "chat", "settings_view")
MAX_NEW_TOKENS = 128
DEFAULT_NEW_TOKENS = 48
MAX_SEED = 2**31 - 1
UPDATE_EVERY_S = 0.05  # at most ~20 page updates a second while streaming


def _warm(predictor) -> None:
    predictor.predict("Hello", max_new_tokens=2)  # the first calls are slow; TTFT must not include them


# ---------------------------------------------------------------- checks


def check_prompt(prompt) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise refuse("Type a prompt first.")
    if len(prompt) > MAX_TEXT_CHARS:
        raise refuse(f"The prompt is too long ({len(prompt):,} characters; the limit is {MAX_TEXT_CHARS:,}): "
                     "shorten it and generate again.")
    return prompt


def settings_from(max_new_tokens, sampling=False, temperature=1.0, top_p=1.0, seed=0) -> DecodeSettings:
    """Checked decoding settings; every number out of range is refused by name (never clamped silently)."""
    def number(value, name, lo, hi, integer=False):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise refuse(f"{name} must be a number between {lo} and {hi}.")
        if integer and int(value) != value:
            raise refuse(f"{name} must be a whole number between {lo} and {hi}.")
        if not lo <= value <= hi:
            raise refuse(f"{name} must be between {lo} and {hi:,}.")
        return int(value) if integer else float(value)

    n = number(max_new_tokens, "max_new_tokens", 1, MAX_NEW_TOKENS, integer=True)
    if not sampling:
        return DecodeSettings(max_new_tokens=n)
    temp = number(temperature, "temperature", 0.05, 5.0)
    p = number(top_p, "top_p", 0.01, 1.0)
    s = number(seed, "seed", 0, MAX_SEED, integer=True)
    return DecodeSettings(max_new_tokens=n, greedy=False, temperature=temp, top_p=p, seed=s)


def has_chat_template(folder: str) -> bool:
    """Whether a saved tokenizer carries a chat template (read from its files, no loading)."""
    root = Path(folder)
    if (root / "chat_template.jinja").is_file() or (root / "chat_template.json").is_file():
        return True
    try:
        return bool(json.loads((root / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def settings_text(s: DecodeSettings, chat: bool = False) -> str:
    """The decoding settings as shown on the page."""
    how = ("**Greedy decoding** (the most likely token each step)" if s.greedy else
           f"**Sampling** · temperature {s.temperature:g} · top-p {s.top_p:g} · seed {s.seed}")
    chat_note = " · model A's chat template applied to both" if chat else ""
    return f"{how} · up to {s.max_new_tokens} new tokens{chat_note} · the models decode alternately, one token each"


# ---------------------------------------------------------------- streaming


def stream(task: str, model_a: str, model_b: str, prompt: str, settings: DecodeSettings, chat: bool = False):
    """Both continuations as they grow: yields the kind's states (``a``, ``b``,
    ``a_tokens``, ``a_ttft_ms``, ``a_tokens_per_s``, ``a_done``, the same for b,
    ``done``, ``stopped``). Checks run before the first model step."""
    t = check_task(task, KIND)
    prompt = check_prompt(prompt)
    if chat and not has_chat_template(model_path(model_a, task, "A")):
        raise refuse("Model A has no chat template: turn the chat template off.")
    pa, pb = predictors(t, model_a, model_b, warm=_warm)
    if pa.model.config.vocab_size != pb.model.config.vocab_size:
        raise refuse("The two models have different vocabularies: compare models that share a tokenizer.")
    states = get_kind(t).compare_stream(pa, pb, prompt, settings, chat_template=chat)
    while True:
        try:
            state = next(states)
        except StopIteration:
            return
        except ValueError as exc:  # the kind's refusals: the prompt fills the context, no chat template
            raise refuse(f"These models cannot continue this prompt: {exc}.") from None
        except Exception as exc:  # noqa: BLE001 - a model that fails on an input is a fault, not the user's
            raise fault("Generating", exc) from None
        yield state


def api_compare_generate(task: str, model_a: str, model_b: str, prompt: str, max_new_tokens: int = 32) -> dict:
    """Both greedy continuations of one prompt, decoded alternately token by token:
    texts ``a``/``b``, ``a_tokens``, ``a_ttft_ms``, ``a_tokens_per_s`` (the same for
    b), ``same_text`` and ``common_prefix_chars``; ``settings`` as used.

    Args:
        task: a generation task, e.g. "generation".
        model_a: a model name from /models (e.g. the teacher).
        model_b: a model name from /models (e.g. the student).
        prompt: at most 2,000 characters.
        max_new_tokens: 1 to 128 new tokens per model.
    """
    check_task(task, KIND)
    check_prompt(prompt)
    settings = settings_from(max_new_tokens)
    last: dict = {}
    for last in stream(task, model_a, model_b, prompt, settings):
        pass
    ta, tb = last.get("a", ""), last.get("b", "")
    common = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
    return {"task": task, "model_a": model_a, "model_b": model_b, "prompt": prompt, **last,
            "same_text": ta == tb, "common_prefix_chars": common,
            "settings": {"greedy": True, "max_new_tokens": settings.max_new_tokens}}


API = {"compare_generate": api_compare_generate}


# ---------------------------------------------------------------- views


def speed_text(state: dict, side: str) -> str:
    ttft, tps, n = state.get(f"{side}_ttft_ms"), state.get(f"{side}_tokens_per_s"), state.get(f"{side}_tokens", 0)
    parts = [f"{n} tokens", f"TTFT {ttft:.0f} ms" if ttft is not None else "TTFT …",
             f"{tps:.1f} tokens/s" if tps is not None else "tokens/s …"]
    if state.get(f"{side}_done"):
        parts.append("done")
    return " · ".join(parts)


def state_view(state: dict, prompt: str) -> dict:
    """One streamed state as updates by name."""
    status = "**Stopped.**" if state.get("stopped") else ("**Done.**" if state.get("done") else "Generating…")
    if state.get("done"):
        same = state["a"] == state["b"]
        status += " The continuations are identical." if same else " The continuations differ."
    return {"out_a": f"{esc(prompt)}<b>{esc(state['a'])}</b>", "out_b": f"{esc(prompt)}<b>{esc(state['b'])}</b>",
            "speed_a": speed_text(state, "a"), "speed_b": speed_text(state, "b"), "status": status}


def generate_view(task, a, b, prompt, max_new_tokens, sampling, temperature, top_p, seed, chat):
    """The UI's streaming handler: updates by name, at most every ``UPDATE_EVERY_S``; a
    refusal becomes one warning toast."""
    try:
        settings = settings_from(max_new_tokens, sampling, temperature, top_p, seed)
        yield {"settings_view": settings_text(settings, bool(chat)), "status": "Loading the models…",
               "out_a": "", "out_b": "", "speed_a": "", "speed_b": ""}
        last_yield, state = 0.0, None
        for state in stream(task, a, b, prompt, settings, bool(chat)):
            now = time.perf_counter()
            if now - last_yield >= UPDATE_EVERY_S or state["done"]:
                last_yield = now
                yield state_view(state, prompt)
    except gr.Error as exc:
        gr.Warning(exc.message)
        yield {"status": ""}


# ---------------------------------------------------------------- links


def link_text(prompt: str, max_new_tokens, sampling, temperature, top_p, seed, chat) -> str:
    return json.dumps({"prompt": prompt, "max_new_tokens": max_new_tokens, "sampling": bool(sampling),
                       "temperature": temperature, "top_p": top_p, "seed": seed, "chat": bool(chat)},
                      ensure_ascii=False, separators=(",", ":"))


def parse_link_text(text) -> dict:
    """The fields a link's text sets, checked (a bad setting is left out, a bad text sets nothing)."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    if not isinstance(value, dict) or not isinstance(value.get("prompt"), str) or len(value["prompt"]) > MAX_TEXT_CHARS:
        return {}
    out = {"prompt": value["prompt"]}
    try:
        s = settings_from(value.get("max_new_tokens", DEFAULT_NEW_TOKENS), bool(value.get("sampling")),
                          value.get("temperature", 1.0), value.get("top_p", 1.0), value.get("seed", 0))
    except gr.Error:
        return out
    out.update(max_new_tokens=s.max_new_tokens, sampling=not s.greedy, chat=bool(value.get("chat")),
               settings_view=settings_text(s, bool(value.get("chat"))))
    if not s.greedy:
        out.update(temperature=s.temperature, top_p=s.top_p, seed=s.seed)
    return out


def link_js() -> str:
    """Browser-side: the link of (task, a, b, prompt and settings) with the settings as JSON text."""
    return """(task, a, b, prompt, n, sampling, temperature, top_p, seed, chat) => {
  const text = JSON.stringify({prompt: prompt || '', max_new_tokens: n, sampling: !!sampling,
                               temperature: temperature, top_p: top_p, seed: seed, chat: !!chat});
  if (text.length > %d) return 'The prompt is too long for a link; shorten it to share it.';
  const make = %s;
  return make(task, a, b, text);
}""" % (MAX_TEXT_CHARS, compare_link_js())


def on_task(task: str) -> dict:
    return {"examples": gr.Dropdown(choices=list(TASKS[task].examples), value=None)}


def from_link(task: str, a: str, b: str, text: str) -> dict:
    """The fields of a shared link (its prompt and settings); Generate runs them."""
    return parse_link_text(text)


def chat_update(task: str, a: str) -> dict:
    """The chat-template box: usable only when model A's tokenizer has a template."""
    if task not in TASKS or TASKS[task].kind != KIND:
        return {}
    try:
        usable = has_chat_template(model_path(a, task, "A"))
    except gr.Error:
        usable = False
    return {"chat": gr.Checkbox(interactive=usable, value=False if not usable else gr.skip(),
                                info="applies model A's (the teacher's) chat template to the prompt of both"
                                if usable else "model A has no chat template")}


# ---------------------------------------------------------------- the section


def build() -> dict:
    c: dict = {}
    c["link_text"] = gr.State("")
    c["prompt"] = gr.Textbox(label="Prompt", lines=3, elem_id="compare-gen-prompt",
                             info=f"at most {MAX_TEXT_CHARS:,} characters",
                             placeholder="Type the start of a text, or pick an example below")
    c["examples"] = gr.Dropdown(choices=[], value=None, label="Examples", elem_id="compare-gen-examples")
    with gr.Row():
        c["max_new_tokens"] = gr.Slider(1, MAX_NEW_TOKENS, value=DEFAULT_NEW_TOKENS, step=1,
                                        label="New tokens per model", elem_id="compare-gen-max-new")
        c["chat"] = gr.Checkbox(value=False, label="Chat template", interactive=False,
                                info="model A has no chat template", elem_id="compare-gen-chat")
        c["sampling"] = gr.Checkbox(value=False, label="Sample (off: greedy)", elem_id="compare-gen-sampling")
    with gr.Row(visible=False) as c["sampling_row"]:
        c["temperature"] = gr.Slider(0.05, 5.0, value=0.8, step=0.05, label="temperature")
        c["top_p"] = gr.Slider(0.01, 1.0, value=0.95, step=0.01, label="top-p")
        c["seed"] = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="seed")
    c["settings_view"] = gr.Markdown(settings_text(DecodeSettings(max_new_tokens=DEFAULT_NEW_TOKENS)),
                                     elem_id="compare-gen-settings")
    with gr.Row():
        c["run"] = gr.Button("Generate", variant="primary", elem_id="compare-gen-run")
        c["stop"] = gr.Button("Stop", variant="stop", elem_id="compare-gen-stop")
        c["copy"] = gr.Button("Copy link", variant="secondary", elem_id="compare-gen-copy")
    c["link"] = gr.Textbox(label="Shareable link", interactive=False, buttons=["copy"], elem_id="compare-gen-link")
    c["status"] = gr.Markdown(elem_id="compare-gen-status")
    with gr.Row(equal_height=False):
        with gr.Column():
            c["speed_a"] = gr.Markdown(elem_id="compare-gen-speed-a")
            c["out_a"] = gr.HTML(elem_id="compare-gen-out-a", label="A")
        with gr.Column():
            c["speed_b"] = gr.Markdown(elem_id="compare-gen-speed-b")
            c["out_b"] = gr.HTML(elem_id="compare-gen-out-b", label="B")
    return c


def wire(c: dict, header: dict) -> None:
    pair = [header["task"], header["model_a"], header["model_b"]]
    knobs = [c[k] for k in ("max_new_tokens", "sampling", "temperature", "top_p", "seed", "chat")]
    c["examples"].input(lambda e: e or gr.skip(), c["examples"], c["prompt"], **PRIVATE, show_progress="hidden")
    c["sampling"].change(lambda on: gr.Row(visible=bool(on)), c["sampling"], c["sampling_row"], **PRIVATE,
                         show_progress="hidden")

    def show_settings(n, sampling, temperature, top_p, seed, chat):
        try:
            return settings_text(settings_from(n, sampling, temperature, top_p, seed), bool(chat))
        except gr.Error as exc:
            return f"⚠️ {exc.message}"

    gr.on([k.change for k in knobs], show_settings, knobs, c["settings_view"], **PRIVATE, show_progress="hidden")
    # model A follows every task change (its choices change), so its change alone covers both; the task's own
    # change would send model A before its new choices arrive and fail gradio's choice check
    header["model_a"].change(lambda t, a: keyed(c, chat_update(t, a)), [header["task"], header["model_a"]], c["chat"],
                             **PRIVATE, show_progress="hidden")
    c["link_text"].change(lambda text: keyed(c, parse_link_text(text)), c["link_text"],
                          [c[k] for k in LINK_OUTPUTS], **PRIVATE, show_progress="hidden")
    outputs = [c[k] for k in ("settings_view", "status", "out_a", "out_b", "speed_a", "speed_b")]

    def run(*args):
        for update in generate_view(*args):
            yield keyed(c, update)

    event = gr.on([c["run"].click, c["prompt"].submit], run, [*pair, c["prompt"], *knobs], outputs, **PRIVATE,
                  concurrency_limit=1)
    c["stop"].click(lambda: "**Stopped.**", None, c["status"], cancels=[event], **PRIVATE)
    c["copy"].click(None, [*pair, c["prompt"], *knobs], c["link"], js=link_js(), **PRIVATE)
