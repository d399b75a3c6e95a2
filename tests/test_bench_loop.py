"""Issue 12: our distillation loop timed against a TinyBERT task_distill.py-style reference (tiny models)."""

from __future__ import annotations

import json

import pytest
import torch

from hub import bench_loop as L
from hub.data import load_classification
from hub.models import parse_student
from hub.tasks import get_task

SST2 = get_task("sst2")


def test_bench_distill_end_to_end(tiny_teacher_dir, tiny_data_dir, capsys):
    from hub.cli import main

    assert main(["bench-distill", "--task", "sst2", "--teacher", str(tiny_teacher_dir), "--student",
                 "teacher-layers:2", "--data-dir", str(tiny_data_dir), "--steps", "3", "--batch-size", "8",
                 "--threads", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"task", "teacher", "student", "steps", "batch_size", "examples", "mean_length", "threads", "hardware",
            "stages", "ratio"} <= set(result)
    assert result["examples"] == 24 and result["threads"] == 1 and result["ratio"] > 0
    assert result["teacher_head_trained"]
    assert [s["stage"] for s in result["stages"]] == ["intermediate", "prediction"]
    for s in result["stages"]:
        assert s["ours_examples_per_s"] > 0 and s["reference_examples_per_s"] > 0
        assert s["ratio"] == pytest.approx(s["ours_examples_per_s"] / s["reference_examples_per_s"])
        assert s["ours_examples_per_s"] == pytest.approx(24 / s["ours_s"])
        # ours pads each length-grouped batch to its longest sentence; the reference pads everything to 128
        assert s["reference_tokens_per_example"] == 128 and s["ours_tokens_per_example"] < 20
    inter, pred = result["stages"]
    assert not inter["cache_included"] and inter["cache_s"] is None
    assert pred["cache_included"] and 0 < pred["cache_s"] < pred["ours_s"]
    assert main(["bench-distill", "--task", "sst2", "--teacher", str(tiny_teacher_dir), "--data-dir",
                 str(tiny_data_dir), "--steps", "100", "--batch-size", "8"]) == 2  # 800 examples > 400
    assert "lower --steps" in capsys.readouterr().err


def test_reference_loop_pads_to_128_and_runs_the_teacher_every_step(tiny_teacher_dir, tiny_data_dir):
    from hub.config import DistillConfig, TrainConfig

    data = load_classification(SST2, data_dir=str(tiny_data_dir), max_train_samples=16)
    cfg, dcfg = TrainConfig(batch_size=4, learning_rate=1e-3), DistillConfig()
    kind, teacher, module, layer_map, tok, trained = L._setup(SST2, str(tiny_teacher_dir), parse_student("teacher-layers:1"),
                                                     data, cfg, dcfg)
    assert trained
    lengths = []
    teacher.register_forward_hook(lambda m, a, kw, out: lengths.append(kw["input_ids"].shape), with_kwargs=True)
    before = [p.clone() for p in module.parameters()]
    ds = kind.encode_train(tok, data, cfg.max_length)
    fixed = L.fixed_length_collator(kind.collator(tok))
    for stage in ("intermediate", "prediction"):
        assert L.reference_stage(stage, module, teacher, ds, fixed, kind, cfg, dcfg, layer_map, 3) > 0
    assert lengths == [torch.Size([4, 128])] * 6
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))  # it trained


def test_a_teacher_without_head_is_timed_with_a_new_one(tmp_path, tiny_data_dir):
    from conftest import make_bare_bert
    from hub.config import DistillConfig, TrainConfig

    bare = make_bare_bert(tmp_path / "bare")
    data = load_classification(SST2, data_dir=str(tiny_data_dir), max_train_samples=8)
    *_, trained = L._setup(SST2, str(bare), parse_student("teacher-layers:1"), data, TrainConfig(), DistillConfig())
    assert trained is False


def test_bench_distill_times_our_loop_in_bf16_without_attention_dropout(tiny_teacher_dir, tiny_data_dir, capsys,
                                                                         monkeypatch):
    """--precision bf16 --attention-dropout 0 apply to our loop only: its student trains without attention dropout
    and in autocast, the reference keeps dropout 0.1 and fp32; the result says which."""
    from hub.cli import main

    seen = []
    real = L.reference_stage

    def spy(stage, module, *args, **kwargs):
        seen.append(module.student.bert.encoder.layer[0].attention.self.dropout.p)
        return real(stage, module, *args, **kwargs)

    ours = []
    real_ours = L.our_stage

    def spy_ours(stage, module, teacher, train_ds, collator, kind, cfg, *args, **kwargs):
        ours.append((module.student.bert.encoder.layer[0].attention.self.dropout.p, cfg.precision))
        return real_ours(stage, module, teacher, train_ds, collator, kind, cfg, *args, **kwargs)

    monkeypatch.setattr(L, "reference_stage", spy)
    monkeypatch.setattr(L, "our_stage", spy_ours)
    assert main(["bench-distill", "--task", "sst2", "--teacher", str(tiny_teacher_dir), "--student",
                 "teacher-layers:2", "--data-dir", str(tiny_data_dir), "--steps", "2", "--batch-size", "8",
                 "--threads", "1", "--precision", "bf16", "--attention-dropout", "0"]) == 0
    assert ours == [(0.0, "bf16"), (0.0, "bf16")]
    out = capsys.readouterr().out
    assert "ours in bf16, attention dropout 0;" in out
    assert seen and set(seen) == {0.1}  # the warm-up and both reference stages
