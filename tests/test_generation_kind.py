"""The ``generation`` task kind (hub/kinds/generation.py) end to end on tiny GPT-2
and Llama models built from configs, with an in-memory word-level tokenizer:
students made of teacher layers, the adaptor against the model's own loss,
sliding-window perplexity against :func:`hub.lm_eval.perplexity`, fine-tuning and
distillation through hub.distill (both stages, prediction only, each
divergence), the CLI with ``--block-size``, the benchmark's generation columns
and the demo's side-by-side comparison.

The text is synthetic: sentences of a small grammar (subject, verb, place), so
a few steps of training lower the perplexity measurably."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from hub.data import DataError, DataSource
from hub.kinds import get_kind
from hub.kinds.generation import LMCollator, stride_windows
from hub.lm_eval import perplexity
from hub.losses import prediction_loss
from hub.tasks import get_task
from test_textdata import word_tokenizer

TASK = get_task("generation")
KIND = get_kind(TASK)
SUBJECTS = ["the cat", "a dog", "the big dog", "a small cat", "it"]
VERBS = ["sat", "ran"]
PLACES = ["on the mat", "under the log", "on a red mat", "under a blue log"]
BLOCK = 16


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)} and then it was "
            f"{rng.choice(['big', 'small'])}" for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and suffer least from a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A --data-dir in the task's layout: wikitext-2/valid.txt (train), test.txt (eval)."""
    root = tmp_path_factory.mktemp("text")
    (root / "wikitext-2").mkdir()
    (root / "wikitext-2" / "valid.txt").write_text("\n".join(sentences(120, 1)) + "\n")
    (root / "wikitext-2" / "test.txt").write_text("\n \n".join(sentences(30, 2)) + "\n")
    return root


def tiny_lm(arch: str, vocab: int, layers: int = 4, seed: int = 0, eos: int = 2, pad: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if arch == "gpt2":
        cfg = GPT2Config(vocab_size=vocab, n_layer=layers, n_embd=32, n_head=2, n_positions=64,
                         bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
        return GPT2LMHeadModel(cfg)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=eos, eos_token_id=eos, pad_token_id=pad)
    return LlamaForCausalLM(cfg)


def save_lm(folder: Path, arch: str, layers: int = 4, extra_vocab: int = 0, seed: int = 0) -> Path:
    tok = word_tokenizer()
    tiny_lm(arch, len(tok) + extra_vocab, layers, seed, tok.eos_token_id, tok.pad_token_id).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    return {arch: save_lm(root / arch, arch) for arch in ("gpt2", "llama")}


def load(data_dir: Path, max_train=None, max_eval=None, need_train=True, reference=None):
    return KIND.load_data(TASK, DataSource(data_dir=str(data_dir)), max_train, max_eval, need_train, reference)


def cfg(**kw):
    from hub.config import TrainConfig

    return TrainConfig(**{"max_length": BLOCK, "batch_size": 8, "learning_rate": 3e-3, "max_steps": 4, **kw})


def teacher(folder: Path):
    from hub.models import load_model

    model, trained = load_model(str(folder), TASK)
    assert trained
    return model.eval()


# ---------------------------------------------------------------- students


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_teacher_layers_copies_the_mapped_layers(teachers, arch):
    from hub.models import build_student, layer_list, parse_student

    t = teacher(teachers[arch])
    student, layer_map = build_student(parse_student("teacher-layers:2"), t, TASK)
    assert layer_map == [2, 4] and student.config.num_hidden_layers == 2
    prefix = layer_list(t, 4)
    assert prefix == {"gpt2": "transformer.h", "llama": "model.layers"}[arch]
    t_sd, s_sd = t.state_dict(), student.state_dict()
    for i, t_layer in enumerate(layer_map):
        keys = [k for k in s_sd if k.startswith(f"{prefix}.{i}.")]
        assert keys
        for k in keys:
            src = k.replace(f"{prefix}.{i}.", f"{prefix}.{t_layer - 1}.", 1)
            assert torch.equal(s_sd[k], t_sd[src]), k
    assert torch.equal(student.get_input_embeddings().weight, t.get_input_embeddings().weight)
    assert torch.equal(student.get_output_embeddings().weight, t.get_output_embeddings().weight)
    # not just layer 0 and 1 of the teacher: the copy really followed the map
    k0 = next(k for k in s_sd if k.startswith(f"{prefix}.0.") and s_sd[k].dim() == 2)
    assert not torch.equal(s_sd[k0], t_sd[k0])


def test_custom_student_shape_trains(teachers, data_dir, tmp_path):
    from hub.config import DistillConfig
    from hub.distill import distill
    from hub.models import parse_student

    spec = parse_student("custom", layers=2, hidden=16, heads=2, ffn=24)
    card = distill(TASK, str(teachers["llama"]), spec, load(data_dir, max_eval=4), str(tmp_path / "s"),
                   cfg(), DistillConfig(stages=("prediction",)))
    assert card["status"] == "finished"
    assert card["student"] == {"spec": "custom-2l-16", "layers": 2, "hidden": 16, "heads": 2, "ffn": 24}
    saved = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (saved["hidden_size"], saved["num_key_value_heads"], saved["intermediate_size"]) == (16, 2, 24)
    assert math.isfinite(card["eval"]["student"]["perplexity"])


def test_vocabulary_mismatch_is_refused_before_training(teachers, data_dir, tmp_path):
    from hub.config import DistillConfig
    from hub.distill import distill
    from hub.models import parse_student

    other = save_lm(tmp_path / "other", "gpt2", layers=2, extra_vocab=3)
    vocab = len(word_tokenizer())
    with pytest.raises(ValueError, match=rf"\({vocab + 3}\).*\({vocab}\)"):
        distill(TASK, str(teachers["gpt2"]), parse_student(str(other)), load(data_dir), str(tmp_path / "out"),
                cfg(), DistillConfig(stages=("prediction",)))
    assert not (tmp_path / "out").exists()
    # evaluation against a reference model: the kind refuses a model of another vocabulary
    data = load(data_dir, need_train=False, reference=teacher(teachers["gpt2"]))
    with pytest.raises(ValueError, match=rf"\({vocab + 3}\).*\({vocab}\)"):
        KIND.check_teacher(teacher(other), data)


def test_a_classifier_cannot_teach(data_dir):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    clf = GPT2ForSequenceClassification(GPT2Config(vocab_size=30, n_layer=1, n_embd=16, n_head=2))
    with pytest.raises(ValueError, match="not a causal language model"):
        KIND.check_teacher(clf, load(data_dir))


# ---------------------------------------------------------------- data and encoding


def test_load_data_counts_blocks_and_validates(data_dir, tmp_path):
    tok = word_tokenizer()
    data = load(data_dir, max_train=5, max_eval=3)
    ds = KIND.encode_train(tok, data, BLOCK)
    assert len(ds) == 5 and set(ds["length"]) == {BLOCK} and ds["idx"] == list(range(5))
    assert data.source["train_size"] == 5 and data.source["units"] == "blocks"
    assert data.source["train_file"].endswith("wikitext-2/valid.txt")
    with pytest.raises(DataError, match="label"):
        KIND.load_data(TASK, DataSource(data_dir=str(data_dir), label_column="y"))
    with pytest.raises(DataError, match="blocks"):
        load(data_dir, max_train=0)
    (tmp_path / "t.csv").write_text('body\n"the cat sat"\n"a dog ran"\n')
    with pytest.raises(DataError, match="no column 'text'"):
        KIND.load_data(TASK, DataSource(train_file=str(tmp_path / "t.csv"), eval_file=str(tmp_path / "t.csv")))
    ok = KIND.load_data(TASK, DataSource(train_file=str(tmp_path / "t.csv"), eval_file=str(tmp_path / "t.csv"),
                                         text_column="body"))
    assert ok.train_texts == ["the cat sat", "a dog ran"]
    with pytest.raises(DataError, match="fewer than one block"):
        KIND.encode_train(tok, ok, BLOCK)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_adaptor_gives_the_models_own_loss_and_masks_padding(arch):
    tok = word_tokenizer()
    model = tiny_lm(arch, len(tok), layers=2).eval()
    ids = [tok("the cat sat on the mat and then it ran")["input_ids"], tok("a dog ran")["input_ids"]]
    batch = LMCollator(tok)([{"input_ids": x, "attention_mask": [1] * len(x)} for x in ids])
    assert batch["labels"][1, len(ids[1]):].eq(-100).all()
    targets = KIND.split_targets(batch)
    with torch.no_grad():
        out = model(**batch)
        hf_loss = model(**batch, **targets).loss
    adapted = KIND.adapt(out, batch, targets)
    (logits,), (labels,), mask = adapted["logits"], adapted["labels"], adapted["mask"]
    assert logits.shape == (2, len(ids[0]) - 1, len(tok)) and labels.shape == mask.shape == (2, len(ids[0]) - 1)
    assert int(mask[1].sum()) == len(ids[1]) - 1
    ce = prediction_loss(logits, logits, labels, alpha=1.0, mask=mask)
    assert torch.allclose(ce, hf_loss, atol=1e-5)
    # a teacher identical to the student: the KD term is zero, the mixed loss is alpha * CE
    assert torch.allclose(prediction_loss(logits, logits, labels, alpha=0.5, mask=mask), 0.5 * hf_loss, atol=1e-5)


# ---------------------------------------------------------------- evaluation


@pytest.mark.parametrize("n", [10, 11, 16, 17, 40])
def test_stride_windows_score_every_token_but_the_first_once(n):
    covered = []
    for w in stride_windows(n, 8, 4):
        covered += list(range(w.end - w.scored, w.end))
    assert covered == list(range(1, n))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_evaluate_is_lm_eval_perplexity_with_top1_agreement(teachers, data_dir, arch):
    from hub.models import load_tokenizer

    model, tok = teacher(teachers[arch]), load_tokenizer(str(teachers[arch]))
    data = load(data_dir, max_eval=5, need_train=False)
    result = KIND.evaluate(model, tok, data, max_length=BLOCK, batch_size=3)
    stream = [i for b in data.packed("eval", tok, BLOCK).blocks for i in b]
    ref = perplexity(model, None, stream, max_length=BLOCK, stride=BLOCK // 2)
    assert result["perplexity"] == pytest.approx(ref["perplexity"], rel=1e-5)
    assert result["eval_size"] == ref["n_tokens"] == 5 * BLOCK - 1
    assert result["windows"] == ref["windows"] == len(result["predictions"])
    assert result["eval_blocks"] == 5 and result["stride"] == BLOCK // 2
    assert KIND.agreement(result["predictions"], result["predictions"]) == 1.0
    other = KIND.evaluate(tiny_lm(arch, len(tok), 2, seed=7), tok, data, max_length=BLOCK)
    agree = KIND.agreement(result["predictions"], other["predictions"])
    assert 0.0 <= agree < 1.0
    with pytest.raises(ValueError, match="windows"):
        KIND.agreement(result["predictions"], other["predictions"][:-1])


# ---------------------------------------------------------------- training


def test_finetune_lowers_perplexity(teachers, data_dir, tmp_path):
    from hub.training import finetune

    data = load(data_dir, max_train=40, max_eval=6)
    card = finetune(TASK, str(teachers["gpt2"]), data, str(tmp_path / "ft"), cfg(max_steps=15))
    assert card["status"] == "finished" and card["data"]["train_size"] == 40
    before = KIND.evaluate(teacher(teachers["gpt2"]), word_tokenizer(), data, max_length=BLOCK)["perplexity"]
    assert card["eval"]["model"]["perplexity"] < 0.7 * before
    assert card["eval"]["model"]["max_length"] == BLOCK


@pytest.mark.parametrize("arch,stages,divergence,alpha", [
    ("llama", ("intermediate", "prediction"), "forward", 0.5),
    ("llama", ("prediction",), "reverse", 0.5),
    ("gpt2", ("prediction",), "jsd", 0.0),
    ("gpt2", ("prediction",), "forward", 1.0),  # CE only
])
def test_distill_end_to_end(teachers, data_dir, tmp_path, arch, stages, divergence, alpha):
    from hub.config import DistillConfig
    from hub.distill import distill
    from hub.models import parse_student

    data = load(data_dir, max_train=16, max_eval=4)
    card = distill(TASK, str(teachers[arch]), parse_student("teacher-layers:2"), data, str(tmp_path / "s"),
                   cfg(), DistillConfig(stages=stages, divergence=divergence, alpha=alpha))
    assert card["status"] == "finished" and card["layer_map"] == [2, 4]
    ev = card["eval"]
    assert math.isfinite(ev["student"]["perplexity"]) and ev["headline"] == "perplexity"
    assert ev["retention"] == pytest.approx(ev["teacher"]["perplexity"] / ev["student"]["perplexity"])
    loss = card.get("losses") or {}
    assert card["divergence"] == divergence and card["alpha"] == alpha and isinstance(loss, dict)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "s"), use_safetensors=True)
    assert reloaded.config.num_hidden_layers == 2


def test_cli_block_size_and_sample_counts(teachers, data_dir, tmp_path, capsys, hub_home):
    from hub.cli import main

    out = tmp_path / "cli"
    rc = main(["distill", "--task", "generation", "--teacher", str(teachers["gpt2"]), "--student", "teacher-layers:2",
               "--data-dir", str(data_dir), "--output-dir", str(out), "--block-size", "20",
               "--max-train-samples", "8", "--max-eval-samples", "3", "--max-steps", "2", "--batch-size", "4",
               "--stages", "prediction", "--divergence", "reverse"])
    assert rc == 0
    card = json.loads((out / "run.json").read_text())
    assert card["train"]["max_length"] == 20 and card["data"]["train_size"] == 8 and card["data"]["eval_size"] == 3
    assert card["eval"]["student"]["eval_size"] == 3 * 20 - 1
    capsys.readouterr()
    assert main(["evaluate", "--task", "generation", "--model", str(out), "--data-dir", str(data_dir),
                 "--max-eval-samples", "3"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["max_length"] == 20  # the trained block size
    assert result["perplexity"] == pytest.approx(card["eval"]["student"]["perplexity"], rel=1e-5)


# ---------------------------------------------------------------- top-k teacher-logit cache


def varied_blocks(tok):
    """Training examples of different lengths (the cache sorts them by length and
    trims each to its own), encoded like ``encode_train``."""
    from datasets import Dataset

    texts = ["the cat sat on the mat and then it ran", "a dog ran", "the big dog sat under a blue log", "it ran",
             "a small cat sat on a red mat and then it was big"]
    ids = [tok(t)["input_ids"] for t in texts]
    return Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids],
                              "idx": list(range(len(ids))), "length": [len(x) for x in ids]})


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_topk_cache_is_torch_topk_of_the_teacher_at_each_real_token(teachers, arch):
    from hub.teacher_cache import teacher_topk_for

    t, tok, k = teacher(teachers[arch]), word_tokenizer(), 5
    ds = varied_blocks(tok)
    events = []
    cache = teacher_topk_for(t, ds, LMCollator(tok), KIND, k, batch_size=2, progress=events.append)
    assert [e["step"] for e in events] == [2, 4, 5] and {e["stage"] for e in events} == {"teacher-logits"}
    assert cache.tokens == sum(ds["length"]) and cache.nbytes == cache.tokens * k * (2 + 4)
    for row in ds:
        with torch.no_grad():
            logits = t(input_ids=torch.tensor([row["input_ids"]])).logits[0]  # (n, V), alone: no padding
        values, indices = cache.rows[row["idx"]]
        assert values.dtype == torch.float16 and indices.dtype == torch.int32 and values.shape == (row["length"], k)
        ref = torch.topk(logits, k, dim=-1)
        assert torch.equal(indices.long(), ref.indices)
        assert torch.allclose(values.float(), ref.values, atol=2e-3, rtol=1e-3)  # fp16 rounding
    # a lookup pads back to the batch's length with zeros
    v, ix = cache.get([3, 0], 12, "cpu")
    assert v.shape == ix.shape == (2, 12, k) and ix.dtype == torch.long
    assert v[0, ds[3]["length"]:].eq(0).all() and torch.equal(ix[1, : ds[0]["length"]], cache.rows[0][1].long())


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 2.0)])
def test_topk_loss_with_k_equal_to_the_vocabulary_is_the_dense_loss(teachers, alpha, temperature):
    from hub.distill import _Logits
    from hub.teacher_cache import TopKLogitCache
    from hub.losses import sparse_prediction_loss, topk_logits

    t, tok = teacher(teachers["llama"]), word_tokenizer()
    student = tiny_lm("llama", len(tok), layers=2, seed=3).eval()
    ds = varied_blocks(tok)
    batch = LMCollator(tok)([ds[i] for i in range(len(ds))])
    idx, lengths = batch.pop("idx").tolist(), batch.pop("length").tolist()
    targets = KIND.split_targets(batch)
    with torch.no_grad():
        logits_T, logits_S = t(**batch).logits, student(**batch).logits
    cache = TopKLogitCache(len(tok))
    cache.put(idx, *topk_logits(logits_T, len(tok)), lengths)
    values, indices = cache.get(idx, batch["input_ids"].shape[1], "cpu")
    out_S = KIND.adapt(_Logits([logits_S]), batch, targets)
    dense = prediction_loss(out_S["logits"][0], KIND.adapt(_Logits([logits_T]), batch, targets)["logits"][0],
                            out_S["labels"][0], temperature, alpha, out_S["mask"])
    sparse = sparse_prediction_loss(out_S["logits"][0], KIND.adapt(_Logits([values]), batch, targets)["logits"][0],
                                    KIND.adapt(_Logits([indices]), batch, targets)["logits"][0],
                                    out_S["labels"][0], temperature, alpha, out_S["mask"])
    assert float(sparse) == pytest.approx(float(dense), rel=1e-3)  # fp16 values
    # a small k is the documented approximation: not the dense loss
    small = TopKLogitCache(3)
    small.put(idx, *topk_logits(logits_T, 3), lengths)
    v3, i3 = small.get(idx, batch["input_ids"].shape[1], "cpu")
    approx = sparse_prediction_loss(logits_S[:, :-1], v3[:, :-1], i3[:, :-1], out_S["labels"][0], temperature,
                                    alpha, out_S["mask"])
    assert abs(float(approx) - float(dense)) > 1e-3


@pytest.mark.parametrize("k", [0, 6])
def test_distill_with_a_topk_cache_runs_no_teacher_in_training_steps(teachers, data_dir, tmp_path, monkeypatch, k):
    import hub.distill as distill_mod
    from hub.config import DistillConfig
    from hub.models import parse_student

    calls = {"teacher": 0}
    real_load = distill_mod.load_model

    def counted_load(*args, **kwargs):
        model, trained = real_load(*args, **kwargs)
        model.register_forward_hook(lambda *_: calls.__setitem__("teacher", calls["teacher"] + 1))
        return model, trained

    monkeypatch.setattr(distill_mod, "load_model", counted_load)
    at_step: dict[str, list] = {"teacher-logits": [], "prediction": []}

    def progress(event):
        if event["stage"] in at_step:
            at_step[event["stage"]].append(calls["teacher"])

    data = load(data_dir, max_train=12, max_eval=3)
    card = distill_mod.distill(TASK, str(teachers["gpt2"]), parse_student("teacher-layers:2"), data,
                               str(tmp_path / "s"), cfg(batch_size=4), DistillConfig(stages=("prediction",),
                               logit_cache_topk=k), progress=progress)
    assert card["status"] == "finished" and len(at_step["prediction"]) == 4
    steps = at_step["prediction"]
    saved = json.loads((tmp_path / "s" / "run.json").read_text())
    assert saved["logit_cache_topk"] == k
    if k == 0:  # the teacher runs in every step
        assert not at_step["teacher-logits"] and steps[-1] - steps[0] == len(steps) - 1
        assert "logit_cache" not in saved
        return
    # three batches of 4 blocks cached once, then no teacher call in any step
    assert at_step["teacher-logits"][-1] - at_step["teacher-logits"][0] == 3
    assert steps == [at_step["teacher-logits"][-1]] * len(steps)
    lc = saved["logit_cache"]
    assert lc["k"] == k and lc["tokens"] == 12 * BLOCK and lc["values"] == "float16" and lc["time_s"] >= 0
    assert lc["memory_mb"] == round(12 * BLOCK * k * 6 / 2**20, 2)
    assert math.isfinite(card["eval"]["student"]["perplexity"])


def test_a_bad_topk_is_refused(teachers, data_dir, tmp_path, capsys):
    from hub.cli import main
    from hub.config import DistillConfig
    from hub.distill import check_distill_config, distill
    from hub.models import parse_student

    for bad in (-1, 5000, 2.5):
        with pytest.raises(ValueError, match="logit_cache_topk must be"):
            DistillConfig(logit_cache_topk=bad)
    vocab = len(word_tokenizer())
    with pytest.raises(ValueError, match=f"exceeds the teacher's vocabulary of {vocab}"):
        distill(TASK, str(teachers["gpt2"]), parse_student("teacher-layers:2"), load(data_dir), str(tmp_path / "o"),
                cfg(), DistillConfig(stages=("prediction",), logit_cache_topk=vocab + 1))
    assert not (tmp_path / "o").exists()
    for divergence in ("reverse", "jsd"):
        with pytest.raises(ValueError, match="needs --divergence forward"):
            check_distill_config(KIND, TASK, DistillConfig(divergence=divergence, logit_cache_topk=4))
    sst2 = get_task("sst2")
    with pytest.raises(ValueError, match="does not apply to task 'sst2'.*cached in full"):
        check_distill_config(get_kind(sst2), sst2, DistillConfig(logit_cache_topk=4))
    rc = main(["distill", "--task", "generation", "--teacher", str(teachers["gpt2"]), "--student", "teacher-layers:2",
               "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "cli"), "--logit-cache-topk", "2000"])
    assert rc == 2 and "logit_cache_topk must be between 0 and 1024" in capsys.readouterr().err


def test_smollm2_alias_resolves_into_the_hub_cache(monkeypatch, hub_home, teachers):
    from hub import gguf_teacher
    from hub.models import resolve_model_ref

    seen = []
    monkeypatch.setattr(gguf_teacher, "resolve_alias", lambda root: seen.append(Path(root)) or str(teachers["llama"]))
    assert resolve_model_ref("smollm2-135m") == str(teachers["llama"].resolve())
    assert seen == [hub_home.resolve() / "cache"]


# ---------------------------------------------------------------- benchmark and demo


def test_benchmark_reports_perplexity_and_generation_speed(teachers, data_dir, tmp_path, monkeypatch):
    from hub.benchmark import Protocol, run_benchmark
    from hub.config import DistillConfig
    from hub.distill import distill
    from hub.kinds import generation
    from hub.models import parse_student

    monkeypatch.setattr(generation, "NEW_TOKENS", 8)  # timed generations of 8 tokens: enough to measure, quick

    data = load(data_dir, max_train=8, max_eval=4)
    distill(TASK, str(teachers["llama"]), parse_student("teacher-layers:2"), data, str(tmp_path / "s"),
            cfg(max_steps=2, max_length=24), DistillConfig(stages=("prediction",)))
    protocol = Protocol(name="quick", warmup=1, min_calls=3, min_seconds=0.01, throughput_seconds=0.05, threads=1,
                        memory=False)
    bench_data = load(data_dir, max_eval=4, need_train=False, reference=teacher(teachers["llama"]))
    rows = run_benchmark(TASK, [str(tmp_path / "s")], teacher=str(teachers["llama"]), data=bench_data,
                         protocol=protocol)
    t_row, s_row = rows
    for row in rows:
        for key in ("perplexity", "ttft_ms", "tokens_per_s", "speedup_tokens_per_s", "latency_p50_ms",
                    "throughput_per_s", "eval_size"):
            assert row[key] is not None and row[key] > 0, key
        assert row["max_length"] == 24 and row["gen_calls"] >= 3 and row["gen_new_tokens"] == 8
    assert t_row["eval_size"] == s_row["eval_size"] == 4 * 24 - 1  # the teacher is scored at the student's length
    assert t_row["speedup_tokens_per_s"] == 1.0 and t_row["agreement"] == 1.0
    assert s_row["speedup_tokens_per_s"] == pytest.approx(s_row["tokens_per_s"] / t_row["tokens_per_s"])
    assert s_row["retention"] == pytest.approx(t_row["perplexity"] / s_row["perplexity"])
    assert 0.0 <= s_row["agreement"] <= 1.0
    # int8 rows: dynamic quantisation of the Linear layers applies to a causal LM as to an encoder
    rows = run_benchmark(TASK, [str(tmp_path / "s")], teacher=str(teachers["llama"]), data=bench_data,
                         protocol=protocol, quantize="int8")
    int8 = [r for r in rows if r["quantization"] == "int8"]
    assert len(int8) == 2 and all(r["perplexity"] > 0 and r["tokens_per_s"] > 0 for r in int8)
    assert all(r["param_bytes"] < f["param_bytes"] for r, f in zip(int8, [t_row, s_row]))


def test_compare_streams_and_returns_both_continuations(teachers):
    from hub.inference import load_predictor

    a, b = load_predictor(str(teachers["gpt2"]), TASK), load_predictor(str(teachers["llama"]), TASK)
    result = KIND.compare(a, a, "the cat sat", max_new_tokens=5)
    assert result["a"] == result["b"] and result["same_text"] and result["done"]
    assert result["a_ttft_ms"] > 0 and result["a_tokens"] <= 5
    states = list(KIND.compare_stream(a, b, "the cat sat"))  # default 64 new tokens: capped by GPT-2's 64 positions
    assert states[-1]["done"] and states[-1]["a_tokens"] <= 64 - 3
    alone = a.predict("the cat sat", max_new_tokens=4)
    assert alone["text"] == result["a"][: len(alone["text"])] and alone["ttft_ms"] > 0
    with pytest.raises(ValueError, match="chat template"):
        next(KIND.compare_stream(a, b, "hi", chat_template=True))
