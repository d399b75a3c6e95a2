"""Masked-LM distillation (``mlm`` kind) and TinyBERT general distillation
(``general`` kind), on tiny BERTs built in memory and a synthetic corpus."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from conftest import FILLER, NEGATIVE, POSITIVE, make_bare_bert, make_sentences, make_tiny_bert, write_tsv

from hub.cli import main
from hub.data import DataSource
from hub.distill import DistillConfig, DistillTrainer, TrainConfig, distill
from hub.kinds import get_kind
from hub.kinds.mlm import EVAL_MASK_SEED, MASK_CHUNK, static_masks
from hub.models import UntrainedHeadError, build_student, load_model, load_tokenizer, parse_student
from hub.tasks import get_task

MAX_LENGTH = 24
FAST = ["--max-length", str(MAX_LENGTH), "--batch-size", "16", "--learning-rate", "3e-3"]
WORDS = FILLER + POSITIVE + NEGATIVE


def _lines(n: int, seed: int) -> str:
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(n)) + "\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A --data-dir in the mlm/general layout (wikitext-2/valid.txt trains, test.txt
    scores) plus sst2 tables, and a bare BERT (no heads, like minilm-l6)."""
    root = tmp_path_factory.mktemp("mlm")
    (root / "data" / "wikitext-2").mkdir(parents=True)
    (root / "data" / "wikitext-2" / "valid.txt").write_text(_lines(96, 1))
    (root / "data" / "wikitext-2" / "test.txt").write_text("\n" + _lines(30, 2))
    write_tsv(root / "data" / "sst2" / "train.tsv", make_sentences(96, seed=1))
    write_tsv(root / "data" / "sst2" / "validation.tsv", make_sentences(32, seed=2))
    make_bare_bert(root / "bare")
    return root


@pytest.fixture(scope="module")
def mlm_teacher(corpus):
    """An MLM teacher fine-tuned from the bare BERT through the CLI (a fresh MLM head)."""
    out = corpus / "teacher"
    assert main(["finetune", "--task", "mlm", "--model", str(corpus / "bare"), "--data-dir", str(corpus / "data"),
                 "--output-dir", str(out), "--epochs", "2", *FAST]) == 0
    return out


def _data(corpus, **kw):
    task = get_task("mlm")
    return task, get_kind(task).load_data(task, DataSource(data_dir=str(corpus / "data")), **kw)


# ---------------------------------------------------------------- masking


def test_masking_statistics_and_determinism(corpus):
    tok = load_tokenizer(str(corpus / "bare"))
    ids = torch.randint(5, len(tok), (300, 64))  # ordinary word ids
    ids[:, 0], ids[:, -1], ids[:, 30] = tok.cls_token_id, tok.sep_token_id, tok.sep_token_id
    masked, labels = static_masks(ids, tok, seed=7)
    chosen = labels != -100
    assert 0.13 < chosen.float().mean() < 0.17  # BERT's 15%
    assert not chosen[:, [0, 30, 63]].any()  # [CLS] and [SEP] (document separators) are never chosen
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(masked[~chosen], ids[~chosen])
    as_mask = (masked[chosen] == tok.mask_token_id).float().mean()
    kept = (masked[chosen] == ids[chosen]).float().mean()
    assert 0.75 < as_mask < 0.85 and 0.06 < kept < 0.14  # 80% [MASK], 10% unchanged (10% random)
    again = static_masks(ids, tok, seed=7)
    assert torch.equal(again[0], masked) and torch.equal(again[1], labels)
    assert not torch.equal(static_masks(ids, tok, seed=8)[1], labels)
    # a block's mask does not depend on how many blocks are masked with it
    n = MASK_CHUNK + 5
    prefix = static_masks(ids[:n], tok, seed=7)
    assert torch.equal(prefix[0], masked[:n]) and torch.equal(prefix[1], labels[:n])


def test_text_data_blocks_and_fixed_eval_masks(corpus):
    task, data = _data(corpus, max_eval=3)
    tok = load_tokenizer(str(corpus / "bare"))
    ids, _ = data.block_ids("eval", tok, MAX_LENGTH)
    assert ids.shape == (3, MAX_LENGTH) and data.eval_size == 3
    assert (ids[:, 0] == tok.cls_token_id).all() and (ids[:, -1] == tok.sep_token_id).all()
    masked, labels = data.masked("eval", tok, MAX_LENGTH)
    assert torch.equal(labels, static_masks(ids, tok, EVAL_MASK_SEED)[1])
    _, full = _data(corpus)
    assert torch.equal(full.masked("eval", tok, MAX_LENGTH)[0][:3], masked)  # same masks, whatever the eval size
    train = get_kind(task).encode_train(tok, full, MAX_LENGTH)
    assert full.source["train_tokens"] == full.source["train_blocks"] * (MAX_LENGTH - 2) > 0
    assert full.source["train_corpus_tokens"] >= full.source["train_tokens"]  # the tail that fills no block
    assert set(train.column_names) >= {"input_ids", "attention_mask", "labels", "idx", "length"}


def test_plain_text_data_errors(corpus):
    from hub.data import DataError

    task = get_task("mlm")
    with pytest.raises(DataError, match="label-column"):
        get_kind(task).load_data(task, DataSource(data_dir=str(corpus / "data"), label_column="label"))
    with pytest.raises(DataError, match="at least 1 block"):
        get_kind(task).load_data(task, DataSource(data_dir=str(corpus / "data")), max_train=0)


# ---------------------------------------------------------------- fine-tuning and the guard


def test_finetune_trains_a_tied_mlm_head(mlm_teacher):
    model, trained = load_model(str(mlm_teacher), get_task("mlm"))
    assert trained and type(model).__name__ == "BertForMaskedLM"
    head = model.cls.predictions
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight  # tied to the word embeddings
    assert head.bias.abs().sum() > 0  # initialised to zeros: moved by training
    assert not torch.allclose(head.transform.LayerNorm.weight, torch.ones_like(head.transform.LayerNorm.weight))
    card = json.loads((mlm_teacher / "run.json").read_text())
    assert card["status"] == "finished" and card["data"]["train_tokens"] > 0
    assert set(card["eval"]["model"]) >= {"top1_accuracy", "top5_accuracy", "perplexity"}


def test_guard_refuses_a_bare_bert_as_mlm_teacher(corpus):
    task, data = _data(corpus)
    with pytest.raises(UntrainedHeadError, match="no trained MaskedLM head"):
        distill(task, str(corpus / "bare"), parse_student("teacher-layers:1"), data, str(corpus / "refused"),
                TrainConfig(max_length=MAX_LENGTH))
    assert not (corpus / "refused").exists()


def test_teacher_layers_copy_the_mlm_head(mlm_teacher):
    task = get_task("mlm")
    teacher, _ = load_model(str(mlm_teacher), task)
    student, layer_map = build_student(parse_student("teacher-layers:1"), teacher, task)
    assert layer_map == [2]
    assert torch.equal(student.cls.predictions.transform.dense.weight, teacher.cls.predictions.transform.dense.weight)
    assert torch.equal(student.cls.predictions.bias, teacher.cls.predictions.bias)
    assert student.cls.predictions.decoder.weight is student.bert.embeddings.word_embeddings.weight


# ---------------------------------------------------------------- distillation


def test_mlm_distill_both_stages_with_static_masks(corpus, mlm_teacher, monkeypatch):
    seen: dict[int, list] = {}
    original = DistillTrainer.compute_loss

    def spy(self, model, inputs, *args, **kwargs):  # what the student sees, by block index, per stage and epoch
        for i, row in zip(inputs["idx"].tolist(), inputs["input_ids"].tolist()):
            seen.setdefault(i, []).append(row)
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(DistillTrainer, "compute_loss", spy)
    task, data = _data(corpus)
    card = distill(task, str(mlm_teacher), parse_student("teacher-layers:1"), data, str(corpus / "student"),
                   TrainConfig(epochs=2, batch_size=16, learning_rate=1e-3, max_length=MAX_LENGTH),
                   DistillConfig(kl_positions="all"))
    assert card["status"] == "finished" and card["stages"] == ["intermediate", "prediction"]
    assert card["kl_positions"] == "all"
    assert {"top1_accuracy", "top5_accuracy", "perplexity"} <= set(card["eval"]["student"])
    assert card["eval"]["teacher"]["eval_masked_tokens"] == card["eval"]["student"]["eval_masked_tokens"] > 0
    assert all(len(rows) == 4 for rows in seen.values())  # 2 stages x 2 epochs
    assert all(row == rows[0] for rows in seen.values() for row in rows)  # the same masked input every time
    mask_id = load_tokenizer(str(mlm_teacher)).mask_token_id
    assert any(mask_id in rows[0] for rows in seen.values())


def test_kl_positions_all_is_refused_for_classification(tiny_teacher_dir, tiny_data_dir, tmp_path):
    task = get_task("sst2")
    data = get_kind(task).load_data(task, DataSource(data_dir=str(tiny_data_dir)))
    with pytest.raises(ValueError, match="kl-positions all does not apply"):
        distill(task, str(tiny_teacher_dir), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                TrainConfig(max_steps=1), DistillConfig(kl_positions="all"))


def test_evaluate_cli_json(corpus, mlm_teacher, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--task", "mlm", "--model", str(mlm_teacher), "--data-dir", str(corpus / "data"),
                 "--max-eval-samples", "4"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_length"] == MAX_LENGTH and out["eval_size"] == 4  # the training length, from the run card
    assert 0 <= out["top1_accuracy"] <= out["top5_accuracy"] <= 1
    assert 1 < out["perplexity"] < 10 * len(load_tokenizer(str(mlm_teacher)))


# ---------------------------------------------------------------- general distillation


def test_general_distill_then_sst2_from_the_general_student(corpus, capsys):
    general = corpus / "general"
    args = ["distill", "--task", "general", "--teacher", str(corpus / "bare"), "--data-dir", str(corpus / "data"),
            "--output-dir", str(general), "--student", "custom", "--student-layers", "1", "--student-hidden", "16",
            "--student-heads", "2", *FAST]
    assert main([*args, "--stages", "prediction"]) == 2  # no prediction layer to match
    assert "runs only the intermediate stage" in capsys.readouterr().err
    assert main(args) == 0  # a bare teacher: no head needed; stages default to the kind's (intermediate)
    card = json.loads((general / "run.json").read_text())
    assert card["stages"] == ["intermediate"] and card["projection"] is True
    assert card["data"]["train_tokens"] > 0 and card["data"]["train_blocks"] > 0
    after, before = card["eval"]["student"], card["eval"]["student_initial"]
    assert after["hidden_mse"] < before["hidden_mse"] and card["eval"]["retention"] is None
    config = json.loads((general / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]  # a bare encoder, no head

    make_tiny_bert(corpus / "sst2-teacher")
    task = get_task("sst2")
    _, trained = load_model(str(general), task, num_labels=2)
    assert not trained  # a fresh classification head on the general encoder
    assert main(["distill", "--task", "sst2", "--teacher", str(corpus / "sst2-teacher"), "--student", str(general),
                 "--data-dir", str(corpus / "data"), "--output-dir", str(corpus / "sst2-student"), "--max-steps", "3",
                 *FAST]) == 0
    s_card = json.loads((corpus / "sst2-student" / "run.json").read_text())
    assert s_card["status"] == "finished" and s_card["student"]["hidden"] == 16 and "accuracy" in s_card["eval"]["student"]


# ---------------------------------------------------------------- the fill-mask demo


def test_fill_mask_compare(corpus, mlm_teacher):
    from hub.inference import load_predictor

    task = get_task("mlm")
    kind = get_kind(task)
    a = load_predictor(str(mlm_teacher), task)
    b = kind.predictor(build_student(parse_student("teacher-layers:1"), a.model, task)[0], a.tokenizer, task)
    p = a.predict("the movie was [MASK] and [MASK]")
    assert [m["mask"] for m in p["masks"]] == [1, 2] and p["latency_ms"] > 0
    probs = [t["probability"] for t in p["masks"][0]["tokens"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    out = kind.compare(a, b, "the [MASK] was great")
    assert len(out["masks"]) == 1 and len(out["masks"][0]["a"]) == len(out["masks"][0]["b"]) == 5
    assert 0 <= out["masks"][0]["overlap"] <= 1 and out["masks"][0]["kl"] >= 0
    same = kind.compare(a, a, "the [MASK] was great")
    assert same["agree"] and same["mean_overlap"] == 1.0 and abs(same["mean_kl"]) < 1e-6
    with pytest.raises(ValueError, match="has no"):
        a.predict("no mask in this text")
    with pytest.raises(ValueError, match="at most 5"):
        a.predict(" ".join(["[MASK]"] * 6))


def test_mlm_distill_with_a_topk_teacher_cache(corpus, mlm_teacher, tmp_path):
    """Static masks make the teacher's input the same every epoch, so its top-k
    logits can be cached; the KD term then covers every real token (kl_positions all)."""
    task, data = _data(corpus)
    card = distill(task, str(mlm_teacher), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                   TrainConfig(batch_size=16, learning_rate=1e-3, max_length=MAX_LENGTH, max_steps=2),
                   DistillConfig(stages=("prediction",), kl_positions="all", logit_cache_topk=4))
    assert card["status"] == "finished" and card["logit_cache_topk"] == 4
    lc = card["logit_cache"]
    train = get_kind(task).encode_train(load_tokenizer(str(mlm_teacher)), data, MAX_LENGTH)
    assert lc["k"] == 4 and lc["tokens"] == sum(train["length"]) > 0
    assert math.isfinite(card["eval"]["student"]["perplexity"])
