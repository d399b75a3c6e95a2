"""The benchmark's measurements, one function each: latency percentiles, FLOPs and
the FLOP bound, this machine's matmul peak, interleaved batch-1 latency,
tokenization latency, throughput and sizes. :mod:`hub.benchmark` runs them under
its protocol; ``hub.bench_probe`` and ``hub.bench_profile`` reuse them."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .benchmark import Protocol


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100].

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def flops_per_example(model, inputs: dict) -> float:
    """Forward FLOPs of one example, counted by ``torch.utils.flop_counter`` on a
    real forward pass (matmuls, attention; any architecture). ``inputs`` is a
    batch-1 encoding. Models that cannot be counted (packed int8 layers) get the
    count of their fp32 form from the caller."""
    from torch.utils.flop_counter import FlopCounterMode

    # the counter sees no FLOPs in CPU SDPA kernels: count with eager attention, then restore
    impl = getattr(model.config, "_attn_implementation", None)
    if impl not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(**inputs)
    finally:
        if impl not in (None, "eager") and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(impl)
    return float(counter.get_total_flops())


def median_flops(model, inputs: list[dict]) -> float:
    """FLOPs of the median input by length among ``inputs`` (the ones a latency
    loop timed, repeats included), interpolated like :func:`percentile`: a
    forward pass's FLOPs grow with its length, so this is the p50 of the
    per-input FLOPs, the bound that matches a p50 latency. Two counted passes."""
    order = sorted(range(len(inputs)), key=lambda i: inputs[i]["input_ids"].numel())
    k = (len(order) - 1) / 2
    lo, hi = order[int(k)], order[min(int(k) + 1, len(order) - 1)]
    f_lo = flops_per_example(model, inputs[lo])
    f_hi = f_lo if inputs[hi]["input_ids"].numel() == inputs[lo]["input_ids"].numel() \
        else flops_per_example(model, inputs[hi])
    return f_lo + (f_hi - f_lo) * (k - int(k))


def flop_bound(flops: float, peak_gflops: float, latency_ms: float) -> dict:
    """The FLOP bound of a forward pass in ms at ``peak_gflops`` and how far a
    measured latency is above it.

    >>> flop_bound(2e9, 100.0, 30.0)
    {'flop_bound_ms': 20.0, 'latency_over_bound': 1.5}
    """
    bound_ms = flops / (peak_gflops * 1e9) * 1000
    return {"flop_bound_ms": bound_ms, "latency_over_bound": latency_ms / bound_ms}


def matmul_peak_gflops(size: int = 2048, seconds: float = 1.0) -> float:
    """This machine's dense fp32 matmul rate with the current thread count (best of runs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


@torch.inference_mode()
def interleaved_latency(models: list, inputs: list[dict], protocol: Protocol) -> list[list[float]]:
    """Forward-pass seconds per call for each model, measured round-robin on the
    same inputs: call i runs every still-active model on input i % len(inputs).
    A model stops once it has both ``min_calls`` calls and ``min_seconds`` of
    measured time; the per-pair ratios use the calls where both ran."""
    for m in models:
        for i in range(protocol.warmup):
            m(**inputs[i % len(inputs)])
    times: list[list[float]] = [[] for _ in models]
    spent = [0.0] * len(models)
    i = 0
    while True:
        active = [k for k in range(len(models))
                  if len(times[k]) < protocol.min_calls or spent[k] < protocol.min_seconds]
        if not active:
            return times
        x = inputs[i % len(inputs)]
        for k in active:
            t0 = time.perf_counter()
            models[k](**x)
            dt = time.perf_counter() - t0
            times[k].append(dt)
            spent[k] += dt
        i += 1


def tokenize_latency(tokenizer, texts: list, calls: int = 200, max_length: int = 128) -> list[float]:
    """Seconds per tokenizer call on single inputs (a text, or a (question, context) pair)."""
    out = []
    for i in range(calls):
        x = texts[i % len(texts)]
        args = x if isinstance(x, tuple) else (x,)
        t0 = time.perf_counter()
        tokenizer(*args, truncation=True, max_length=max_length, return_tensors="pt")
        out.append(time.perf_counter() - t0)
    return out


@torch.inference_mode()
def throughput(model, batches: list[dict], seconds: float) -> float:
    """Examples/s of the forward pass over pre-tokenized batches (dynamic padding)."""
    model(**batches[0])
    n, t_total, i = 0, 0.0, 0
    while t_total < seconds or i < 2:
        x = batches[i % len(batches)]
        t0 = time.perf_counter()
        model(**x)
        t_total += time.perf_counter() - t0
        n += x["input_ids"].shape[0]
        i += 1
    return n / t_total


def serialized_mb(model) -> float:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell() / 2**20


def param_bytes(model) -> int:
    """Bytes of parameters and buffers, packed int8 weights included."""
    total = 0
    for v in model.state_dict().values():
        if isinstance(v, torch.Tensor):
            total += v.numel() * v.element_size()
        elif isinstance(v, tuple):  # packed quantized Linear params: (weight, bias)
            total += sum(t.numel() * t.element_size() for t in v if isinstance(t, torch.Tensor))
    return total


def disk_mb(ref: str) -> float | None:
    from .models import resolve_model_ref

    try:
        folder = Path(resolve_model_ref(ref))
    except ValueError:
        return None
    if not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) / 2**20
