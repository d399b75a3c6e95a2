"""The measurement protocol: quality, latency, speedup, memory, size, compute.

Every model on the leaderboard is measured by this module, the same way:

* **Quality** on the eval set (the task's metrics; accuracy and F1 for
  classification); with a teacher, *retention* (student metric / teacher metric)
  and *agreement* (share of examples where both predict the same label).
* **Latency** of the forward pass at batch 1, after ``warmup`` calls, over
  ``max(min_calls, min_seconds)`` per model: (a) on the real eval texts at their
  natural length, (b) at a fixed length of 128 tokens (the papers' setting).
  Tokenization is timed separately (``tokenize_p50_ms``). All models run
  interleaved, call by call, on the same inputs (A, B, A, B ...), so the
  speedup is the median of per-pair ratios and a drifting machine biases no one.
* **Throughput**: examples/s of the forward pass at batch 32 on the eval texts.
* **Memory**: in a fresh subprocess, peak RSS after loading the model and
  running a latency loop, minus the RSS of that process after its imports.
* **Size**: parameter count, parameter bytes, size on disk (serialized size for
  models without a folder).
* **Compute**: FLOPs per example from the config and token count, achieved
  GFLOP/s at length 128, and its fraction of this machine's dense-matmul peak
  (measured once per run with a large fp32 matmul).
* **Hardware** tag on every row; one thread count for every model.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .hardware import hardware_info, hardware_tag
from .tasks import Task

ARCH_PREFIX = "arch:"
TOKENIZER_FOR_ARCH = "minilm-l6"  # BERT's uncased 30,522-word vocabulary, available offline


@dataclass
class Protocol:
    warmup: int = 10
    min_calls: int = 200
    min_seconds: float = 10.0
    seq_len: int = 128
    throughput_batch: int = 32
    throughput_seconds: float = 3.0
    threads: int | None = None  # None: all cores available to this process
    memory: bool = True

    @classmethod
    def quick(cls) -> "Protocol":
        """A few seconds per model: for the app's automatic benchmark after a run."""
        return cls(warmup=3, min_calls=30, min_seconds=1.0, throughput_seconds=1.0, memory=False)


# ---------------------------------------------------------------- loading


def _is_arch(ref: str) -> bool:
    return ref.startswith(ARCH_PREFIX)


def _model_size(model) -> int:
    from .models import model_size

    return model_size(model)


def load_for_bench(ref: str, task: Task, num_labels: int = 2):
    """(model, tokenizer, run card or None). ``arch:NAME`` gives random weights."""
    from .models import build_architecture, load_model, load_tokenizer, resolve_model_ref

    if _is_arch(ref):
        model = build_architecture(ref[len(ARCH_PREFIX):], task, num_labels=num_labels)
        return model.eval(), load_tokenizer(TOKENIZER_FOR_ARCH), None
    model, trained = load_model(ref, task)
    if not trained:
        raise ValueError(f"{ref} has no trained {task.head} head: its quality numbers would be meaningless")
    card_path = Path(resolve_model_ref(ref)) / "run.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    return model.eval(), load_tokenizer(ref), card


def quantize_int8(model):
    """Dynamic int8 quantization of the Linear layers; (model, None) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in 2.13 but works
            from torch.ao.quantization import quantize_dynamic

            engines = torch.backends.quantized.supported_engines
            if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
                return None, f"no quantized engine in this torch build ({engines})"
            return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8).eval(), None
    except Exception as exc:  # noqa: BLE001 - any failure is reported in the row
        return None, f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- measurements


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100].

    >>> percentile([1, 2, 3, 4], 50)
    2.5
    """
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def flops_per_example(config, seq_len: int) -> float:
    """Forward FLOPs (2 x multiply-adds) of a BERT-style encoder + pooler + head.

    Per layer: Q, K, V, output projections 4*L*d^2, scores and weighted sum
    2*L^2*d, feed-forward 2*L*d*f multiply-adds.
    """
    d, f, n, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers, seq_len
    per_layer = 4 * L * d * d + 2 * L * L * d + 2 * L * d * f
    head = d * d + d * config.num_labels
    return 2.0 * (n * per_layer + head)


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


def _inputs(tokenizer, texts: list[str], fixed_len: int | None) -> list[dict]:
    if fixed_len:
        return [dict(tokenizer(t, truncation=True, max_length=fixed_len, padding="max_length", return_tensors="pt"))
                for t in texts]
    return [dict(tokenizer(t, truncation=True, max_length=128, return_tensors="pt")) for t in texts]


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


def tokenize_latency(tokenizer, texts: list[str], calls: int = 200) -> list[float]:
    out = []
    for i in range(calls):
        t0 = time.perf_counter()
        tokenizer(texts[i % len(texts)], truncation=True, max_length=128, return_tensors="pt")
        out.append(time.perf_counter() - t0)
    return out


@torch.inference_mode()
def throughput(model, tokenizer, texts: list[str], batch: int, seconds: float) -> float:
    """Examples/s of the forward pass at batch ``batch`` (pre-tokenized, dynamic padding)."""
    batches = [dict(tokenizer(texts[s : s + batch], truncation=True, max_length=128, padding=True, return_tensors="pt"))
               for s in range(0, max(len(texts), 1), batch)]
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


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_probe(ref: str, task_name: str, threads: int, quantize: str | None, texts: list[str], calls: int = 50) -> dict:
    """Model-attributable memory, measured in a fresh subprocess."""
    cmd = [sys.executable, "-m", "hub.benchmark", "probe", ref, task_name, str(threads), quantize or "fp32"]
    proc = subprocess.run(cmd, input=json.dumps({"texts": texts[:64], "calls": calls}), capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        return {"memory_mb": None, "memory_error": proc.stderr.strip().splitlines()[-1:] or ["probe failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _probe_main(argv: list[str]) -> None:
    """Child side of :func:`memory_probe`.

    Baseline = RSS after the imports *and* after the model's code paths are
    warm (a 1-layer, 8-wide model of the same class ran once, the tokenizer is
    loaded: both are shared by every model, not attributable to this one).
    Then the peak-RSS counter is reset, the model loaded (and quantized: the
    counter is reset again after that, so the transient fp32 copy is not
    counted) and run; the result is peak RSS minus the baseline.
    """
    ref, task_name, threads, quant = argv
    import gc

    from .models import _auto_class, load_tokenizer, resolve_model_ref
    from .tasks import get_task

    torch.set_num_threads(int(threads))
    task = get_task(task_name)
    req = json.loads(sys.stdin.read())
    tok = load_tokenizer(TOKENIZER_FOR_ARCH if _is_arch(ref) else ref)
    if _is_arch(ref):
        from transformers import BertConfig

        cfg = BertConfig()
    else:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(resolve_model_ref(ref))
    cfg.update({"num_hidden_layers": 1, "hidden_size": 8, "num_attention_heads": 1, "intermediate_size": 8})
    with torch.inference_mode():
        _auto_class(task).from_config(cfg).eval()(**_inputs(tok, req["texts"][:1], None)[0])
    gc.collect()
    base = _rss_mb("VmRSS")
    _reset_peak()
    model, _, _ = load_for_bench(ref, task)
    if quant == "int8":
        model, _ = quantize_int8(model)
        gc.collect()
        _reset_peak()
    with torch.inference_mode():
        for x in _inputs(tok, req["texts"], None) * max(1, req["calls"] // max(len(req["texts"]), 1)):
            model(**x)
        for x in _inputs(tok, req["texts"][:4], min(128, model.config.max_position_embeddings)):
            model(**x)
    peak = _rss_mb("VmHWM")
    print(json.dumps({"memory_mb": round(peak - base, 1), "rss_baseline_mb": round(base, 1),
                      "peak_rss_mb": round(peak, 1)}))


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0); a no-op elsewhere."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


# ---------------------------------------------------------------- the run


@dataclass
class Entry:
    """One measured model (a variant: fp32 or int8)."""

    ref: str
    name: str
    model: object
    tokenizer: object
    card: dict | None
    quantization: str = "fp32"
    is_teacher: bool = False
    params: int | None = None  # weights of the fp32 model (packed int8 weights are not nn.Parameters)


def _summ(ms: list[float]) -> dict:
    return {"p50": percentile(ms, 50), "p90": percentile(ms, 90), "p99": percentile(ms, 99)}


def run_benchmark(
    task: Task,
    models: list[str],
    teacher: str | None = None,
    data=None,
    quantize: str | None = None,
    protocol: Protocol | None = None,
    store=None,
    save: bool = True,
    log=None,
    names: dict[str, str] | None = None,
) -> list[dict]:
    """Measure ``models`` (and ``teacher``) under one protocol; returns one row per
    measured variant (keys are leaderboard columns) and stores them when ``save``.

    ``data`` is a :class:`hub.data.ClassificationData` (eval split used) or None
    for timing-only runs (then ``arch:`` models only make sense, and the
    latency inputs are the task's examples). ``names`` maps a ref to its display name.
    """
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
        if quantize == "int8":
            q, why = quantize_int8(model)
            entries.append(Entry(ref, f"{name} (int8)", q, tok, card,
                                 quantization="int8" if q is not None else f"int8 unavailable: {why}",
                                 is_teacher=False, params=entries[-1].params))

    texts = list(data.eval_texts) if data is not None else list(task.examples) or ["hello world"]
    rows = [_quality_row(e, task, data, tag, hw, threads) for e in entries]
    t_entry = entries[0] if teacher else None
    t_row = rows[0] if teacher else None
    for e, row in zip(entries, rows):
        if t_row is not None and row.get("_preds") is not None and t_row.get("_preds") is not None:
            from .metrics import agreement

            row["agreement"] = agreement(row["_preds"], t_row["_preds"])
            row["retention"] = row["accuracy"] / t_row["accuracy"] if t_row["accuracy"] else None
        if e.quantization == "int8":
            fp32 = next(r for r, x in zip(rows, entries) if x.ref == e.ref and x.quantization == "fp32")
            if row.get("accuracy") is not None and fp32.get("accuracy"):
                row["retention_fp32"] = row["accuracy"] / fp32["accuracy"]

    live = [(e, r) for e, r in zip(entries, rows) if e.model is not None]
    log(f"peak matmul rate on {threads} threads ...")
    peak = matmul_peak_gflops()
    # never longer than the shortest position table among the models
    fixed_len = min([protocol.seq_len] + [e.model.config.max_position_embeddings for e, _ in live])
    for label, fixed in (("", None), ("_len128", fixed_len)):
        log(f"latency at batch 1, {'natural length' if fixed is None else f'{fixed} tokens'} ...")
        inputs = _inputs(live[0][0].tokenizer, texts, fixed)  # every student shares the teacher's tokenizer
        times = interleaved_latency([e.model for e, _ in live], inputs, protocol)
        ms_all = [[t * 1000 for t in ts] for ts in times]
        for (e, row), ms in zip(live, ms_all):
            s = _summ(ms)
            row.update({f"latency_p50_ms{label}": s["p50"], f"latency_p90_ms{label}": s["p90"],
                        f"latency_p99_ms{label}": s["p99"], f"calls{label}": len(ms)})
        if t_entry is not None and t_entry.model is not None:
            t_ms = ms_all[0]
            for (e, row), ms in zip(live, ms_all):
                n = min(len(ms), len(t_ms))
                row[f"speedup_p50{label}"] = statistics.median(t_ms[i] / ms[i] for i in range(n))
    for e, row in live:
        log(f"throughput and size of {e.name} ...")
        row["tokenize_p50_ms"] = percentile([t * 1000 for t in tokenize_latency(e.tokenizer, texts)], 50)
        row["throughput_per_s"] = throughput(e.model, e.tokenizer, texts, protocol.throughput_batch,
                                             protocol.throughput_seconds)
        cfg = e.model.config
        row["flops_per_example"] = flops_per_example(cfg, fixed_len)
        row["seq_len_fixed"] = fixed_len
        row["gflops_per_s"] = row["flops_per_example"] / (row["latency_p50_ms_len128"] / 1000) / 1e9
        row["peak_fraction"] = row["gflops_per_s"] / peak
        row["param_bytes"] = param_bytes(e.model)
        row["size_mb"] = disk_mb(e.ref) if e.quantization == "fp32" and not _is_arch(e.ref) else serialized_mb(e.model)
        if protocol.memory:
            log(f"memory of {e.name} in a fresh process ...")
            mem = memory_probe(e.ref, task.name, threads, "int8" if e.quantization == "int8" else None, texts)
            row.update(mem)
    for row in rows:
        row.pop("_preds", None)
        row["peak_gflops"] = peak
        row["bench_json"] = {"protocol": asdict(protocol), **{k: v for k, v in row.items() if k != "run_card"}}
    if save:
        from .leaderboard import LeaderboardStore

        store = store or LeaderboardStore()
        for row in rows:
            row["row_id"] = store.add(_to_store(row))
    return [{k: v for k, v in r.items() if k != "bench_json"} for r in rows]


def _quality_row(e: Entry, task: Task, data, tag: str, hw: dict, threads: int) -> dict:
    from .inference import evaluate

    role = "arch" if _is_arch(e.ref) else ("teacher" if e.is_teacher else (e.card or {}).get("kind", "model"))
    card = e.card or {}
    row = {
        "model": e.ref, "name": e.name, "task": task.name, "role": role,
        "teacher": card.get("teacher"), "status": card.get("status", "finished") if card else "finished",
        "quantization": e.quantization, "accuracy": None, "f1": None, "retention": None, "agreement": None,
        "params": e.params, "threads": threads,
        "hardware": tag, "hardware_json": hw, "run_card": e.card, "_preds": None,
        "speedup_p50": None, "speedup_p50_len128": None, "memory_mb": None,
    }
    if e.model is None or data is None or _is_arch(e.ref):
        return row  # timing only: never ranked by quality
    names = [e.model.config.id2label[i] for i in range(e.model.config.num_labels)]
    if names != data.label_names:
        raise ValueError(f"{e.ref} predicts labels {names}, the eval set has {data.label_names}")
    result = evaluate(e.model, e.tokenizer, data.eval_texts, data.eval_labels)
    row.update(accuracy=result["accuracy"], f1=result["f1"], _preds=result["predictions"], eval_size=len(data.eval_texts))
    return row


def _to_store(row: dict) -> dict:
    from .leaderboard import COLUMN_NAMES

    out = {k: v for k, v in row.items() if k in COLUMN_NAMES and k != "row_id"}
    if out.get("role") not in ("teacher", "student", "arch", "model"):
        out["role"] = "model"
    if "unavailable" in (row.get("quantization") or ""):
        out["ranked"] = 0
    return out


# ---------------------------------------------------------------- CLI and tables

TABLE_COLUMNS = (
    ("name", "model", "{}"), ("quantization", "quant", "{}"), ("accuracy", "acc", "{:.4f}"), ("f1", "F1", "{:.4f}"),
    ("retention", "retention", "{:.1%}"), ("agreement", "agree", "{:.1%}"),
    ("latency_p50_ms", "p50 ms", "{:.2f}"), ("latency_p90_ms", "p90 ms", "{:.2f}"),
    ("latency_p50_ms_len128", "p50 ms @128", "{:.2f}"), ("latency_p90_ms_len128", "p90 ms @128", "{:.2f}"),
    ("speedup_p50", "speedup", "{:.2f}x"), ("speedup_p50_len128", "speedup @128", "{:.2f}x"),
    ("throughput_per_s", "ex/s @32", "{:.0f}"), ("memory_mb", "mem MB", "{:.0f}"), ("params", "params", "{:,}"),
    ("size_mb", "size MB", "{:.1f}"), ("peak_fraction", "peak", "{:.1%}"),
)


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the headline columns (used by the CLI and the README)."""
    head = "| " + " | ".join(h for _, h, _ in TABLE_COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
    lines = [head, sep]
    for r in rows:
        cells = []
        for key, _, fmt in TABLE_COLUMNS:
            v = r.get(key)
            cells.append("–" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_cli(args) -> int:
    from .tasks import get_task

    task = get_task(args.task)
    protocol = Protocol(warmup=args.warmup, min_calls=args.min_calls, min_seconds=args.min_seconds,
                        threads=args.threads, memory=not args.skip_memory)
    data = None
    has_data = any([args.data_dir, args.eval_file, args.dataset])
    real = [m for m in ([args.teacher] if args.teacher else []) + args.model if not _is_arch(m)]
    if has_data and real:
        from .cli import _load_data
        from .models import load_model

        model, _ = load_model(real[0], task)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        data = _load_data(args, task, label_names=names, need_train=False)
    elif real:
        raise ValueError("benchmarking trained models needs an eval set: --data-dir, --eval-file or --dataset")
    rows = run_benchmark(task, args.model, teacher=args.teacher, data=data, quantize=args.quantize,
                         protocol=protocol, save=not args.no_save,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        for r in rows:
            print(json.dumps({k: v for k, v in r.items() if k not in ("run_card", "hardware_json")}, default=str))
    else:
        print(format_table(rows))
        print(f"\nhardware: {rows[0]['hardware']}" if rows else "")
    return 0


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "probe":
    _probe_main(sys.argv[2:])
