"""ONNX export (hub/export.py) and its runtime wrapper (hub/onnx_runtime.py) on tiny
BERTs built in memory: parity with PyTorch, export.json, int8, the wrapper's
model-like surface, and clear errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")  # the dynamo exporter's dependency

from conftest import make_tokenizer

from hub.export import HEADS, export_onnx, max_abs_diff, random_inputs
from hub.onnx_runtime import OnnxModel, is_onnx_dir

TEXTS = ["the movie was good", "bad and boring", "a lovely film, very fun", "it is the plot", "ugly cold dull movie", "great"]
PAIRS = [("what was good?", "the movie was good and the plot was lovely"), ("is it bad?", "it is a very bad film")]


def _tiny(folder: Path, head: str, seed: int) -> Path:
    """A saved 2-layer BERT (vocab 99, hidden 32) with its head, a tokenizer and a run.json."""
    import transformers
    from transformers import BertConfig

    torch.manual_seed(seed)
    labels = {"id2label": {0: "negative", 1: "neutral", 2: "positive"}} if head == "SequenceClassification" else {}
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=64, **labels)
    getattr(transformers, f"BertFor{head}")(cfg).save_pretrained(str(folder))
    make_tokenizer(folder)
    (folder / "run.json").write_text(json.dumps({"task": "sst2", "seed": seed}))
    return folder


@pytest.fixture(scope="module")
def cls_model(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("cls") / "model", "SequenceClassification", seed=1)


@pytest.fixture(scope="module")
def qa_model(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("qa") / "model", "QuestionAnswering", seed=2)


def _first_label(model) -> dict:
    """A stand-in for a task's metrics: the predicted label of TEXTS[0]."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(_first_label.folder))
    with torch.inference_mode():
        return {"label": int(model(**tok(TEXTS[:1], return_tensors="pt")).logits.argmax(-1)[0])}


@pytest.fixture(scope="module")
def cls_fp32(cls_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls_fp32") / "onnx"
    _first_label.folder = cls_model
    return out, export_onnx(str(cls_model), str(out), sample_texts=TEXTS, eval_fn=_first_label)


@pytest.fixture(scope="module")
def qa_int8(qa_model, tmp_path_factory):
    """QA is exported in int8 only: the fp32 path is the classification one, and each
    export costs seconds (the suite stays under 30 s)."""
    out = tmp_path_factory.mktemp("qa_int8") / "onnx"
    return out, export_onnx(str(qa_model), str(out), head="QuestionAnswering", quantize="int8", sample_texts=PAIRS)


def _torch_model(folder: Path, head: str):
    import transformers

    return getattr(transformers, f"AutoModelFor{head}").from_pretrained(str(folder), use_safetensors=True).eval()


def test_fp32_export_writes_the_folder_and_matches_torch(cls_model, cls_fp32):
    out, card = cls_fp32
    for name in ("model.onnx", "config.json", "tokenizer.json", "run.json", "export.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "export.json").read_text()) == card
    assert json.loads((out / "run.json").read_text()) == {"task": "sst2", "seed": 1}
    assert card["parity"]["max_abs_diff"] < 1e-4
    assert card["parity"]["agreement"] == 1.0 and card["parity"]["n"] == len(TEXTS)
    assert [1, 1] in card["parity"]["shapes"] and any(b > 1 for b, _ in card["parity"]["shapes"])
    assert card["exporter"].startswith("torch.onnx.export") and card["opset"] >= 17
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(card["versions"])
    assert card["quantization"] is None and card["missing_weights"] == []
    assert card["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and card["outputs"] == ["logits"]
    assert card["size_bytes"] == (out / "model.onnx").stat().st_size == card["fp32_size_bytes"]
    assert card["parameters"] == sum(p.numel() for p in _torch_model(cls_model, "SequenceClassification").parameters())
    assert card["eval"]["pytorch"] == card["eval"]["onnx"]


def test_onnx_model_matches_torch_on_padded_batches(cls_model, cls_fp32):
    from transformers import AutoTokenizer

    out, _ = cls_fp32
    model = OnnxModel.from_dir(str(out), threads=1)
    torch_model = _torch_model(cls_model, "SequenceClassification")
    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok(TEXTS + ["the " * 40], padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        expected = torch_model(**enc).logits
    got = model(**enc)
    assert isinstance(got.logits, torch.Tensor) and got.logits.dtype == torch.float32
    assert got.logits.shape == expected.shape == (len(TEXTS) + 1, 3)
    assert torch.allclose(got.logits, expected, atol=1e-4)
    from_numpy = model(**{k: v.numpy().astype(np.int32) for k, v in enc.items()}).logits
    assert torch.allclose(from_numpy, got.logits)
    # BERT's defaults for left-out inputs: all-ones mask, type 0
    one = tok(TEXTS[:1], return_tensors="pt")
    assert torch.allclose(model(input_ids=one["input_ids"]).logits, got.logits[:1], atol=1e-5)


def test_onnx_model_looks_like_a_transformers_model(cls_fp32):
    out, card = cls_fp32
    model = OnnxModel.from_dir(str(out), threads=1)
    assert model.eval() is model
    assert model.device == torch.device("cpu") == next(model.parameters()).device
    assert model.config.id2label[2] == "positive" and model.config.num_labels == 3
    assert model.num_parameters() == card["parameters"]
    output = model(input_ids=torch.tensor([[2, 5, 3]]))
    assert getattr(output, "hidden_states", None) is None and output["logits"] is output.logits
    with pytest.raises(TypeError, match="labels"):
        model(input_ids=torch.tensor([[2, 5, 3]]), labels=torch.tensor([1]))
    with pytest.raises(TypeError, match="integers"):
        model(input_ids=np.array([[2.0, 5.0]]))


def test_graph_axes_are_dynamic(cls_fp32):
    out, _ = cls_fp32
    model = OnnxModel.from_dir(str(out), threads=1)
    for i in model.session.get_inputs():
        assert all(isinstance(d, str) for d in i.shape), (i.name, i.shape)
    for b, t in [(1, 1), (5, 64), (3, 17)]:
        ids = torch.randint(0, 99, (b, t))
        assert model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.shape == (b, 3)


def test_int8_qa_export_is_quantized_smaller_and_agrees(qa_model, qa_int8):
    import onnx
    from transformers import AutoTokenizer

    out, card = qa_int8
    assert card["head"] == "QuestionAnswering" and card["outputs"] == ["start_logits", "end_logits"]
    assert card["quantization"]["weight_type"] == "QInt8" and card["quantization"]["per_channel"] is card["quantization"]["reduce_range"] is True
    assert card["quantization"]["op_types"] == ["MatMul", "Gather"]
    assert json.loads((out / "export.json").read_text())["quantization"] == card["quantization"]
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} <= ops
    assert card["size_bytes"] < card["fp32_size_bytes"]
    assert 0 < card["parity"]["max_abs_diff"] < 0.05
    assert card["parity"]["agreement"] == 1.0 and card["parity"]["n"] == len(PAIRS)
    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok([q for q, _ in PAIRS], [c for _, c in PAIRS], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = _torch_model(qa_model, "QuestionAnswering")(**enc)
    got = OnnxModel.from_dir(str(out), threads=1)(**enc)
    assert not hasattr(got, "logits")
    for name in ("start_logits", "end_logits"):
        assert getattr(got, name).shape == enc["input_ids"].shape
        assert torch.allclose(getattr(got, name), getattr(expected, name), atol=0.05)
        assert not torch.equal(getattr(got, name), getattr(expected, name))  # it is quantized


def test_unsupported_head_quantization_and_folder_fail_clearly(cls_model, tmp_path):
    with pytest.raises(ValueError, match="TokenClassification.*supported: SequenceClassification, QuestionAnswering"):
        export_onnx(str(cls_model), str(tmp_path / "x"), head="TokenClassification")
    with pytest.raises(ValueError, match="int4"):
        export_onnx(str(cls_model), str(tmp_path / "x"), quantize="int4")
    with pytest.raises(ValueError, match="model folder itself"):
        export_onnx(str(cls_model), str(cls_model))
    with pytest.raises(FileNotFoundError, match="not an exported ONNX folder"):
        OnnxModel.from_dir(str(cls_model))
    assert not (tmp_path / "x").exists()


def test_is_onnx_dir(cls_model, cls_fp32, tmp_path):
    assert is_onnx_dir(cls_fp32[0]) and is_onnx_dir(str(cls_fp32[0]))
    assert not is_onnx_dir(cls_model) and not is_onnx_dir(tmp_path / "missing")


def test_max_abs_diff_ignores_padding_and_flags_nan():
    a = torch.zeros(2, 3, 4)
    b = a.clone()
    b[1, 2] = 7.0  # a padded position
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert max_abs_diff((a,), (b,), mask) == 0.0
    assert max_abs_diff((a,), (b,)) == 7.0
    b[0, 0, 0] = float("nan")
    assert max_abs_diff((a,), (b,), mask) == math.inf


def test_random_inputs_pad_on_the_tokenizer_side():
    right = random_inputs(("input_ids", "attention_mask"), vocab_size=50, max_len=20)
    left = random_inputs(("input_ids", "attention_mask"), vocab_size=50, max_len=20, padding_side="left")
    assert all(x["input_ids"].shape[1] <= 20 and int(x["input_ids"].max()) < 50 for x in right)
    batch_r, batch_l = right[2]["attention_mask"], left[2]["attention_mask"]  # (2, 20)
    assert batch_r[0].all() and batch_r[1, -1] == 0 and batch_r[1, 0] == 1
    assert batch_l[1, 0] == 0 and batch_l[1, -1] == 1
    assert set(right[0]) == {"input_ids", "attention_mask"}
    assert set(HEADS) >= {"SequenceClassification", "QuestionAnswering"}
