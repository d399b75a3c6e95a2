"""The one settings schema: defaults, ranges, coercion, CLI flags derived from it."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hub.config import (DistillConfig, JobSettings, TrainConfig, add_arguments, coerce, default_learning_rate,
                        from_args, from_dict, is_hub_id, spec)


def test_bool_text_is_parsed_not_truthy():
    meta = spec(JobSettings, "benchmark")
    assert coerce("benchmark", meta, "false") is False and coerce("benchmark", meta, "true") is True
    assert coerce("benchmark", meta, 0) is False and coerce("benchmark", meta, "1") is True
    with pytest.raises(ValueError, match="true or false"):
        coerce("benchmark", meta, "maybe")


def test_ranges_types_and_unknown_keys():
    assert from_dict(JobSettings, {"epochs": "2"}).epochs == 2.0
    for bad, msg in (({"epochs": 100}, "between"), ({"batch_size": 1.5}, "whole"), ({"alpha": "nan"}, "finite"),
                     ({"epocs": 1}, "unknown"), ({"stages": "intermediate,predction"}, "subset")):
        with pytest.raises(ValueError, match=msg):
            from_dict(JobSettings, bad)
    with pytest.raises(ValueError, match="between"):
        DistillConfig(temperature=0)


def test_cli_flags_derive_from_the_schema():
    p = argparse.ArgumentParser()
    add_arguments(p, TrainConfig, defaults={"epochs": 3.0})
    args = p.parse_args(["--max-length", "64"])
    cfg = from_args(TrainConfig, args)
    assert cfg.max_length == 64 and cfg.epochs == 3.0 and cfg.batch_size == spec(TrainConfig, "batch_size")["default"]
    p = argparse.ArgumentParser()
    add_arguments(p, DistillConfig)
    d = from_args(DistillConfig, p.parse_args(["--stages", "prediction", "--layer-map", "2,4", "--w-hidden", "3"]))
    assert d.stages == ("prediction",) and d.layer_map == (2, 4) and d.weights["hidden"] == 3.0


def test_one_rule_for_hub_ids_and_learning_rates():
    assert is_hub_id("bert-base-uncased") and is_hub_id("huawei-noah/TinyBERT_General_4L_312D")
    assert not is_hub_id("../../etc/passwd") and not is_hub_id("/abs/path") and not is_hub_id("a/b/c")
    assert default_learning_rate("tinybert-4l-312") == 5e-4 and default_learning_rate("custom") == 5e-4
    assert default_learning_rate("teacher-layers:3") == 1e-4 and default_learning_rate("some/checkpoint") == 1e-4
    # extractive QA: one rate for every student (measured: README, QA)
    assert default_learning_rate("teacher-layers:3", "qa") == default_learning_rate("tinybert-4l-312", "qa") == 5e-4
    assert default_learning_rate("teacher-layers:3", "classification") == 1e-4


def test_config_imports_no_torch():
    code = "import sys, hub.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
