"""The measurement protocol on tiny in-memory models (sizes chosen so that the
ordering of the numbers is certain, not so that timings are fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import make_tiny_bert
from hub import bench_measure as M
from hub import benchmark as B
from hub.data import load_classification
from hub.leaderboard import LeaderboardStore
from hub.tasks import get_task

SST2 = get_task("sst2")
QUICK = B.Protocol(warmup=2, min_calls=15, min_seconds=0.2, throughput_seconds=0.2, memory=False)


@pytest.fixture(scope="module")
def big_and_small(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    big = make_tiny_bert(root / "big", layers=6, hidden=128, heads=4)
    small = make_tiny_bert(root / "small", layers=1, hidden=32, heads=4, seed=1)
    return big, small


@pytest.fixture(scope="module")
def eval_data(tiny_data_dir):
    return load_classification(SST2, data_dir=str(tiny_data_dir), max_eval_samples=40, label_names=["negative", "positive"],
                               need_train=False)


def test_protocol_rows(big_and_small, eval_data, tmp_path):
    big, small = big_and_small
    store = LeaderboardStore(tmp_path / "lb.sqlite")
    rows = B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, protocol=QUICK)
    store.add_rows(rows)
    assert [r["role"] for r in rows] == ["teacher", "model"]
    assert {r["protocol"] for r in rows} == {"full"} and {r["runtime"] for r in rows} == {"torch"}
    t, s = rows
    for r in rows:
        assert 0 < r["latency_p50_ms"] <= r["latency_p90_ms"] <= r["latency_p99_ms"]
        assert 0 < r["latency_p50_ms_fixed"] <= r["latency_p90_ms_fixed"] <= r["latency_p99_ms_fixed"]
        assert r["calls"] >= QUICK.min_calls and r["throughput_per_s"] > 0 and r["tokenize_p50_ms"] > 0
        assert 0 < r["peak_fraction"] < 1.5 and r["gflops_per_s"] > 0
        assert r["hardware"].count("|") == 5 and r["threads"] >= 1
        assert 0 <= r["accuracy"] <= 1 and r["eval_size"] == 40
    assert t["retention"] == 1.0 and t["agreement"] == 1.0 and t["speedup_p50"] == 1.0
    assert s["retention"] == pytest.approx(s["accuracy"] / t["accuracy"])
    assert s["speedup_p50"] > 1 and s["speedup_p50_fixed"] > 1.5  # 1 layer of 32 vs 6 layers of 128
    assert s["params"] < t["params"] and s["size_mb"] < t["size_mb"]
    assert t["flops_per_example"] > 10 * s["flops_per_example"]
    stored = store.rows()
    assert [r["name"] for r in stored] == ["big", "small"] and all(r["ranked"] == 1 for r in stored)
    assert [r["model"] for r in stored] == [str(big.resolve()), str(small.resolve())]  # the app finds them


def test_same_config_same_quality(big_and_small, eval_data):
    big, small = big_and_small
    runs = [B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, protocol=QUICK)
            for _ in range(2)]
    keys = ("accuracy", "f1", "retention", "agreement", "params", "size_mb", "flops_per_example")
    assert [[r[k] for k in keys] for r in runs[0]] == [[r[k] for k in keys] for r in runs[1]]


def test_memory_subprocess(big_and_small, eval_data):
    big, small = big_and_small
    proto = B.Protocol(warmup=1, min_calls=5, min_seconds=0.05, throughput_seconds=0.1, memory=True)
    t, s = B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, protocol=proto)
    assert t["memory_mb"] is not None and s["memory_mb"] is not None, (t, s)
    # ~1.2M fp32 parameters = ~5 MB of weights: at least that much is attributable to the big model
    assert t["memory_mb"] > 3 and t["memory_mb"] > s["memory_mb"]
    assert t["peak_rss_mb"] > t["rss_baseline_mb"]
    # timed alone in those processes too: the teacher first and last, averaged; a 6x128 model vs a 1x32 one
    assert len(t["latency_alone_p50_ms_runs"]) == 2 and t["latency_alone_p50_ms"] == pytest.approx(
        sum(t["latency_alone_p50_ms_runs"]) / 2)
    assert s["calls_alone"] >= proto.min_calls and s["latency_alone_p50_ms"] <= s["latency_alone_p90_ms"]
    assert t["speedup_alone"] == pytest.approx(1.0) and s["speedup_alone"] > 1
    assert s["speedup_alone"] == pytest.approx(t["latency_alone_p50_ms"] / s["latency_alone_p50_ms"])
    assert s["alone_over_bound"] == pytest.approx(s["latency_alone_p50_ms"] / s["flop_bound_ms"])


def test_memory_probe_times_an_onnx_model_with_spinning_threads(big_and_small, hub_home, monkeypatch):
    """The probe serves an exported model the way a process serving only it would (spinning ORT threads)."""
    pytest.importorskip("onnxruntime")
    from hub.export import export_onnx
    from hub.onnx_runtime import OnnxModel

    _, small = big_and_small
    folder = hub_home / "small-onnx"
    export_onnx(str(small), str(folder), head=SST2.head)
    seen = []
    real = OnnxModel.from_dir.__func__
    monkeypatch.setattr(OnnxModel, "from_dir", classmethod(lambda cls, *a, **k: seen.append(k.get("spin")) or real(cls, *a, **k)))
    model, _, _ = B.load_for_bench(str(folder), SST2, spin=True)
    assert seen == [True] and model(input_ids=[[2, 5, 3]]).logits.shape == (1, 2)
    from transformers import AutoTokenizer

    x = dict(AutoTokenizer.from_pretrained(str(small))("a fine film", return_tensors="pt"))
    out = B.memory_probe(str(folder), "sst2", 1, None, [x], timing=B.Protocol(warmup=1, min_calls=5, min_seconds=0.01))
    assert out["memory_mb"] is not None and out["calls_alone"] >= 5 and out["latency_alone_p50_ms"] > 0, out


def test_int8_variant(big_and_small, eval_data):
    big, _ = big_and_small
    rows = B.run_benchmark(SST2, [str(big)], data=eval_data, quantize="int8", protocol=QUICK)
    fp32, int8 = rows
    assert (fp32["quantization"], int8["quantization"]) == ("fp32", "int8")
    assert int8["params"] == fp32["params"] and int8["size_mb"] < fp32["size_mb"]
    assert int8["retention_fp32"] == pytest.approx(int8["accuracy"] / fp32["accuracy"])


def test_int8_unavailable_is_reported_not_fatal(big_and_small, eval_data, monkeypatch, tmp_path):
    monkeypatch.setattr(B, "quantize_int8", lambda model: (None, "no quantized engine"))
    store = LeaderboardStore(tmp_path / "lb.sqlite")
    rows = B.run_benchmark(SST2, [str(big_and_small[1])], data=eval_data, quantize="int8", protocol=QUICK)
    store.add_rows(rows)
    assert rows[1]["quantization"] == "int8 unavailable: no quantized engine"
    assert "latency_p50_ms" not in rows[1] and rows[1]["accuracy"] is None  # nothing was measured for it
    assert rows[0]["latency_p50_ms"] > 0
    assert [r["ranked"] for r in store.rows()] == [1, 0]


def test_arch_models_are_timing_only(tmp_path):
    store = LeaderboardStore(tmp_path / "lb.sqlite")
    rows = B.run_benchmark(SST2, ["arch:tinybert-4l-312"], teacher="arch:tinybert-4l-312", data=None,
                           protocol=B.Protocol(warmup=1, min_calls=3, min_seconds=0.01, throughput_seconds=0.05,
                                               memory=False))
    store.add_rows(rows)
    assert rows[0]["accuracy"] is None and rows[0]["role"] == "arch" and rows[0]["latency_p50_ms"] > 0
    assert store.rows()[0]["ranked"] == 0


def _bert_formula(d, f, n, L, labels=2):
    """2 x multiply-adds of a BERT encoder + pooler + head (the formula the README used)."""
    per_layer = 4 * L * d * d + 2 * L * L * d + 2 * L * d * f
    return 2 * (n * per_layer + d * d + d * labels)


def test_flop_counter_matches_the_bert_formula_and_counts_any_architecture():
    import torch
    from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                              DistilBertForSequenceClassification, GPT2Config, GPT2LMHeadModel)

    x = {"input_ids": torch.ones(1, 128, dtype=torch.long), "attention_mask": torch.ones(1, 128, dtype=torch.long)}
    bert = BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=256)).eval()
    counted = M.flops_per_example(bert, x)
    assert counted == pytest.approx(_bert_formula(64, 256, 2, 128), rel=0.02)
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=100, dim=64, n_layers=2, n_heads=4,
                                                                  hidden_dim=256)).eval()
    assert M.flops_per_example(distil, x) == pytest.approx(counted, rel=0.05)  # same shapes, other names
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=64, n_layer=2, n_head=4)).eval()
    assert M.flops_per_example(gpt2, {"input_ids": x["input_ids"]}) > 2 * 2 * 128 * 64 * 64 * 4


def test_flops_ratio_bert_base_vs_tinybert():
    ratio = _bert_formula(768, 3072, 12, 128) / _bert_formula(312, 1200, 4, 128)
    assert 17 < ratio < 20  # the TinyBERT paper's "~18x fewer FLOPs"


def test_percentile_and_table():
    assert M.percentile([5, 1, 3], 50) == 3 and M.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    table = B.format_table([{"name": "m", "accuracy": 0.9, "latency_p50_ms": None}], SST2)
    assert "| m |" in table and "0.9000" in table and "–" in table


def test_cli_bench_json(big_and_small, tiny_data_dir, hub_home, capsys):
    from hub.cli import main

    big, small = big_and_small
    args = ["bench", "--task", "sst2", "--model", str(small), "--teacher", str(big), "--data-dir", str(tiny_data_dir),
            "--max-eval-samples", "20", "--min-calls", "5", "--min-seconds", "0.05", "--warmup", "1", "--skip-memory",
            "--json"]
    assert main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    required = {"model", "task", "accuracy", "f1", "retention", "agreement", "latency_p50_ms", "latency_p90_ms",
                "latency_p99_ms", "latency_p50_ms_fixed", "throughput_per_s", "speedup_p50", "memory_mb", "params",
                "size_mb", "gflops_per_s", "peak_fraction", "quantization", "hardware", "protocol", "runtime"}
    assert len(lines) == 2 and all(required <= set(x) for x in lines)
    assert main(["leaderboard", "--task", "sst2", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert len(board) == 2 and (hub_home / "leaderboard.sqlite").is_file()
    assert all(row["protocol"] == "full" for row in board)
    assert main(["leaderboard", "--task", "nope"]) == 2  # an unknown task is an error, not an empty table
    assert main(["leaderboard", "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("row_id,created_at,model")
    assert main(["bench", "--task", "sst2", "--model", str(small), "--no-save"]) == 2  # no eval set
    assert main(["bench", "--task", "sst2", "--model", "arch:nope", "--no-save"]) == 2


def test_onnx_runtime_variants_and_export_cli(big_and_small, eval_data, tiny_data_dir, hub_home, tmp_path, capsys):
    """Issue 12: torch/onnx x fp32/int8 rows with the same protocol, quality re-evaluated in each runtime."""
    pytest.importorskip("onnxruntime")
    big, small = big_and_small
    rows = B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, quantize="int8", protocol=QUICK,
                           runtimes=("torch", "onnx"))
    kinds = [(r["name"], r["runtime"], r["quantization"]) for r in rows]
    assert ("small (onnx)", "onnx", "fp32") in kinds and ("small (onnx int8)", "onnx", "int8") in kinds
    onnx_fp32 = next(r for r in rows if r["name"] == "small (onnx)")
    torch_fp32 = next(r for r in rows if r["name"] == "small")
    assert onnx_fp32["accuracy"] == torch_fp32["accuracy"] and onnx_fp32["retention_fp32"] == 1.0
    assert onnx_fp32["latency_p50_ms"] > 0 and onnx_fp32["size_mb"] > 0 and onnx_fp32["flops_per_example"]
    from hub.cli import main

    assert main(["export", "--model", str(small), "--output-dir", str(tmp_path / "o"), "--task", "sst2",
                 "--data-dir", str(tiny_data_dir), "--max-eval-samples", "20"]) == 0
    card = json.loads((tmp_path / "o" / "export.json").read_text())
    assert card["parity"]["agreement"] >= 0.995 and card["parity"]["max_abs_diff"] < 1e-3


def test_flop_bound_and_latency_over_bound(big_and_small, eval_data, tmp_path):
    """Issue 12: fp32 rows carry the FLOP bound at natural length and latency / bound, consistent with their
    inputs; int8 rows (not bounded by the fp32 matmul peak) carry neither."""
    big, small = big_and_small
    rows = B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, quantize="int8", protocol=QUICK)
    fp32 = [r for r in rows if r["quantization"] == "fp32"]
    assert len(fp32) == 2 and all("flop_bound_ms" not in r for r in rows if r["quantization"] != "fp32")
    for r in fp32:
        assert r["flop_bound_ms"] > 0 and r["latency_over_bound"] > 0
        assert r["flop_bound_ms"] == pytest.approx(r["flops_natural"] / (r["peak_gflops"] * 1e9) * 1000)
        assert r["latency_over_bound"] == pytest.approx(r["latency_p50_ms"] / r["flop_bound_ms"])
        assert r["flops_natural"] < r["flops_per_example"]  # the eval sentences are shorter than 128 tokens
    t, s = fp32
    assert t["flops_natural"] > 10 * s["flops_natural"]
    store = LeaderboardStore(tmp_path / "lb.sqlite")
    store.add_rows(rows)
    assert [r["latency_over_bound"] for r in store.rows() if r["quantization"] == "fp32"] == \
        pytest.approx([t["latency_over_bound"], s["latency_over_bound"]])


def test_median_flops_is_the_middle_input():
    from transformers import BertConfig, BertForSequenceClassification

    import torch

    model = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32)).eval()
    enc = [{"input_ids": torch.ones(1, n, dtype=torch.long), "attention_mask": torch.ones(1, n, dtype=torch.long)}
           for n in (9, 3, 30)]
    assert M.median_flops(model, enc) == M.flops_per_example(model, enc[0])
    two = M.median_flops(model, enc[:2])  # even count: halfway between the two, like percentile()
    assert two == pytest.approx((M.flops_per_example(model, enc[0]) + M.flops_per_example(model, enc[1])) / 2)


def test_profile_breakdown_sums_to_100(big_and_small, eval_data, tiny_data_dir, capsys):
    from hub.bench_profile import CATEGORIES, profile_models
    from hub.cli import main

    big, small = big_and_small
    profiles = profile_models(SST2, [str(big), str(small)], eval_data, calls=5, warmup=1)
    for p in profiles:
        parts = p["breakdown"]
        assert set(parts) == set(CATEGORIES)
        assert sum(v["pct"] for v in parts.values()) == pytest.approx(100.0)
        assert all(v["ms"] >= 0 for v in parts.values())
        assert parts["matmul"]["ms"] > 0 and parts["attention"]["ms"] > 0 and parts["tokenize"]["ms"] > 0
        ops = sum(parts[c]["ms"] for c in ("matmul", "attention", "other_ops"))
        assert ops + parts["overhead"]["ms"] == pytest.approx(max(p["profiled_ms"], ops))
        assert p["flop_bound_ms"] == pytest.approx(p["flops"] / (p["peak_gflops"] * 1e9) * 1000)
        assert p["latency_over_bound"] == pytest.approx(p["latency_ms"] / p["flop_bound_ms"])
    assert profiles[0]["breakdown"]["matmul"]["ms"] > profiles[1]["breakdown"]["matmul"]["ms"]  # 6x128 vs 1x32
    assert main(["profile", "--task", "sst2", "--model", str(small), "--data-dir", str(tiny_data_dir),
                 "--max-eval-samples", "20", "--calls", "3", "--warmup", "1", "--json"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert set(json.loads(line)["breakdown"]) == set(CATEGORIES)
    assert main(["profile", "--task", "sst2", "--model", "arch:tinybert-4l-312", "--calls", "2", "--warmup", "0"]) == 0
    assert "| arch:tinybert-4l-312 |" in capsys.readouterr().out


def test_profile_of_exported_graphs_uses_onnx_runtimes_profiler(big_and_small, eval_data, hub_home):
    """An ONNX folder is profiled by ONNX Runtime's own profiler, into the same categories; its int8 form has no
    fp32 FLOP bound (as in the benchmark's rows)."""
    pytest.importorskip("onnxruntime")
    from hub.bench_profile import CATEGORIES, format_profiles, profile_models
    from hub.export import export_onnx

    _, small = big_and_small
    export_onnx(str(small), str(hub_home / "fp32"), head=SST2.head)
    export_onnx(str(small), str(hub_home / "int8"), quantize="int8", head=SST2.head)
    fp32, int8, eager = profile_models(SST2, [str(hub_home / "fp32"), str(hub_home / "int8"), str(small)], eval_data,
                                       calls=5, warmup=1)
    assert (fp32["runtime"], int8["runtime"], eager["runtime"]) == ("onnx", "onnx", "torch")
    for p in (fp32, int8):
        parts = p["breakdown"]
        assert set(parts) == set(CATEGORIES) and sum(v["pct"] for v in parts.values()) == pytest.approx(100.0)
        assert parts["matmul"]["ms"] > 0 and parts["attention"]["ms"] > 0 and parts["other_ops"]["ms"] > 0
        assert p["tokens"] == eager["tokens"] and p["flops"] == pytest.approx(eager["flops"])  # same input, same shapes
    assert fp32["latency_over_bound"] == pytest.approx(fp32["latency_ms"] / fp32["flop_bound_ms"])
    assert int8["flop_bound_ms"] is None and int8["latency_over_bound"] is None
    assert "| – | – |" in format_profiles([int8])


def test_benchmark_doctests():
    import doctest

    import hub.benchmark

    assert doctest.testmod(hub.benchmark).failed == 0
    result = doctest.testmod(M)
    assert result.failed == 0 and result.attempted >= 2


def test_rows_record_an_alias_by_its_local_folder():
    """The app lists leaderboard models by folder: an alias with a local folder is stored as that folder."""
    from hub.bench_models import stored_ref
    from hub.models import resolve_model_ref

    folder = resolve_model_ref("minilm-l6")
    assert stored_ref("minilm-l6") == folder and Path(folder, "config.json").is_file()
    assert stored_ref("runs/student") == "runs/student" and stored_ref("arch:bert-base") == "arch:bert-base"
    assert stored_ref("someone/some-model") == "someone/some-model"  # Hub ids are kept (no network call)


def test_the_bound_uses_the_best_of_the_runs_peak_samples(big_and_small, eval_data, monkeypatch):
    """A shared VM's matmul rate moves within a run (92 then 177 GFLOP/s here): the peak is sampled three
    times and the best sample sets the bound, so a slow moment cannot put a model under its bound."""
    big, small = big_and_small
    samples = iter([40.0, 90.0, 60.0])
    monkeypatch.setattr(B, "matmul_peak_gflops", lambda: next(samples))
    rows = B.run_benchmark(SST2, [str(small)], teacher=str(big), data=eval_data, protocol=QUICK)
    for r in rows:
        assert r["peak_gflops"] == 90.0 and r["peak_gflops_runs"] == [40.0, 90.0, 60.0]
        assert r["flop_bound_ms"] == pytest.approx(r["flops_natural"] / 90e9 * 1000)
        assert r["peak_fraction"] == pytest.approx(r["gflops_per_s"] / 90.0)
