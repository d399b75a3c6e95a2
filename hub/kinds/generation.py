"""Causal language modelling (WikiText-2, any plain-text corpus): the ``generation`` kind.

Data: text files read by :func:`hub.textdata.read_texts` (``.txt`` one document a
line, ``.jsonl``/``.json``/``.csv`` with a text column) or a Hub data set's text
column, validated before any training. Documents are tokenized, joined with EOS
and cut into blocks of ``max_length`` tokens (:func:`hub.textdata.pack_blocks`);
``--max-train-samples``/``--max-eval-samples`` count blocks.
Targets: ``labels`` = ``input_ids`` with -100 on padding (the model shifts them
itself for its ``.loss``). Adaptor: the student's and teacher's logits at
positions 0..L-2, which predict tokens 1..L-1: one ``(B, L-1, V)`` tensor, labels
``(B, L-1)``, ``mask`` ``(B, L-1)`` — so the prediction loss is the per-token
cross-entropy plus T²·KL over real (non-padding) positions.
Metric: perplexity of the eval text with a strided sliding window (windows of
the training length, stride half of it; the same windows for every model that
shares the tokenizer). Agreement between two models: the share of scored eval
tokens where both predict the same most likely next token (top-1 agreement).

The teacher's logits are not cached in full (``cache_logits = False``): a block
of 256 tokens holds 256 × 49,152 floats (48 MiB) for SmolLM2's vocabulary; the
teacher runs next to the student in every step instead, unless
``--logit-cache-topk K`` keeps its K largest logits per token (256 × K × 6 bytes
a block; ``topk_logit_cache = True``, see ``hub.teacher_cache.TopKLogitCache``).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace

import torch

from ..data import DataError, hub_texts
from ..lm_eval import (
    DecodeSettings,
    _context_size,
    _TokenTimes,
    generation_speed,
    stream_side_by_side,
)
from ..textdata import read_texts
# the data and the perplexity windows, importable from here as before
from .generation_data import LMCollator, TextData, _example_stream, _joined, _slices, _stream, tokenizer_fingerprint
from .generation_windows import LOGIT_BUDGET, Window, stride_windows, window_scores

__all__ = ["DEFAULT_MAX_LENGTH", "KIND", "LATENCY_INPUTS", "LOGIT_BUDGET", "NEW_TOKENS", "PROMPT_TOKENS",
           "GenerationKind", "LMCollator", "LMPredictor", "TextData", "Window", "stride_windows",
           "tokenizer_fingerprint", "window_scores"]

DEFAULT_MAX_LENGTH = 256
PROMPT_TOKENS = 32  # natural-length latency inputs and generation prompts: a typed prompt's size
LATENCY_INPUTS = 64  # distinct slices timed (cycled)
NEW_TOKENS = 32  # tokens generated per timed generation call


# ---------------------------------------------------------------- the demo


class LMPredictor:
    """A loaded causal LM + tokenizer continuing prompts for the demo."""

    def __init__(self, model, tokenizer, task=None, max_length: int = DEFAULT_MAX_LENGTH):
        self.model, self.tokenizer, self.task, self.max_length = model.eval(), tokenizer, task, max_length

    def prompt_text(self, prompt: str, chat_template: bool = False) -> str:
        """The prompt as the model reads it: as typed, or wrapped as one user turn
        of the tokenizer's chat template (instruction-tuned models such as SmolLM2-Instruct)."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("empty prompt")
        if not chat_template:
            return prompt
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template; turn the chat template off")
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    @torch.inference_mode()
    def predict(self, prompt: str, max_new_tokens: int = NEW_TOKENS, chat_template: bool = False) -> dict:
        """Greedy continuation: ``{text, tokens, ttft_ms, tokens_per_s, latency_ms}``
        (TTFT = prefill and first token; tokens/s over the following tokens)."""
        enc = self.tokenizer(self.prompt_text(prompt, chat_template), return_tensors="pt")
        enc = {k: v.to(next(self.model.parameters()).device) for k, v in enc.items()}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        stamps = _TokenTimes()
        start = time.perf_counter()
        out = self.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  pad_token_id=pad, streamer=stamps)
        total = time.perf_counter() - start
        new = out[0, enc["input_ids"].shape[1] :]
        t = stamps.times
        return {"text": self.tokenizer.decode(new, skip_special_tokens=True), "tokens": int(new.numel()),
                "ttft_ms": (t[0] - start) * 1000 if t else None,
                "tokens_per_s": (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else None,
                "latency_ms": total * 1000}

    def predict_batch(self, prompts: list[str], max_new_tokens: int = NEW_TOKENS) -> list[str]:
        return [self.predict(p, max_new_tokens)["text"] for p in prompts]


# ---------------------------------------------------------------- the kind


class GenerationKind:
    name = "generation"
    head = "CausalLM"
    target_columns = ("labels",)
    token_level = True  # one distribution per position
    cache_logits = False  # (L, V) per block is too big to keep for a 49k vocabulary (see the module doc)
    topk_logit_cache = True  # --logit-cache-topk: the adaptor only selects positions of (B, L, V)
    default_max_length = DEFAULT_MAX_LENGTH
    shared_eval_length = True  # perplexities compare only on the same windows: the benchmark scores all at one length

    # ------------------------------------------------------------ data
    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None) -> TextData:
        """Documents from ``source`` (a :class:`hub.data.DataSource`); ``max_train``/
        ``max_eval`` count blocks (applied when a tokenizer packs the text).
        ``reference`` (a loaded model) fixes the vocabulary every evaluated model must share."""
        source.check()
        if source.label_column:
            raise DataError("language modelling reads text only; --label-column does not apply")
        for name, limit in (("--max-train-samples", max_train), ("--max-eval-samples", max_eval)):
            if limit is not None and int(limit) < 1:
                raise DataError(f"{name} counts blocks of text and must be >= 1, got {limit}")
        column = source.text_column or task.text_column
        if source.dataset:
            train, evals, meta = hub_texts(task, source.dataset, source.dataset_config, column, need_train)
        else:
            train_file, eval_file = source.files(task, need_train)
            train = read_texts(train_file, column) if need_train else []
            evals = read_texts(eval_file, column)
            meta = {"kind": "files", "data_dir": source.data_dir, "train_file": train_file, "eval_file": eval_file,
                    "text_column": source.text_column}
        meta.update(train_documents=len(train), eval_documents=len(evals), units="blocks")
        vocab = getattr(getattr(reference, "config", None), "vocab_size", None)
        return TextData(train, evals, None if max_train is None else int(max_train),
                        None if max_eval is None else int(max_eval), meta, vocab)

    def head_kwargs(self, data) -> dict:
        return {}

    def check_teacher(self, teacher, data) -> None:
        """A causal LM (it has ``generate`` and an output embedding) with the
        vocabulary of the data's reference model, when one was given."""
        if not (hasattr(teacher, "generate") and hasattr(teacher, "get_output_embeddings")
                and teacher.get_output_embeddings() is not None):
            raise ValueError(f"{type(teacher).__name__} is not a causal language model (no LM head)")
        ref = getattr(data, "reference_vocab", None)
        if ref is not None and teacher.config.vocab_size != ref:
            raise ValueError(f"the model's vocabulary ({teacher.config.vocab_size}) differs from the reference's "
                             f"({ref}): models compared on one text must share a tokenizer")

    # ------------------------------------------------------------ training
    def encode_train(self, tokenizer, data: TextData, max_length: int):
        """Training blocks of ``max_length`` tokens as a ``datasets.Dataset``:
        ``input_ids``, ``attention_mask``, ``idx`` and ``length``."""
        from datasets import Dataset

        blocks = data.packed("train", tokenizer, max_length).blocks
        return Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks],
                                  "idx": list(range(len(blocks))), "length": [len(b) for b in blocks]})

    def collator(self, tokenizer) -> LMCollator:
        return LMCollator(tokenizer)

    def split_targets(self, batch: dict) -> dict:
        return {k: batch.pop(k) for k in self.target_columns if k in batch}

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict:
        """Logits at positions 0..L-2 (B, L-1, V), the tokens they predict (B, L-1)
        (-100 on padding) or None, and ``mask`` (B, L-1): 1 where both the position
        and its next token are real."""
        logits = outputs.logits[:, :-1]
        labels = targets.get("labels")
        att = inputs.get("attention_mask")
        if att is None:
            att = torch.ones(outputs.logits.shape[:2], dtype=torch.long, device=outputs.logits.device)
        mask = att[:, 1:] * att[:, :-1]
        return {"logits": [logits], "labels": [None if labels is None else labels[:, 1:]], "mask": mask}

    # ------------------------------------------------------------ evaluation
    def evaluate(self, model, tokenizer, data: TextData, max_length: int = DEFAULT_MAX_LENGTH,
                 batch_size: int = 64) -> dict:
        """Perplexity of the eval text (its packed blocks joined back into one
        stream) with windows of ``max_length`` tokens and a stride of half that.

        Returns ``perplexity``, ``nll`` (mean per scored token, nats),
        ``eval_size`` (tokens scored), ``eval_blocks``, ``windows``, ``stride`` and
        ``predictions``: per window ``{"nll", "top1"}`` (its mean NLL and the
        most likely next token at each scored position; see :meth:`agreement`)."""
        context = _context_size(model)
        if context is not None and max_length > context:
            raise ValueError(f"max_length {max_length} exceeds the model's context of {context} tokens")
        stride = max(1, max_length // 2)
        packed = data.packed("eval", tokenizer, max_length)
        stream = _joined(packed)
        windows = stride_windows(stream.numel(), max_length, stride)
        if not windows:
            raise DataError(f"the eval text has {stream.numel()} tokens: nothing to score")
        scores = window_scores(model, stream, windows, batch_size)
        scored = sum(s["scored"] for s in scores)
        nll = sum(s["nll_sum"] for s in scores) / scored
        preds = [{"nll": s["nll_sum"] / s["scored"], "top1": s["top1"]} for s in scores]
        return {"perplexity": math.exp(nll), "nll": nll, "eval_size": scored,
                "eval_blocks": len(packed.blocks), "windows": len(windows),
                "stride": stride, "predictions": preds}

    def agreement(self, predictions_a: list, predictions_b: list) -> float:
        """Top-1 next-token agreement: the share of scored eval tokens where the two
        models' most likely next token is the same (same windows required)."""
        if len(predictions_a) != len(predictions_b):
            raise ValueError(f"{len(predictions_a)} windows against {len(predictions_b)}: not the same eval windows")
        same = total = 0
        for a, b in zip(predictions_a, predictions_b):
            if len(a["top1"]) != len(b["top1"]):
                raise ValueError("the two evaluations scored different tokens")
            same += sum(x == y for x, y in zip(a["top1"], b["top1"]))
            total += len(a["top1"])
        if not total:
            raise ValueError("no tokens to compare")
        return same / total

    def chance_level(self, data) -> None:
        """None: no chance level is defined (a uniform model's perplexity would be the vocabulary size)."""

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None,
                       max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        """Batch-1 prompts sliced from the eval text: ``PROMPT_TOKENS`` (32) tokens
        at natural length (a typed prompt's prefill), or ``fixed_len`` tokens."""
        stream = _stream(tokenizer, data, max_length) if data is not None else _example_stream(tokenizer, task)
        return _slices(stream, fixed_len or PROMPT_TOKENS, LATENCY_INPUTS)

    def batches(self, tokenizer, data, task, batch_size: int, max_length: int = DEFAULT_MAX_LENGTH) -> list[dict]:
        """Eval blocks of ``max_length`` tokens in batches (throughput: blocks/s), at
        most ``LOGIT_BUDGET`` logits a batch (a large vocabulary gets fewer rows)."""
        if data is not None:
            stream = _stream(tokenizer, data, max_length)
            length = max_length
        else:
            stream = _example_stream(tokenizer, task)
            length = min(max_length, PROMPT_TOKENS)
        rows = _slices(stream, length, max(batch_size, 1) * 4)
        vocab = len(tokenizer)
        per_batch = max(1, min(batch_size, LOGIT_BUDGET // (length * vocab)))
        out = []
        for s in range(0, len(rows), per_batch):
            ids = torch.cat([r["input_ids"] for r in rows[s : s + per_batch]])
            out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        return out

    def tokenize_inputs(self, data, task) -> list[str]:
        """What a user sends: prompts (the first eval documents, or the task's examples)."""
        if data is not None:
            return list(data.eval_texts[:LATENCY_INPUTS])
        return [t for t in task.examples if isinstance(t, str)] or ["Once upon a time"]

    def bench_extra(self, models: list, tokenizer, data, task, protocol, teacher: int | None = None) -> list[dict]:
        """Generation speed of every model, interleaved prompt by prompt (A, B, A, B ...):
        greedy decoding of exactly ``NEW_TOKENS`` tokens (EOS suppressed) after a
        ``PROMPT_TOKENS``-token prompt of eval text, at batch 1.

        One dict per model: ``ttft_ms`` (median time to the first token: prefill +
        first step), ``ttft_ms_p90``, ``tokens_per_s`` (decode tokens after the first,
        over their time, all calls pooled), ``gen_calls``, ``gen_new_tokens`` and,
        when ``teacher`` (an index into ``models``) is given,
        ``speedup_tokens_per_s`` = tokens/s ÷ the teacher's tokens/s. A model stops
        once it has ``max(3, protocol.min_calls // 25)`` calls and
        ``protocol.min_seconds`` of measured time, as in the latency loop."""
        stream = _stream(tokenizer, data, PROMPT_TOKENS) if data is not None else _example_stream(tokenizer, task)
        prompts = [tokenizer.decode(x["input_ids"][0]) for x in _slices(stream, PROMPT_TOKENS, LATENCY_INPUTS)]
        min_calls = max(3, protocol.min_calls // 25)
        if protocol.warmup:
            for m in models:
                generation_speed(m, tokenizer, prompts[:1], NEW_TOKENS, warmup=0)
        ttft: list[list[float]] = [[] for _ in models]
        seconds = [0.0] * len(models)
        tokens = [0] * len(models)
        i = 0
        while True:
            active = [k for k in range(len(models)) if len(ttft[k]) < min_calls or seconds[k] < protocol.min_seconds]
            if not active:
                break
            for k in active:
                r = generation_speed(models[k], tokenizer, [prompts[i % len(prompts)]], NEW_TOKENS, warmup=0)
                ttft[k].append(r["ttft_ms_p50"])
                decoded = r["new_tokens"][0] - 1  # the first token belongs to the TTFT
                tokens[k] += decoded
                seconds[k] += decoded / r["tokens_per_s"] if r["tokens_per_s"] > 0 else 0.0
            i += 1
        rows = []
        for k in range(len(models)):
            ordered = sorted(ttft[k])
            rows.append({"ttft_ms": statistics.median(ordered),
                         "ttft_ms_p90": ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)],
                         "tokens_per_s": tokens[k] / max(seconds[k], 1e-9), "gen_calls": len(ordered),
                         "gen_new_tokens": NEW_TOKENS, "gen_prompt_tokens": PROMPT_TOKENS})
        if teacher is not None:
            for row in rows:
                row["speedup_tokens_per_s"] = row["tokens_per_s"] / rows[teacher]["tokens_per_s"]
        return rows

    # ------------------------------------------------------------ demo
    def predictor(self, model, tokenizer, task, max_length: int = DEFAULT_MAX_LENGTH) -> LMPredictor:
        return LMPredictor(model, tokenizer, task, max_length)

    def compare_stream(self, a: LMPredictor, b: LMPredictor, prompt: str, settings: DecodeSettings | None = None,
                       stop=None, chat_template: bool = False):
        """Both models continue ``prompt`` token by token, alternately (see
        :func:`hub.lm_eval.stream_side_by_side`): yields ``{"a", "b", "a_tokens",
        "a_ttft_ms", "a_tokens_per_s", "a_done", ... , "done", "stopped"}``.
        ``chat_template`` wraps the prompt as a user turn (model a's template)."""
        text = a.prompt_text(prompt, chat_template)
        settings = settings or DecodeSettings()
        n_prompt = len(a.tokenizer(text)["input_ids"])
        room = min(_context_size(p.model) or 10**9 for p in (a, b)) - n_prompt
        if room < 1:
            raise ValueError(f"the prompt has {n_prompt} tokens: it fills the models' context")
        if settings.max_new_tokens > room:  # never decode past the shorter context (GPT-2: 1,024 positions)
            settings = replace(settings, max_new_tokens=room)
        yield from stream_side_by_side(a.model, a.tokenizer, b.model, b.tokenizer, text, settings, stop)

    def compare(self, a: LMPredictor, b: LMPredictor, prompt: str, max_new_tokens: int = NEW_TOKENS,
                chat_template: bool = False) -> dict:
        """Both greedy continuations of ``prompt`` (the API's ``/compare_generate``):
        the last state of :meth:`compare_stream` — texts, tokens, ``*_ttft_ms``,
        ``*_tokens_per_s`` — plus ``same_text`` and ``common_prefix_chars`` (how far
        the two continuations run alike)."""
        last: dict = {}
        for last in self.compare_stream(a, b, prompt, DecodeSettings(max_new_tokens=max_new_tokens),
                                        chat_template=chat_template):
            pass
        ta, tb = last["a"], last["b"]
        common = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
        return {**last, "prompt": prompt, "same_text": ta == tb, "common_prefix_chars": common}


KIND = GenerationKind()

