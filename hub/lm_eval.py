"""Measurements of causal language models (no training): perplexity, generation
speed and a side-by-side streaming decoder for the demo. (The top-k teacher-logit
cache and its KL live with the other losses: ``hub.losses.topk_logits``/``sparse_kl``.)

Shapes: B batch, L sequence length, V vocabulary.
Models are ``AutoModelForCausalLM``-style (GPT-2, Llama, SmolLM2 ...): called as
``model(input_ids=..., labels=..., cache=..., use_cache=...)`` and returning
``.logits`` / ``.loss`` / ``.cache`` by name (``past_key_values`` before 5.24).
"""

from __future__ import annotations

import inspect
import math
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.generation.streamers import BaseStreamer


def _device(model) -> torch.device:
    return next(model.parameters()).device


def _context_size(model) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if value:
            return int(value)
    return None


def token_stream(tokenizer, data) -> torch.Tensor:
    """One 1-D LongTensor of token ids from what :func:`perplexity` accepts.

    ``data``: a string (tokenized with the tokenizer's own special tokens, e.g.
    Llama's BOS, as in HF's perplexity guide); a list of strings (joined with
    ``"\\n\\n"`` first, as that guide does for WikiText); token ids (1-D tensor or
    list of ints; ``tokenizer`` may be None); blocks (list of lists of ids, or a
    :class:`hub.textdata.Packed`), flattened back into the stream they were cut from.
    """
    blocks = getattr(data, "blocks", None)
    if blocks is not None:
        data = blocks
    if isinstance(data, torch.Tensor):
        return data.reshape(-1).long()
    if isinstance(data, str) or (isinstance(data, list) and data and isinstance(data[0], str)):
        if tokenizer is None:
            raise ValueError("text needs a tokenizer")
        text = data if isinstance(data, str) else "\n\n".join(data)
        return torch.tensor(tokenizer(text)["input_ids"], dtype=torch.long)
    if isinstance(data, list) and data and isinstance(data[0], list):
        return torch.tensor([i for block in data for i in block], dtype=torch.long)
    if isinstance(data, list) and data and isinstance(data[0], int):
        return torch.tensor(data, dtype=torch.long)
    raise ValueError(f"cannot read tokens from {type(data).__name__} (empty, or not text, ids or blocks)")


def perplexity(model, tokenizer, data, max_length: int = 512, stride: int = 256,
               max_tokens: int | None = None) -> dict:
    """Perplexity of a causal LM on a token stream, with HF's strided sliding window.

    The text (see :func:`token_stream`) becomes one stream of N tokens (the
    first ``max_tokens`` when given). Windows of at most ``max_length`` tokens
    start at 0, stride, 2·stride, ...; each window scores only the tokens that
    the previous window did not score (its last ``end - previous_end`` tokens), the
    tokens before them serving as context; the loop ends with the window that
    reaches the end. So every token except the first (which has nothing to be
    predicted from) is scored exactly once, with at least ``max_length - stride``
    tokens of context once past the first window. ``stride == max_length`` gives
    disjoint windows (fast, pessimistic), where the first token of each window
    has no context and is not scored either; smaller strides give more context
    per prediction (slower, lower perplexity). The windows depend only on N,
    ``max_length`` and ``stride``: models with the same tokenizer and settings are
    scored on exactly the same predictions.

    Unlike HF's guide, which weights each window's mean loss by its target count
    minus one, we sum the exact per-token NLL (``loss × number of scored tokens``),
    so ``perplexity == exp(nll)``, ``nll`` being the mean over the ``n_tokens``
    scored tokens (N − 1 when stride < max_length, N − windows when equal).

    Returns {"perplexity", "nll" (mean NLL per scored token, nats), "n_tokens"
    (scored tokens), "windows", "max_length", "stride"}. Puts the model in eval mode.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    if not 1 <= stride <= max_length:
        raise ValueError(f"stride must be in [1, max_length={max_length}], got {stride}")
    context = _context_size(model)
    if context is not None and max_length > context:
        raise ValueError(f"max_length {max_length} exceeds the model's context of {context} tokens")
    ids = token_stream(tokenizer, data)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    n = ids.numel()
    if n < 2:
        raise ValueError(f"perplexity needs at least 2 tokens, got {n}")

    model.eval()
    device = _device(model)
    nll_sum, scored, windows, prev_end = 0.0, 0, 0, 0  # windows: model calls made
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        input_ids = ids[begin:end].unsqueeze(0).to(device)  # (1, W)
        target_len = end - prev_end  # tokens not scored by the previous window
        labels = input_ids.clone()
        labels[:, :-target_len] = -100
        # the model shifts labels by one: position 0 of a window is never predicted
        count = int((labels[:, 1:] != -100).sum())
        prev_end = end
        if count == 0:  # a last disjoint window of one token: nothing to predict it from
            break
        with torch.no_grad():
            loss = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                         labels=labels).loss  # mean over the `count` scored tokens
        nll_sum += float(loss) * count
        scored += count
        windows += 1
        if end == n:
            break
    nll = nll_sum / scored
    return {"perplexity": math.exp(nll), "nll": nll, "n_tokens": scored, "windows": windows,
            "max_length": max_length, "stride": stride}


class _TokenTimes(BaseStreamer):
    """Records when ``generate`` emits each new token (the first ``put`` is the prompt)."""

    def __init__(self):
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value):
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())

    def end(self):
        pass


def generation_speed(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, warmup: int = 1) -> dict:
    """Time to first token and decode speed of greedy generation at batch 1.

    After ``warmup`` untimed calls (on the first prompt), each prompt is
    tokenized (not timed) and generated with ``min_new_tokens = max_new_tokens``,
    so every model does exactly the same amount of work (EOS is suppressed until
    then). A streamer stamps each token as ``generate`` emits it:
    TTFT = first token time − call start (prefill + first step); decode speed =
    (tokens − 1) / (last token time − first token time), summed over calls.

    Returns {"ttft_ms_p50", "ttft_ms_p90", "tokens_per_s" (decode, first token
    excluded), "calls", "new_tokens" (per call; all equal to max_new_tokens),
    "threads"}.
    """
    if max_new_tokens < 2:
        raise ValueError(f"max_new_tokens must be >= 2 to measure decoding, got {max_new_tokens}")
    if not prompts:
        raise ValueError("no prompts")
    model.eval()
    device = _device(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def run(prompt: str) -> tuple[float, _TokenTimes, int]:
        enc = tokenizer(prompt, return_tensors="pt").to(device)
        streamer = _TokenTimes()
        with torch.no_grad():
            start = time.perf_counter()
            out = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                 do_sample=False, num_beams=1, pad_token_id=pad_id, streamer=streamer)
        return start, streamer, out.shape[1] - enc["input_ids"].shape[1]

    for _ in range(warmup):
        run(prompts[0])
    ttfts, new_tokens = [], []
    decode_tokens, decode_seconds = 0, 0.0
    for prompt in prompts:
        start, streamer, produced = run(prompt)
        times = streamer.times
        ttfts.append((times[0] - start) * 1000)
        new_tokens.append(produced)
        decode_tokens += len(times) - 1
        decode_seconds += times[-1] - times[0]
    return {
        "ttft_ms_p50": statistics.median(ttfts),
        "ttft_ms_p90": _quantile(ttfts, 0.9),
        "tokens_per_s": decode_tokens / decode_seconds if decode_seconds > 0 else float("inf"),
        "calls": len(prompts),
        "new_tokens": new_tokens,
        "threads": torch.get_num_threads(),
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


@dataclass
class DecodeSettings:
    """How :func:`stream_side_by_side` picks tokens. ``greedy`` ignores the rest
    but ``max_new_tokens``; sampling uses temperature, then nucleus (top-p)
    filtering, with a generator seeded by ``seed`` for each model."""

    max_new_tokens: int = 64
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def pick_token(logits: torch.Tensor, settings: DecodeSettings, generator: torch.Generator | None = None) -> int:
    """The next token from last-position logits (V,): argmax, or a sample after
    temperature and top-p (the smallest set of most likely tokens whose
    probability reaches top_p; the most likely token is always kept)."""
    if settings.greedy:
        return int(logits.argmax())
    probs = F.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each one
        sorted_probs[before >= settings.top_p] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


def _cache_argument(model) -> str:
    """The forward argument carrying the KV cache: ``cache`` since transformers
    5.24 (``past_key_values`` is deprecated there), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _Decoder:
    """One model decoding one prompt token by token with its own KV cache."""

    def __init__(self, model, tokenizer, prompt: str, settings: DecodeSettings):
        model.eval()
        self.model, self.tokenizer, self.settings = model, tokenizer, settings
        device = _device(model)
        self.next_input = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)  # (1, P)
        if self.next_input.shape[1] == 0:
            raise ValueError("the prompt has no tokens")
        self.seen = 0  # tokens in the cache after the next step
        self.past = None  # the KV cache, returned by the prefill and updated by every step
        self.cache_arg = _cache_argument(model)
        self.generator = torch.Generator(device=device).manual_seed(settings.seed)
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            self.eos.add(tokenizer.eos_token_id)
        self.tokens: list[int] = []
        self.step_seconds: list[float] = []
        self.done = False

    def step(self) -> None:
        start = time.perf_counter()
        with torch.no_grad():
            # the mask covers the cache and the new input, as generate() passes it (all ones: one unpadded row)
            self.seen += self.next_input.shape[1]
            mask = torch.ones(1, self.seen, dtype=torch.long, device=self.next_input.device)
            out = self.model(input_ids=self.next_input, attention_mask=mask, use_cache=True,
                             **{self.cache_arg: self.past})
        self.past = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        token = pick_token(out.logits[0, -1], self.settings, self.generator)
        self.step_seconds.append(time.perf_counter() - start)
        if token in self.eos:
            self.done = True
            return
        self.tokens.append(token)
        self.next_input = torch.tensor([[token]], device=self.next_input.device)
        self.done = len(self.tokens) >= self.settings.max_new_tokens

    def report(self, side: str) -> dict:
        decode = self.step_seconds[1:]
        return {
            side: self.tokenizer.decode(self.tokens, skip_special_tokens=True),
            f"{side}_tokens": len(self.tokens),
            f"{side}_ttft_ms": self.step_seconds[0] * 1000 if self.step_seconds else None,
            f"{side}_tokens_per_s": len(decode) / sum(decode) if decode and sum(decode) > 0 else None,
            f"{side}_done": self.done,
        }


def stream_side_by_side(model_a, tok_a, model_b, tok_b, prompt: str, settings: DecodeSettings | None = None,
                        stop: threading.Event | None = None) -> Iterator[dict]:
    """Decode ``prompt`` with two models alternately, token by token, in this thread.

    A, B, A, B ...: each step is one forward pass with the model's KV cache
    (the prompt's prefill first) and one pick (:func:`pick_token`), so neither
    model waits on or competes with the other for the CPU. A model stops at its
    EOS (not shown) or ``settings.max_new_tokens``; the other goes on alone.
    Greedy decoding gives the same tokens as ``model.generate(do_sample=False)``.
    Sampling draws from one generator per model seeded with ``settings.seed``, so
    a model's text does not depend on the other model.

    Yields, after every step, {"a": text so far, "b": ..., "a_tokens",
    "a_ttft_ms" (the model's own prefill + first pick), "a_tokens_per_s" (its own
    decode steps only, first excluded), "a_done", the same for b, "done",
    "stopped"}. Times are each model's own compute, so interleaving charges
    neither with the other's work. Setting ``stop`` ends the stream after the
    current step, with a last dict where "stopped" is True.
    """
    settings = settings or DecodeSettings()
    sides = {"a": _Decoder(model_a, tok_a, prompt, settings), "b": _Decoder(model_b, tok_b, prompt, settings)}

    def snapshot(stopped: bool) -> dict:
        state = {**sides["a"].report("a"), **sides["b"].report("b")}
        state["done"] = all(d.done for d in sides.values())
        state["stopped"] = stopped
        return state

    while not all(d.done for d in sides.values()):
        for decoder in sides.values():
            if stop is not None and stop.is_set():
                yield snapshot(stopped=True)
                return
            if not decoder.done:
                decoder.step()
                yield snapshot(stopped=False)
