"""The measurement protocol: quality, latency, speedup, memory, size, compute.

Every model on the leaderboard is measured by this module, the same way:

* **Quality** on the eval set (the task's metrics; accuracy and F1 for
  classification); with a teacher, *retention* (student metric / teacher metric)
  and *agreement* (share of examples where both predict the same label).
* **Latency** of the forward pass at batch 1, after ``warmup`` calls, over
  ``max(min_calls, min_seconds)`` per model: (a) on the real eval texts at their
  natural length, (b) at a fixed length: 128 tokens (the papers' setting), QA its
  384-token windows (``_fixed`` columns, ``seq_len_fixed``).
  Tokenization is timed separately (``tokenize_p50_ms``). All models run
  interleaved, call by call, on the same inputs (A, B, A, B ...), so the
  speedup is the median of per-pair ratios and a drifting machine biases no one.
* **Latency alone** (full protocol): each model once more at natural length,
  alone in a fresh process set up as a server of that one model would be (ONNX
  Runtime's worker threads spin between calls, which interleaving with PyTorch
  forbids: see ``hub.onnx_runtime``). ``speedup_alone`` is the teacher's p50
  alone (timed first and last, averaged) over the model's: the deployment
  comparison, beside the interleaved one.
* **Throughput**: examples/s of the forward pass at batch 32 on the eval texts.
* **Memory**: in a fresh subprocess, peak RSS after loading the model and
  running a latency loop, minus the RSS of that process after its imports.
* **Size**: parameter count, parameter bytes, size on disk (serialized size for
  models without a folder).
* **Compute**: FLOPs per example counted by ``torch.utils.flop_counter`` on a
  forward pass at 128 tokens (any architecture), achieved GFLOP/s at that
  length, and its fraction of this machine's dense-matmul peak (a large fp32
  matmul, sampled at the start, after the latency loops and at the end of the
  run; the best sample counts: a shared VM's rate moves). For fp32 rows also the **FLOP bound** at
  natural length (``flop_bound_ms``: FLOPs of the median timed input ÷ that
  peak, the fastest this forward pass could be) and ``latency_over_bound``
  (p50 natural-length latency ÷ bound; 1.0 would be matmul-peak speed).
  ``hub.bench_profile`` says where the rest of the time goes.
* **Hardware** tag on every row; one thread count for every model; the
  **protocol** (``full`` or ``quick``) on every row, so that only like is
  compared with like.

What differs between tasks (inputs, metrics, agreement) comes from the task's
kind (``hub/kinds``). This module measures and returns rows; the caller stores
them (``hub.leaderboard.LeaderboardStore.add_rows``).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .bench_measure import (disk_mb, flop_bound, flops_per_example, interleaved_latency, matmul_peak_gflops,
                            median_flops, param_bytes, percentile, serialized_mb, throughput, tokenize_latency)
from .bench_models import (ARCH_PREFIX, TOKENIZER_FOR_ARCH, Entry, _is_arch, _model_size, _onnx_entry, _trained_length,
                           is_arch, load_for_bench, onnx_folder, quantize_int8, stored_ref)
from .bench_probe import memory_probe
from .hardware import hardware_info, hardware_tag
from .tasks import Task

__all__ = [  # the protocol, and what moved to .bench_models (still importable from here)
    "DEFAULT_FIXED_LENGTH", "Protocol", "fixed_length", "format_table", "run_benchmark",
    "ARCH_PREFIX", "TOKENIZER_FOR_ARCH", "Entry", "is_arch", "load_for_bench", "onnx_folder", "quantize_int8",
    "stored_ref",
]

DEFAULT_FIXED_LENGTH = 128  # columns *_fixed: the fixed length of a row is its seq_len_fixed (QA: 384)


def fixed_length(protocol: "Protocol", kind, max_positions: list[int]) -> int:
    """The fixed length timed beside the natural one: the protocol's, else the
    kind's ``bench_fixed_length`` (QA: its 384-token windows), else 128 — never
    longer than the shortest position table among the models.

    >>> from types import SimpleNamespace as NS
    >>> fixed_length(Protocol(), NS(bench_fixed_length=384), [512, 512])
    384
    >>> fixed_length(Protocol(), NS(), [512]), fixed_length(Protocol(seq_len=64), NS(bench_fixed_length=384), [512])
    (128, 64)
    >>> fixed_length(Protocol(), NS(bench_fixed_length=384), [512, 128])
    128
    """
    return min([protocol.seq_len or getattr(kind, "bench_fixed_length", DEFAULT_FIXED_LENGTH), *max_positions])


@dataclass
class Protocol:
    name: str = "full"
    warmup: int = 10
    min_calls: int = 200
    min_seconds: float = 10.0
    seq_len: int | None = None  # the fixed length timed beside the natural one; None: the kind's (QA: its 384-token windows), else 128
    throughput_batch: int = 32
    throughput_seconds: float = 3.0
    threads: int | None = None  # None: all cores available to this process
    memory: bool = True

    @classmethod
    def quick(cls) -> "Protocol":
        """A few seconds per model: for the app's automatic benchmark after a run."""
        return cls(name="quick", warmup=3, min_calls=30, min_seconds=1.0, throughput_seconds=1.0, memory=False)


# ---------------------------------------------------------------- the run


def _summ(ms: list[float]) -> dict:
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99)}


def run_benchmark(
    task: Task,
    models: list[str],
    teacher: str | None = None,
    data=None,
    quantize: str | None = None,
    protocol: Protocol | None = None,
    log=None,
    names: dict[str, str] | None = None,
    runtimes: tuple[str, ...] = ("torch",),
    eval_options: dict | None = None,
) -> list[dict]:
    """Measure ``models`` (and ``teacher``) under one protocol; returns one row per
    measured variant (keys are leaderboard columns). Nothing is stored here.

    ``runtimes``: ``torch`` (PyTorch eager) and/or ``onnx`` (ONNX Runtime: each
    model is exported once into the hub's cache, fp32 and, with ``quantize``,
    int8 through ONNX Runtime's dynamic quantization; its quality is re-evaluated
    in that runtime).

    ``data`` is the task kind's data object (its eval split is used) or None for
    timing-only runs (``arch:`` models; the latency inputs are the task's
    examples). ``names`` maps a ref to its display name.

    ``eval_options``: the kind's evaluation settings (QA: ``null_threshold``) for
    every model; without them each model uses those its run card records (the
    threshold it was distilled with), else the kind's defaults. The ones used are
    in each row's ``bench_json``.
    """
    from .kinds import get_kind
    from .tasks import retention

    kind = get_kind(task)
    protocol = protocol or Protocol()
    log = log or (lambda msg: None)
    threads = protocol.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hw = hardware_info()
    hw["threads"] = threads
    tag = hardware_tag(hw)

    refs = ([teacher] if teacher else []) + [m for m in models if m != teacher]
    entries: list[Entry] = []
    for ref in refs:
        model, tok, card = load_for_bench(ref, task)
        name = (names or {}).get(ref) or (Path(ref).name if not _is_arch(ref) else ref)
        entries.append(Entry(ref, name, model, tok, card, is_teacher=ref == teacher))
        entries[-1].params = _model_size(model)
        fp32_params = entries[-1].params
        if "torch" not in runtimes and not (teacher and ref == teacher):
            entries.pop()  # measured in ONNX Runtime only (the teacher stays the fp32 PyTorch reference)
        elif quantize == "int8" and "torch" in runtimes:
            q, why = quantize_int8(model)
            entries.append(Entry(ref, f"{name} (int8)", q, tok, card,
                                 quantization="int8" if q is not None else f"int8 unavailable: {why}",
                                 is_teacher=False, params=fp32_params))
        if "onnx" in runtimes and not _is_arch(ref):
            for quant in ("fp32",) + (("int8",) if quantize == "int8" else ()):
                entries.append(_onnx_entry(ref, name, task, tok, card, quant, fp32_params, log))

    max_length = max(_trained_length(e.card) for e in entries)
    eval_length = None
    if getattr(kind, "shared_eval_length", False):
        # the metric compares models only on the same inputs (perplexity: the same windows): all are scored at
        # one length, the trained models' (a model without a run card, e.g. a Hub teacher, takes theirs)
        trained = [_trained_length(e.card) for e in entries if e.card]
        eval_length = max_length = max(trained) if trained else getattr(kind, "default_max_length", max_length)
    rows = [_quality_row(e, task, kind, data, tag, hw, threads, protocol, eval_length, eval_options) for e in entries]
    t_row = rows[0] if teacher else None
    head = task.headline
    for e, row in zip(entries, rows):
        if t_row is not None and row.get("_preds") is not None and t_row.get("_preds") is not None:
            row["agreement"] = kind.agreement(row["_preds"], t_row["_preds"])
            row["retention"] = retention(task, row.get(head), t_row.get(head))
        if e.quantization != "fp32" or e.runtime != "torch":
            # against the model's own fp32 PyTorch form (when it was measured in this run)
            fp32 = next((r for r, x in zip(rows, entries)
                         if x.ref == e.ref and x.quantization == "fp32" and x.runtime == "torch"), None)
            if fp32 is not None:
                row["retention_fp32"] = retention(task, row.get(head), fp32.get(head))

    live = [(e, r) for e, r in zip(entries, rows) if e.model is not None]
    log(f"peak matmul rate on {threads} threads ...")
    # sampled at the start, after the latency loops and at the end: a shared VM's rate moves within a run
    # (92 and 177 GFLOP/s ten minutes apart here), and the bound needs the best it can do
    peaks = [matmul_peak_gflops()]
    # never longer than the shortest position table among the models
    fixed_len = fixed_length(protocol, kind, [e.model.config.max_position_embeddings for e, _ in live])
    tok = live[0][0].tokenizer  # every student shares the teacher's tokenizer
    natural = kind.latency_inputs(tok, data, task, None, max_length=max_length)
    for label, inputs in (("", natural), ("_fixed", kind.latency_inputs(tok, data, task, fixed_len, max_length=max_length))):
        log(f"latency at batch 1, {'natural length' if not label else f'{fixed_len} tokens'} ...")
        times = interleaved_latency([e.model for e, _ in live], inputs, protocol)
        ms_all = [[t * 1000 for t in ts] for ts in times]
        for (e, row), ms in zip(live, ms_all):
            s = _summ(ms)
            row.update({f"latency_p50_ms{label}": s["p50"], f"latency_p90_ms{label}": s["p90"],
                        f"latency_p99_ms{label}": s["p99"], f"calls{label}": len(ms)})
        if teacher and live[0][0].is_teacher:
            t_ms = ms_all[0]
            for (e, row), ms in zip(live, ms_all):
                n = min(len(ms), len(t_ms))
                row[f"speedup_p50{label}"] = statistics.median(t_ms[i] / ms[i] for i in range(n))
    peaks.append(matmul_peak_gflops())
    batches = kind.batches(tok, data, task, protocol.throughput_batch, max_length=max_length)
    fixed_one = kind.latency_inputs(tok, data, task, fixed_len, max_length=max_length)[0]
    flops_fp32: dict[str, float] = {}
    flops_natural: dict[str, float] = {}  # FLOPs of the median timed natural-length input, by model
    for e, row in live:
        log(f"throughput and size of {e.name} ...")
        row["tokenize_p50_ms"] = percentile(
            [t * 1000 for t in tokenize_latency(e.tokenizer, kind.tokenize_inputs(data, task), max_length=max_length)], 50)
        row["throughput_per_s"] = throughput(e.model, batches, protocol.throughput_seconds)
        if e.quantization == "fp32" and e.runtime == "torch":
            flops_fp32[e.ref] = flops_per_example(e.model, fixed_one)
        row["flops_per_example"] = flops_fp32.get(e.ref)
        row["seq_len_fixed"] = fixed_len
        row["max_length"] = max_length
        if row["flops_per_example"]:
            row["gflops_per_s"] = row["flops_per_example"] / (row["latency_p50_ms_fixed"] / 1000) / 1e9
        if e.quantization == "fp32":  # the fp32 matmul peak bounds fp32 arithmetic only
            if e.runtime == "torch":
                timed = [natural[i % len(natural)] for i in range(row["calls"])]
                flops_natural[e.ref] = median_flops(e.model, timed)
            if flops_natural.get(e.ref):
                row["flops_natural"] = flops_natural[e.ref]
        if e.runtime == "onnx":
            row["param_bytes"] = row_size = e.model.size_bytes()
            row["size_mb"] = row_size / 2**20  # the graph on disk
        else:
            row["param_bytes"] = param_bytes(e.model)
            row["size_mb"] = disk_mb(e.ref) if e.quantization == "fp32" and not _is_arch(e.ref) else serialized_mb(e.model)
        if protocol.memory:
            log(f"memory of {e.name} in a fresh process ...")
            ref = e.folder or e.ref
            row.update(memory_probe(ref, task.name, threads, "int8" if e.quantization == "int8" and e.runtime == "torch"
                                    else None, natural, timing=protocol))
    if protocol.memory and teacher and live[0][0].is_teacher:
        _speedup_alone(live, task, threads, natural, protocol, log)
    if hasattr(kind, "bench_extra"):  # the kind's own measurements (generation: TTFT, tokens/s), all models at once
        log("the task kind's measurements ...")
        teacher_index = 0 if teacher and live[0][0].is_teacher else None
        for (e, row), extra in zip(live, kind.bench_extra([e.model for e, _ in live], tok, data, task, protocol,
                                                          teacher=teacher_index)):
            row.update(extra)
    peaks.append(matmul_peak_gflops())
    _against_peak(rows, peaks)  # rows of unavailable models too: the run's peak
    for row in rows:
        row.pop("_preds", None)
        used = row.pop("_eval_options", None)
        row["bench_json"] = {"protocol": asdict(protocol), **({"eval_options": used} if used else {}),
                             **{k: v for k, v in row.items() if k != "run_card"}}
    return rows


def _speedup_alone(live: list, task: Task, threads: int, natural: list[dict], protocol: Protocol, log) -> None:
    """``speedup_alone``: the teacher's p50 alone over each model's, every model
    timed alone in its own fresh process (``memory_probe``). The teacher is timed
    once more after the others (A, B, C, ..., A) and its two medians are averaged,
    so a machine that drifts during the probes biases no one much."""
    t_entry, t_row = live[0]
    if t_row.get("latency_alone_p50_ms") is None:
        return
    log(f"{t_entry.name} alone once more ...")
    again = memory_probe(t_entry.folder or t_entry.ref, task.name, threads, None, natural, timing=protocol)
    runs = [t_row["latency_alone_p50_ms"]] + ([again["latency_alone_p50_ms"]] if again.get("latency_alone_p50_ms") else [])
    t_row["latency_alone_p50_ms_runs"] = runs
    t_row["latency_alone_p50_ms"] = teacher_ms = statistics.fmean(runs)
    for _, row in live:
        if row.get("latency_alone_p50_ms"):
            row["speedup_alone"] = teacher_ms / row["latency_alone_p50_ms"]


def _against_peak(rows: list[dict], peaks: list[float]) -> None:
    """The FLOP bound of the fp32 rows (``flop_bound_ms``, ``latency_over_bound``,
    ``alone_over_bound`` when timed alone) and every row's ``peak_fraction``,
    against the best of the run's matmul-peak samples (``peak_gflops``; the
    samples in ``peak_gflops_runs``)."""
    peak = max(peaks)
    for row in rows:
        row["peak_gflops"], row["peak_gflops_runs"] = peak, [round(p, 1) for p in peaks]
        if row.get("gflops_per_s"):
            row["peak_fraction"] = row["gflops_per_s"] / peak
        if row.get("flops_natural") and row.get("latency_p50_ms"):
            row.update(flop_bound(row["flops_natural"], peak, row["latency_p50_ms"]))
            if row.get("latency_alone_p50_ms"):  # how close to the bound when served alone
                row["alone_over_bound"] = row["latency_alone_p50_ms"] / row["flop_bound_ms"]


def _quality_row(e: Entry, task: Task, kind, data, tag: str, hw: dict, threads: int, protocol: Protocol,
                 eval_length: int | None = None, eval_options: dict | None = None) -> dict:
    """The identity and quality columns of one model; quality at ``eval_length``
    tokens when given, else at the model's own training length, with
    ``eval_options`` over those of the model's run card."""
    role = "arch" if _is_arch(e.ref) else ("teacher" if e.is_teacher else (e.card or {}).get("kind", "model"))
    card = e.card or {}
    row = {
        "model": stored_ref(e.ref), "name": e.name, "task": task.name, "role": role,
        "teacher": card.get("teacher"), "status": card.get("status", "finished") if card else "finished",
        "quantization": e.quantization, "runtime": e.runtime, "protocol": protocol.name,
        "retention": None, "agreement": None,
        "params": e.params, "threads": threads,
        "hardware": tag, "hardware_json": hw, "run_card": e.card, "_preds": None,
        "speedup_p50": None, "speedup_p50_fixed": None, "speedup_alone": None, "memory_mb": None,
        **{m: None for m in task.metrics},
    }
    if e.model is None or data is None or _is_arch(e.ref):
        return row  # timing only: never ranked by quality
    if hasattr(kind, "check_teacher"):
        kind.check_teacher(e.model, data)  # the model predicts the eval set's labels
    recorded = (e.card or {}).get("eval_options")
    options = {**{k: v for k, v in (recorded if isinstance(recorded, dict) else {}).items()
                  if k in getattr(kind, "eval_options", ())}, **(eval_options or {})}
    result = kind.evaluate(e.model, e.tokenizer, data, max_length=eval_length or _trained_length(e.card), **options)
    row["_preds"] = result.pop("predictions", None)
    row.update({k: v for k, v in result.items() if k in task.metrics or k == "eval_size"})
    row["_eval_options"] = {k: result[k] for k in getattr(kind, "eval_options", ()) if k in result}
    return row


# ---------------------------------------------------------------- tables


def format_table(rows: list[dict], task: Task | None = None) -> str:
    """A Markdown table of the headline columns (used by the CLI and the README),
    derived from the leaderboard schema and the task's metric columns."""
    from .leaderboard_columns import table_columns
    from .views import noted_name

    cols = table_columns(task)
    head = "| " + " | ".join(label for _, label, _ in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    for r in rows:
        cells = (noted_name(r) if key == "name" and r.get("note") else fmt(r.get(key)) for key, _, fmt in cols)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
