"""The benchmark's fresh-process probe: a model's memory, and its latency alone.

``memory_probe`` (parent side) starts ``python -m hub.bench_probe REF TASK THREADS
QUANT`` with the batch-1 inputs on stdin and reads one JSON line back; the child
(``_probe_main``) measures the model's attributable peak RSS and, when asked, times
it alone, set up as a server of that one model would be. ``hub.benchmark`` uses it
for every row of the full protocol.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .benchmark import Protocol


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _to_json(inputs: list[dict]) -> list[dict]:
    return [{k: v.tolist() for k, v in x.items()} for x in inputs]


def _from_json(inputs: list[dict]) -> list[dict]:
    return [{k: torch.tensor(v) for k, v in x.items()} for x in inputs]


def memory_probe(ref: str, task_name: str, threads: int, quantize: str | None, inputs: list[dict], calls: int = 50,
                 timing: Protocol | None = None) -> dict:
    """Model-attributable memory, measured in a fresh subprocess on the given
    batch-1 encodings (the kind's latency inputs). With ``timing`` the same
    process then times the model **alone** on those inputs (``latency_alone_*``:
    its warmup, min_calls and min_seconds), as a process that serves only this
    model would run it: an ONNX model with spinning worker threads."""
    cmd = [sys.executable, "-m", "hub.bench_probe", ref, task_name, str(threads), quantize or "fp32"]
    # the memory loop runs the first 64; the timing the interleaved run's inputs (up to 512), in their order
    req = {"inputs": _to_json(inputs[:512 if timing is not None else 64]), "calls": calls}
    if timing is not None:
        req["timing"] = {"warmup": timing.warmup, "min_calls": timing.min_calls, "min_seconds": timing.min_seconds}
    proc = subprocess.run(cmd, input=json.dumps(req),
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        return {"memory_mb": None, "memory_error": proc.stderr.strip().splitlines()[-1:] or ["probe failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tiny_config(cfg):
    """A 1-layer, 8-wide copy of ``cfg`` (same class): the code paths every model of
    that class shares, whatever the architecture calls its sizes."""
    small = cfg.__class__.from_dict(cfg.to_dict())
    small.num_hidden_layers, small.hidden_size, small.num_attention_heads = 1, 8, 1
    for attr in ("intermediate_size", "hidden_dim", "n_inner"):
        if getattr(small, attr, None) is not None:
            setattr(small, attr, 8)
    if getattr(small, "num_key_value_heads", None) is not None:
        small.num_key_value_heads = 1
    if getattr(small, "head_dim", None) is not None:
        small.head_dim = 8
    return small


def _probe_main(argv: list[str]) -> None:
    """Child side of :func:`memory_probe`.

    Baseline = RSS after the imports *and* after the model's code paths are
    warm (a 1-layer, 8-wide model of the same class ran once: shared by every
    model, not attributable to this one). Then the peak-RSS counter is reset,
    the model loaded (and quantized: the counter is reset again after that, so
    the transient fp32 copy is not counted) and run; the result is peak RSS
    minus the baseline.
    """
    ref, task_name, threads, quant = argv
    import gc

    from .bench_measure import interleaved_latency, percentile
    from .bench_models import is_arch, load_for_bench, quantize_int8
    from .benchmark import Protocol
    from .models import _auto_class, resolve_model_ref
    from .tasks import get_task

    torch.set_num_threads(int(threads))
    task = get_task(task_name)
    req = json.loads(sys.stdin.read())
    inputs = _from_json(req["inputs"])
    if is_arch(ref):
        from transformers import BertConfig

        cfg = BertConfig()
    else:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(resolve_model_ref(ref))
    with torch.inference_mode():
        _auto_class(task).from_config(tiny_config(cfg)).eval()(**inputs[0])
    gc.collect()
    base = _rss_mb("VmRSS")
    _reset_peak()
    model, _, _ = load_for_bench(ref, task, spin=True)
    if quant == "int8":
        model, _ = quantize_int8(model)
        gc.collect()
        _reset_peak()
    loop = inputs[:64]
    with torch.inference_mode():
        for x in loop * max(1, req["calls"] // max(len(loop), 1)):
            model(**x)
    peak = _rss_mb("VmHWM")
    out = {"memory_mb": round(peak - base, 1), "rss_baseline_mb": round(base, 1), "peak_rss_mb": round(peak, 1)}
    if req.get("timing"):
        t = req["timing"]
        ms = [s * 1000 for s in interleaved_latency([model], inputs, Protocol(warmup=t["warmup"], min_calls=t["min_calls"],
                                                                            min_seconds=t["min_seconds"]))[0]]
        out.update({"latency_alone_p50_ms": percentile(ms, 50), "latency_alone_p90_ms": percentile(ms, 90),
                    "calls_alone": len(ms)})
    print(json.dumps(out))


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


if __name__ == "__main__":
    _probe_main(sys.argv[1:])
