"""Where one batch-1 call's time goes: tokenisation, matmuls, attention, other
ops and framework overhead (``python -m hub profile``).

The benchmark says how far a model's latency is above its FLOP bound
(``latency_over_bound``); this module says why. For each model it takes the
median-length input of the eval set (the one whose FLOPs set the bound), warms
up, then runs ``calls`` forward passes under ``torch.profiler`` and sorts every
recorded op's *self* time (time in the op, not in its children) into:

* ``matmul``: ``aten::linear``/``addmm``/``mm``/``bmm``/``matmul`` and the ops
  they call (weight matmuls, attention's Q/K/V and output projections included);
* ``attention``: everything else inside an attention module (scores and context
  ``matmul``/``bmm``, softmax, masking, SDPA kernels), told apart by a profiler
  range that wraps each innermost ``*Attention`` module's forward; outside one,
  SDPA and softmax ops still count here;
* ``other_ops``: the remaining ops (embeddings, layer norm, GELU, adds, views);
* ``overhead``: wall time of the call minus the sum of all op self-times
  (Python, module dispatch, the model's output classes; the profiler's own
  per-op cost lands here too, see ``profiled_ms`` against ``latency_ms``);
* ``tokenize``: the tokenizer on that example's raw text, timed separately.

An exported ONNX folder (``python -m hub export``) is profiled with ONNX Runtime's
own profiler instead (:func:`profile_onnx`), on a second session of the same graph
with the same settings; its operators are sorted into the same categories by the
PyTorch module each came from (the exporter records it on every node) or, for
nodes that ONNX Runtime or the quantizer created, by their type (see
:func:`onnx_op_category`); ``overhead`` is then the call's wall time outside the
kernels (session run, input conversion, thread hand-offs).

Times are ms per call; percentages are of their sum (they add to 100).
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .bench_measure import flop_bound, flops_per_example, matmul_peak_gflops, tokenize_latency

CATEGORIES = ("tokenize", "matmul", "attention", "other_ops", "overhead")
MATMUL_OPS = frozenset({"aten::linear", "aten::addmm", "aten::_addmm_activation", "aten::mm", "aten::bmm",
                        "aten::baddbmm", "aten::addbmm", "aten::matmul"})
PROJECTION_OPS = frozenset({"aten::linear", "aten::addmm", "aten::_addmm_activation"})  # a weight times activations
ATTENTION_RANGE = "hub::attention"


def attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The innermost modules whose class name ends in ``Attention`` (BERT's
    ``BertSelfAttention``, DistilBERT's ``MultiHeadSelfAttention``,
    ``GPT2Attention``, ``LlamaAttention``): their layer norms and residual adds,
    which live in an outer ``*Attention`` wrapper in BERT, stay outside."""
    found = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    return [m for m in found if not any(c is not m and c in found for c in m.modules())]


@contextmanager
def attention_ranges(model: torch.nn.Module):
    """Wrap each attention module's forward in a ``hub::attention`` profiler
    range, so that the ops it runs can be attributed to attention."""
    from torch.autograd.profiler import record_function

    open_ranges: list = []

    def enter(module, args):
        open_ranges.append(record_function(ATTENTION_RANGE).__enter__())

    def leave(module, args, output):
        open_ranges.pop().__exit__(None, None, None)

    handles = []
    for m in attention_modules(model):
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def op_category(names: list[str]) -> str | None:
    """The category of one profiled op from its name and its ancestors' names
    (innermost first); None for our own ranges (their self time is Python time,
    which the overhead already counts).

    >>> op_category(["aten::mm", "aten::linear", "hub::attention"])
    'matmul'
    >>> op_category(["aten::bmm", "aten::matmul", "hub::attention"])
    'attention'
    >>> op_category(["aten::layer_norm"])
    'other_ops'
    """
    if names[0].startswith("hub::"):
        return None
    in_attention = ATTENTION_RANGE in names
    matmuls = [n for n in names if n in MATMUL_OPS]
    if matmuls:
        return "attention" if in_attention and matmuls[-1] not in PROJECTION_OPS else "matmul"
    if in_attention or any("scaled_dot_product" in n or "softmax" in n for n in names):
        return "attention"
    return "other_ops"


def _ancestry(event) -> list[str]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return names


def _plain_latency_ms(model, inputs: dict, calls: int, warmup: int) -> float:
    """Median ms of ``calls`` unprofiled calls on ``inputs`` after ``warmup`` calls."""
    for _ in range(warmup):
        model(**inputs)
    plain = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model(**inputs)
        plain.append(time.perf_counter() - t0)
    return statistics.median(plain) * 1000


@torch.inference_mode()
def profile_forward(model, inputs: dict, calls: int = 20, warmup: int = 5) -> dict:
    """ms per call of each op category and the overhead, from ``calls`` profiled
    forward passes on one batch-1 encoding after ``warmup`` calls; also the
    unprofiled median latency of the same input (``latency_ms``) and the wall
    time per call under the profiler (``profiled_ms``)."""
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    plain_ms = _plain_latency_ms(model, inputs, calls, warmup)
    with attention_ranges(model), profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(calls):
            model(**inputs)
        wall_ms = (time.perf_counter() - t0) * 1000 / calls
    ms = {"matmul": 0.0, "attention": 0.0, "other_ops": 0.0}
    for ev in prof.events():
        cat = op_category(_ancestry(ev))
        if cat is not None:
            ms[cat] += ev.self_cpu_time_total / 1000 / calls  # us over all calls -> ms per call
    ms["overhead"] = max(wall_ms - sum(ms.values()), 0.0)
    return {**ms, "profiled_ms": wall_ms, "latency_ms": plain_ms}


# ONNX operator types that are weight x activation products (the int8 forms included; a dynamically
# quantized MatMul's activation quantization counts with it)
ONNX_MATMUL_OPS = frozenset({"MatMul", "Gemm", "FusedGemm", "MatMulInteger", "MatMulIntegerToFloat",
                             "DynamicQuantizeMatMul", "DynamicQuantizeLinear", "QGemm"})
ONNX_ATTENTION_OPS = frozenset({"Attention", "MultiHeadAttention", "QAttention", "Softmax"})


def onnx_op_category(op_type: str, node_name: str, namespace: str | None) -> str:
    """The category of one ONNX Runtime kernel call.

    ``namespace`` is the exporter's record of the PyTorch modules a node came from
    (``"...attention.self.query: torch.nn.modules.linear.Linear/linear: aten.linear"``);
    the innermost module decides: a ``Linear`` is a ``matmul``, a module whose class
    ends in ``Attention`` (the scores, softmax and context of ``BertSelfAttention``)
    is ``attention``. Nodes without one were made by ONNX Runtime's fusions or the
    quantizer: ``MatMulScaleFusion`` (the scaled Q·Kᵀ) and fused attention ops are
    attention, matmul types are matmul, the rest (SkipLayerNormalization, BiasGelu ...)
    other ops.

    >>> ns = "m: Bert/model.bert.encoder.layer.0.attention.self: x.BertSelfAttention/matmul_1: aten.matmul.default"
    >>> onnx_op_category("MatMul", "node_matmul_1", ns)
    'attention'
    >>> onnx_op_category("MatMul", "node_linear", ns.replace("BertSelfAttention/matmul_1", "BertSelfAttention/"
    ...                  "model.bert.encoder.layer.0.attention.self.query: torch.nn.modules.linear.Linear/linear"))
    'matmul'
    >>> onnx_op_category("FusedMatMul", "node_matmul/MatMulScaleFusion/", None)
    'attention'
    >>> onnx_op_category("MatMulIntegerToFloat", "node_linear_quant", None), onnx_op_category("BiasGelu", "BiasGelu", None)
    ('matmul', 'other_ops')
    """
    if namespace:
        modules = [part.rsplit(": ", 1)[-1] for part in namespace.split("/")[:-1] if ": " in part]
        innermost = modules[-1] if modules else ""
        if op_type in ONNX_MATMUL_OPS and innermost.endswith(".Linear"):
            return "matmul"
        if innermost.endswith("Attention"):
            return "attention"
        return "matmul" if op_type in ONNX_MATMUL_OPS else "other_ops"
    if "MatMulScaleFusion" in node_name or op_type in ONNX_ATTENTION_OPS:
        return "attention"
    return "matmul" if op_type in ONNX_MATMUL_OPS or op_type == "FusedMatMul" else "other_ops"


def profile_onnx(model, inputs: dict, calls: int = 20, warmup: int = 5) -> dict:
    """:func:`profile_forward` for a :class:`hub.onnx_runtime.OnnxModel`: ms per
    category from ONNX Runtime's profiler over ``calls`` runs (after ``warmup``) of
    a second session of the same graph with the same options; ``latency_ms`` is the
    median of unprofiled calls of the model itself."""
    import json
    import tempfile

    import onnx
    import onnxruntime as ort

    from .onnx_runtime import ONNX_FILE, session_options

    graph_path = str(model.folder / ONNX_FILE)
    namespaces = {n.name: next((p.value for p in n.metadata_props if p.key == "namespace"), None)
                  for n in onnx.load(graph_path, load_external_data=False).graph.node}
    plain_ms = _plain_latency_ms(model, inputs, calls, warmup)
    options = session_options(model.threads, model.spin)  # the served session's settings, plus the profiler
    feed = model.feed(**inputs)
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as tmp:
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        session = ort.InferenceSession(graph_path, sess_options=options, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            session.run(None, feed)
        t0 = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        wall_ms = (time.perf_counter() - t0) * 1000 / calls
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])
    start = runs[-calls]["ts"] if len(runs) >= calls else 0  # the measured calls only, not the warm-up
    ms = {"matmul": 0.0, "attention": 0.0, "other_ops": 0.0}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") == "Node" and name.endswith("_kernel_time") and e["ts"] >= start:
            node = name[: -len("_kernel_time")]
            ms[onnx_op_category(e["args"].get("op_name", ""), node, namespaces.get(node))] += e["dur"] / 1000 / calls
    ms["overhead"] = max(wall_ms - sum(ms.values()), 0.0)
    return {**ms, "profiled_ms": wall_ms, "latency_ms": plain_ms}


def _shape_twin(model, task):
    """A randomly initialised PyTorch model of an ONNX model's config: its FLOPs
    are the graph's (they depend on shapes only)."""
    from .models import _auto_class

    return _auto_class(task).from_config(model.config, attn_implementation="eager").eval()


def breakdown(ms: dict) -> dict:
    """``{category: {"ms", "pct"}}`` over :data:`CATEGORIES`, percentages of their sum.

    >>> breakdown({"tokenize": 1, "matmul": 2, "attention": 1, "other_ops": 0, "overhead": 0})["matmul"]
    {'ms': 2.0, 'pct': 50.0}
    """
    total = sum(ms[c] for c in CATEGORIES)
    return {c: {"ms": float(ms[c]), "pct": 100.0 * ms[c] / total if total else 0.0} for c in CATEGORIES}


def median_input(inputs: list[dict]) -> int:
    """Index of the median-length encoding (the lower middle one)."""
    order = sorted(range(len(inputs)), key=lambda i: inputs[i]["input_ids"].numel())
    return order[(len(order) - 1) // 2]


def profile_models(task, refs: list[str], data=None, calls: int = 20, warmup: int = 5, threads: int | None = None,
                   log=None) -> list[dict]:
    """One profile per model (see the module doc), on this machine's thread count
    (or ``threads``), with its FLOP bound at the profiled input's length."""
    from .bench_models import _trained_length, load_for_bench
    from .hardware import hardware_info, hardware_tag
    from .kinds import get_kind
    from .onnx_runtime import OnnxModel

    log = log or (lambda msg: None)
    kind = get_kind(task)
    torch.set_num_threads(threads or torch.get_num_threads())
    hw = hardware_info()
    log(f"peak matmul rate on {hw['threads']} threads ...")
    peak = matmul_peak_gflops()
    texts = kind.tokenize_inputs(data, task)
    out = []
    for ref in refs:
        model, tok, card = load_for_bench(ref, task)
        max_length = _trained_length(card)
        inputs = kind.latency_inputs(tok, data, task, None, max_length=max_length)
        i = median_input(inputs)
        x = inputs[i]
        log(f"profiling {ref} on a {x['input_ids'].shape[-1]}-token input ...")
        onnx = isinstance(model, OnnxModel)
        ms = (profile_onnx if onnx else profile_forward)(model, x, calls=calls, warmup=warmup)
        # the same example's raw text when the kind's lists align (classification), else all texts
        sample = [texts[i]] if len(texts) == len(inputs) else texts
        ms["tokenize"] = statistics.median(tokenize_latency(tok, sample, calls=max(calls, 20),
                                                            max_length=max_length)) * 1000
        flops = flops_per_example(_shape_twin(model, task) if onnx else model, x)
        int8 = onnx and bool(model.card.get("quantization"))  # export --quantize int8
        out.append({
            "model": ref, "task": task.name, "runtime": "onnx" if onnx else "torch", "tokens": int(x["input_ids"].shape[-1]), "calls": calls,
            "latency_ms": ms["latency_ms"], "profiled_ms": ms["profiled_ms"],
            "breakdown": breakdown(ms), "flops": flops, "peak_gflops": peak,
            # the fp32 matmul peak bounds fp32 arithmetic only (as in the benchmark's rows)
            **(flop_bound(flops, peak, ms["latency_ms"]) if not int8 else
               {"flop_bound_ms": None, "latency_over_bound": None}),
            "threads": hw["threads"], "hardware": hardware_tag(hw),
        })
    return out


def format_profiles(profiles: list[dict]) -> str:
    """A Markdown table: one row per model, each category as ``ms (pct%)``."""
    head = ["Model", "Tokens", "Latency ms", "FLOP bound ms", "Latency / bound"] + list(CATEGORIES)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for p in profiles:
        bound = p.get("flop_bound_ms")
        cells = [p["model"], str(p["tokens"]), f"{p['latency_ms']:.2f}", "–" if bound is None else f"{bound:.3f}",
                 "–" if bound is None else f"{p['latency_over_bound']:.1f}"]
        cells += [f"{p['breakdown'][c]['ms']:.3f} ({p['breakdown'][c]['pct']:.0f}%)" for c in CATEGORIES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
