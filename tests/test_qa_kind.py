"""The ``qa`` task kind (hub/kinds/qa.py) end to end on tiny in-memory models:
data loading and validation, windows/targets/adaptor, fine-tuning and
distillation through hub.distill, ``python -m hub evaluate``, the long-context
predictor and the benchmark.

The data is synthetic SQuAD 2.0: a context of filler words holds one colour
word (the answer to "what color is it?") or none (unanswerable). An *oracle*
model built by hand (its logits single out colour words, and CLS when there is
none) gives exact expected scores without training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from hub.data import DataError, DataSource
from hub.kinds import get_kind
from hub.kinds.qa import NEG, QAKind
from hub.kinds.qa_data import QATargets, doc_stride_for
from hub.tasks import get_task

SQUAD = get_task("squad")
KIND = get_kind(SQUAD)
COLORS = ["red", "blue", "green", "pink", "gold"]
FILLER = ["the", "dog", "ran", "to", "park", "and", "then", "home", "a", "big", "tree", "bird", "sat", "on", "mat"]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "color", "is", "it", "?", "."] + COLORS + FILLER
QUESTION = "what color is it?"
MAX_LENGTH = 48


def make_examples(n: int, seed: int, prefix: str, unanswerable: float = 0.3) -> list[dict]:
    """Flat examples: filler words with one colour word inserted, or none."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(6, 14))]
        ex = {"id": f"{prefix}{i}", "title": "t", "question": QUESTION,
              "answers": {"text": [], "answer_start": []}, "is_impossible": True}
        if rng.random() >= unanswerable:
            color = rng.choice(COLORS)
            words.insert(rng.randint(0, len(words)), color)
            start = len(" ".join(words[: words.index(color)])) + (1 if words.index(color) else 0)
            ex.update(answers={"text": [color], "answer_start": [start]}, is_impossible=False)
        ex["context"] = " ".join(words) + " ."
        out.append(ex)
    return out


def write_squad(path: Path, examples: list[dict]) -> Path:
    """A SQuAD 2.0 JSON file, one paragraph per example, one article per title."""
    articles: dict[str, list] = {}
    for ex in examples:
        articles.setdefault(ex["title"], []).append({"context": ex["context"], "qas": [{
            "id": ex["id"], "question": ex["question"], "is_impossible": ex["is_impossible"],
            "answers": [{"text": t, "answer_start": s}
                        for t, s in zip(ex["answers"]["text"], ex["answers"]["answer_start"])],
        }]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}))
    return path


def make_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(str(folder))
    return tok


def _config(layers: int, hidden: int = 32, heads: int = 4):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(WORDS), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                      intermediate_size=hidden * 2, max_position_embeddings=128)


def make_bare(folder: Path, layers: int = 4) -> Path:
    """A headless BERT (like minilm-l6) and its tokenizer."""
    from transformers import BertModel

    torch.manual_seed(0)
    BertModel(_config(layers)).save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


def make_oracle(folder: Path) -> Path:
    """A BertForQuestionAnswering whose start and end logits are 16 on colour
    words, 8 on CLS and 0 elsewhere: every layer is the identity (zero weights,
    residual + LayerNorm), the embedding of a colour word points one way, CLS
    another, every other token a third. So it answers the colour, or "no answer"
    (null score 16 beats the best span 0) when there is none."""
    from transformers import BertForQuestionAnswering

    model = BertForQuestionAnswering(_config(layers=1, hidden=8, heads=2))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0 if "LayerNorm.weight" in name else 0.0)
        emb = model.bert.embeddings.word_embeddings.weight
        emb[:, :2] = torch.tensor([1.0, -1.0])
        for word in COLORS + ["[CLS]"]:
            i = WORDS.index(word)
            emb[i] = 0.0
            emb[i, 2:4] = torch.tensor([1.0, -1.0]) if word != "[CLS]" else 0.0
            emb[i, 4:6] = torch.tensor([1.0, -1.0]) if word == "[CLS]" else 0.0
        model.qa_outputs.weight[:] = torch.tensor([0, 0, 4.0, -4.0, 2.0, -2.0, 0, 0])
    model.save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """--data-dir in the task's layout: 240 training and 60 evaluation questions."""
    root = tmp_path_factory.mktemp("qa_data")
    write_squad(root / "squad" / "xquad-en-train.json", make_examples(240, seed=1, prefix="tr"))
    write_squad(root / "squad" / "dev-subset-v2.0.json", make_examples(60, seed=2, prefix="ev"))
    return root


@pytest.fixture(scope="module")
def data(data_dir):
    return KIND.load_data(SQUAD, DataSource(data_dir=str(data_dir)))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> Path:
    return make_oracle(tmp_path_factory.mktemp("oracle") / "model")


@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory, data):
    """A tiny teacher fine-tuned on the synthetic data and a 2-layer student distilled from it (both stages)."""
    from hub.distill import DistillConfig, TrainConfig, distill
    from hub.training import finetune
    from hub.models import parse_student

    root = tmp_path_factory.mktemp("qa_pair")
    base = make_bare(root / "base")
    finetune(SQUAD, str(base), data, str(root / "teacher"),
             TrainConfig(epochs=2, learning_rate=3e-3, batch_size=16, max_length=MAX_LENGTH))
    distill(SQUAD, str(root / "teacher"), parse_student("teacher-layers:2"), data, str(root / "student"),
            TrainConfig(epochs=1, learning_rate=3e-3, batch_size=16, max_length=MAX_LENGTH), DistillConfig())
    return root / "teacher", root / "student"


# ---------------------------------------------------------------- data


def test_load_data_from_the_task_layout(data):
    assert len(data.train) == 240 and data.eval_size == 60
    assert data.source["train_answerable"] + sum(ex["is_impossible"] for ex in data.train) == 240
    assert data.source["eval_file"].endswith("dev-subset-v2.0.json")
    assert 20 < KIND.chance_level(data) < 50  # share of unanswerable questions, 0-100
    none = sum(ex["is_impossible"] for ex in data.eval)
    assert KIND.chance_level(data) == pytest.approx(100 * none / 60)


def test_load_data_refuses_malformed_input(tmp_path, data_dir):
    good = data_dir / "squad" / "dev-subset-v2.0.json"
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="bad.json: not a valid JSON"):
        KIND.load_data(SQUAD, DataSource(train_file=str(bad), eval_file=str(good)))
    ex = make_examples(3, seed=5, prefix="x", unanswerable=0.0)
    ex[1]["answers"]["answer_start"] = [ex[1]["answers"]["answer_start"][0] + 1]
    shifted = write_squad(tmp_path / "shifted.json", ex)
    with pytest.raises(DataError, match=r"shifted.json: .*question 'x1'.*not at answer_start"):
        KIND.load_data(SQUAD, DataSource(train_file=str(shifted), eval_file=str(good)))
    with pytest.raises(DataError, match="exactly one data source"):
        KIND.load_data(SQUAD, DataSource(data_dir=str(data_dir), eval_file=str(good)))
    with pytest.raises(DataError, match="do not apply"):
        KIND.load_data(SQUAD, DataSource(data_dir=str(data_dir), text_column="question"))
    with pytest.raises(DataError, match="no such file"):
        KIND.load_data(SQUAD, DataSource(data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="no evaluation questions"):
        KIND.load_data(SQUAD, DataSource(data_dir=str(data_dir)), max_eval=0)
    evals = KIND.load_data(SQUAD, DataSource(eval_file=str(good)), need_train=False, max_eval=7)
    assert evals.train == [] and evals.eval_size == 7


def test_hub_rows_go_through_the_same_validation(tmp_path):
    rows = [{"id": "a", "title": "", "context": "the dog ran", "question": "who ran?",
             "answers": {"text": ["dog"], "answer_start": [4]}}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = KIND.load_data(SQUAD, DataSource(eval_file=str(tmp_path / "rows.jsonl")), need_train=False)
    assert data.eval[0]["answers"]["text"] == ["dog"]
    rows[0]["answers"]["answer_start"] = [0]
    (tmp_path / "rows.jsonl").write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(DataError, match="rows.jsonl: row 0.*not at answer_start"):
        KIND.load_data(SQUAD, DataSource(eval_file=str(tmp_path / "rows.jsonl")), need_train=False)


# ---------------------------------------------------------------- encoding and the adaptor


def test_encode_split_targets_and_adapt(tmp_path, data, oracle):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from hub.distill import _Logits
    from hub.teacher_cache import LogitCache, _raw_logits

    tok = AutoTokenizer.from_pretrained(str(oracle))
    ds = KIND.encode_train(tok, data, MAX_LENGTH)
    assert {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions", "context_mask",
            "idx", "length"} <= set(ds.column_names)
    assert len(ds) == 240  # short contexts: one window per question
    row = ds[0]
    sep = row["input_ids"].index(tok.sep_token_id)
    assert row["context_mask"][0] == 1 and row["context_mask"][1 : sep + 1] == [0] * sep  # CLS yes, question no
    assert row["context_mask"][-1] == 0 and sum(row["context_mask"]) == row["length"] - sep - 2 + 1
    for r in ds:  # every target points at an allowed position (CLS for no answer)
        assert r["context_mask"][r["start_positions"]] == 1 and r["context_mask"][r["end_positions"]] == 1

    batch = KIND.collator(tok)([ds[i] for i in range(8)])
    L = batch["input_ids"].shape[1]
    assert batch["context_mask"].shape == (8, L) and batch["start_positions"].shape == (8,)
    assert (batch["context_mask"] <= batch["attention_mask"]).all()  # padding is never context
    idx = batch.pop("idx")
    batch.pop("length")
    targets = KIND.split_targets(batch)
    assert isinstance(targets, QATargets) and set(targets) == {"start_positions", "end_positions"}
    assert "context_mask" not in batch and targets.context_mask.shape == (8, L)

    model = AutoModelForQuestionAnswering.from_pretrained(str(oracle))
    out = model(**batch, **targets)
    assert torch.isfinite(out.loss)  # the fine-tuning loss
    adapted = KIND.adapt(out, batch, targets)
    start, end = adapted["logits"]
    assert start.shape == end.shape == (8, L) and adapted["mask"] is None
    assert adapted["labels"][0] is targets["start_positions"] and adapted["labels"][1].shape == (8,)
    allowed = targets.context_mask.bool()
    assert (start[~allowed] == NEG).all() and (end[~allowed] == NEG).all()
    assert torch.equal(start[allowed], out.start_logits[allowed]) and (start[:, 0] > NEG).all()

    # cached teacher logits, trimmed per example and padded back, adapt to the same tensors
    cache = LogitCache(token_level=KIND.token_level)
    cache.put(idx.tolist(), _raw_logits(out), [ds[i]["length"] for i in range(8)])
    cached = KIND.adapt(_Logits(cache.get(idx.tolist(), L, "cpu")), batch, targets)["logits"]
    assert torch.allclose(cached[0], start) and torch.allclose(cached[1], end)
    # the prediction-layer loss is finite with the masked positions
    from hub.losses import prediction_loss

    assert torch.isfinite(prediction_loss(start, cached[0] + 1.0, targets["start_positions"], 2.0, 0.5, None))


def test_doc_stride_leaves_room_for_the_context():
    assert doc_stride_for(384) == 128 and doc_stride_for(48) == 16


# ---------------------------------------------------------------- evaluation and the demo


def test_evaluate_scores_the_oracle_exactly(data, oracle):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(str(oracle))
    tok = AutoTokenizer.from_pretrained(str(oracle))
    result = KIND.evaluate(model, tok, data, max_length=MAX_LENGTH)
    assert result["exact_match"] == result["f1"] == result["HasAns_f1"] == result["NoAns_exact"] == 100.0
    assert result["eval_size"] == 60 and result["null_threshold"] == 0.0
    gold = [ex["answers"]["text"][0] if ex["answers"]["text"] else "" for ex in data.eval]
    assert result["predictions"] == gold
    assert KIND.agreement(result["predictions"], gold) == 1.0
    assert KIND.agreement(result["predictions"], [""] * 60) == pytest.approx(KIND.chance_level(data) / 100)
    # null_threshold -20: "no answer" wins unless the best span beats it by 20 logits (the oracle's margin is 16)
    strict = QAKind()
    strict.null_threshold = -20.0
    abstain = strict.evaluate(model, tok, data, max_length=MAX_LENGTH)
    assert abstain["f1"] == pytest.approx(KIND.chance_level(data)) and abstain["HasAns_f1"] == 0.0
    # the official threshold search: margins are -16 (a colour) and +16 (none), so any threshold in [-16, 16)
    # is perfect and the search reports the lowest, -16, whatever threshold the scores above used
    for r in (result, abstain, KIND.evaluate(model, tok, data, max_length=MAX_LENGTH, null_threshold=20.0)):
        assert r["best_f1"] == r["best_exact"] == 100.0 and r["best_f1_thresh"] == r["best_exact_thresh"] == -16.0
    assert KIND.evaluate(model, tok, data, max_length=MAX_LENGTH, null_threshold=-16.0)["f1"] == 100.0
    assert all(KIND.evaluate(model, tok, data, max_length=MAX_LENGTH, null_threshold=20.0)["predictions"])  # no ""
    with pytest.raises(ValueError, match="finite"):
        KIND.evaluate(model, tok, data, max_length=MAX_LENGTH, null_threshold=float("inf"))


def test_predictor_reads_every_window(oracle):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from hub import squad

    model = AutoModelForQuestionAnswering.from_pretrained(str(oracle))
    tok = AutoTokenizer.from_pretrained(str(oracle))
    context = " ".join(["the dog ran to the park"] * 8) + " then a big blue bird sat on the tree ."
    windows = squad.encode_eval(tok, [{"id": "q", "question": QUESTION, "context": context}], 32, doc_stride_for(32))
    assert len(windows["input_ids"]) >= 2 and "blue" not in tok.decode(windows["input_ids"][0])
    pred = KIND.predictor(model, tok, SQUAD, max_length=32)
    answer = pred.predict(QUESTION, context)
    assert answer["answer"] == "blue" and not answer["no_answer"]
    assert context[answer["start_char"]:answer["end_char"]] == "blue" and answer["latency_ms"] > 0
    none = pred.predict(QUESTION, "the dog ran to the park .")
    assert none["no_answer"] and none["answer"] == "" and none["start_char"] is None

    cmp = KIND.compare(pred, pred, QUESTION, context)
    assert cmp["agree"] and cmp["f1_between"] == 1.0 and cmp["a"]["answer"] == "blue"
    batch = KIND.compare_batch(pred, pred, [(QUESTION, context, ["blue"]), (QUESTION, "a dog .", []),
                                            {"question": QUESTION, "context": "red tree .", "answers": ["green"]},
                                            (QUESTION, "gold mat .")])
    assert batch["agreement"] == 1.0 and batch["n"] == 4 and batch["n_gold"] == 3
    assert batch["exact_match_a"] == pytest.approx(200 / 3) and batch["throughput_b"] > 0


# ---------------------------------------------------------------- training, CLI, benchmark


def test_finetune_and_distill_end_to_end(trained_pair, data):
    teacher_dir, student_dir = trained_pair
    t_card = json.loads((teacher_dir / "run.json").read_text())
    assert t_card["status"] == "finished" and t_card["train"]["max_length"] == MAX_LENGTH
    t_eval = t_card["eval"]["model"]
    assert {"f1", "exact_match", "HasAns_f1", "NoAns_f1", "eval_size", "null_threshold"} <= set(t_eval)
    assert t_card["train_examples_per_s"] > 0 and t_card["wall_time_s"] > 0
    # the tiny teacher learns the colour task: well above always answering "no answer"
    assert t_eval["f1"] > KIND.chance_level(data) + 20, t_eval
    s_card = json.loads((student_dir / "run.json").read_text())
    assert s_card["status"] == "finished" and s_card["stages"] == ["intermediate", "prediction"]
    assert s_card["student"]["layers"] == 2 and s_card["layer_map"] == [2, 4]
    ev = s_card["eval"]
    assert ev["headline"] == "f1" and ev["teacher"]["f1"] == t_eval["f1"]
    assert ev["retention"] == pytest.approx(ev["student"]["f1"] / ev["teacher"]["f1"])
    assert "exact_match" in ev["student"] and not s_card.get("warnings")


def test_cli_evaluate_json(trained_pair, data_dir, capsys):
    from hub.cli import main

    teacher_dir, _ = trained_pair
    assert main(["evaluate", "--task", "squad", "--model", str(teacher_dir), "--data-dir", str(data_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"model", "task", "max_length", "null_threshold", "exact_match", "f1", "HasAns_exact",
                        "HasAns_f1", "NoAns_exact", "NoAns_f1", "eval_size", "best_exact", "best_exact_thresh",
                        "best_f1", "best_f1_thresh"}
    assert out["max_length"] == MAX_LENGTH and out["eval_size"] == 60  # the teacher's training length
    card = json.loads((teacher_dir / "run.json").read_text())["eval"]["model"]
    assert out["f1"] == pytest.approx(card["f1"]) and out["null_threshold"] == 0.0
    assert out["best_f1"] >= out["f1"] and card["best_f1_thresh"] == out["best_f1_thresh"]
    # --null-threshold: the best threshold, passed back, scores the best F1
    assert main(["evaluate", "--task", "squad", "--model", str(teacher_dir), "--data-dir", str(data_dir),
                 "--null-threshold", str(out["best_f1_thresh"])]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned["null_threshold"] == out["best_f1_thresh"] and tuned["f1"] == pytest.approx(out["best_f1"])


def test_cli_null_threshold_is_refused_for_other_kinds(tiny_data_dir, tiny_teacher_dir, capsys):
    from hub.cli import main

    code = main(["evaluate", "--task", "sst2", "--model", str(tiny_teacher_dir), "--data-dir", str(tiny_data_dir),
                 "--null-threshold", "1.5"])
    assert code == 2 and "--null-threshold does not apply to task sst2" in capsys.readouterr().err
    code = main(["evaluate", "--task", "squad", "--model", "x", "--data-dir", "d", "--null-threshold", "nan"])
    assert code == 2 and "finite" in capsys.readouterr().err


def test_a_run_card_threshold_is_recorded_and_used(tmp_path, data, oracle):
    """finetune records --null-threshold in the run card (eval_options); evaluate without
    the flag, the benchmark and the Compare predictor then use it; a flag overrides it."""
    from hub.distill import TrainConfig
    from hub.training import finetune
    from hub.inference import eval_options, load_predictor

    cfg = TrainConfig(epochs=1, learning_rate=1e-9, batch_size=32, max_length=MAX_LENGTH, max_steps=1)
    card = finetune(SQUAD, str(oracle), data, str(tmp_path / "m"), cfg, eval_options={"null_threshold": 20.0})
    assert card["eval_options"] == {"null_threshold": 20.0} and card["eval"]["model"]["null_threshold"] == 20.0
    # the oracle's margin is 16 on unanswerable questions: at 20 it answers a span (at 0 it abstains: 100)
    assert card["eval"]["model"]["NoAns_exact"] < 100.0
    assert card["eval"]["model"]["best_f1_thresh"] == pytest.approx(-16.0, abs=1e-3)
    assert eval_options(str(tmp_path / "m"), SQUAD) == {"null_threshold": 20.0}
    predictor = load_predictor(str(tmp_path / "m"), SQUAD)
    assert predictor.null_threshold == 20.0 and predictor.runtime == "PyTorch"
    said = predictor.predict(QUESTION, "the dog ran to the park .")
    assert said["answer"] != "" and said["null_threshold"] == 20.0
    from ui.compare_qa import answer_html

    assert "by more than 20.00" in answer_html("B", "m", said, "the dog ran to the park .")
    assert "by more than" not in answer_html("B", "m", {**said, "null_threshold": 0.0}, "the dog")  # the default
    assert load_predictor(str(tmp_path / "m"), SQUAD) is predictor  # loaded once ...
    import os

    run = tmp_path / "m" / "run.json"  # ... until its card records another threshold (calibrate-null --apply)
    run.write_text(json.dumps({**json.loads(run.read_text()), "eval_options": {"null_threshold": 5.0}}))
    os.utime(run, ns=(run.stat().st_atime_ns, run.stat().st_mtime_ns + 1_000_000))
    assert load_predictor(str(tmp_path / "m"), SQUAD).null_threshold == 5.0
    with pytest.raises(ValueError, match="null-threshold does not apply to task sst2"):
        finetune(get_task("sst2"), str(oracle), data, str(tmp_path / "x"), cfg, eval_options={"null_threshold": 1.0})


def test_cli_evaluate_uses_the_recorded_threshold(tmp_path, data_dir, oracle, capsys):
    from hub.cli import main

    (oracle / "run.json").write_text(json.dumps({"task": "squad", "eval_options": {"null_threshold": 20.0},
                                                 "train": {"max_length": MAX_LENGTH}}))
    try:
        assert main(["evaluate", "--task", "squad", "--model", str(oracle), "--data-dir", str(data_dir)]) == 0
        recorded = json.loads(capsys.readouterr().out)
        assert main(["evaluate", "--task", "squad", "--model", str(oracle), "--data-dir", str(data_dir),
                     "--null-threshold", "0"]) == 0
        flagged = json.loads(capsys.readouterr().out)
    finally:
        (oracle / "run.json").unlink()
    assert recorded["null_threshold"] == 20.0 and recorded["NoAns_exact"] < 100.0
    assert flagged["null_threshold"] == 0.0 and flagged["f1"] == 100.0
    assert recorded["best_f1"] == flagged["best_f1"] == 100.0  # the search does not depend on the threshold used


def test_cli_defaults_max_length_to_the_kind(data_dir):
    from hub.cli import build_parser
    from hub.cli_commands import _train_config

    args = build_parser().parse_args(["finetune", "--task", "squad", "--model", "m", "--output-dir", "o"])
    assert _train_config(args, task=SQUAD).max_length == 384
    assert _train_config(args, task=get_task("sst2")).max_length == 128
    args = build_parser().parse_args(["finetune", "--task", "squad", "--model", "m", "--output-dir", "o",
                                      "--max-length", "256"])
    assert _train_config(args, task=SQUAD).max_length == 256


def test_benchmark_of_a_qa_pair(trained_pair, data):
    from hub.benchmark import Protocol, run_benchmark

    teacher_dir, student_dir = trained_pair
    protocol = Protocol(name="quick", warmup=1, min_calls=3, min_seconds=0.0, throughput_seconds=0.05, memory=False)
    rows = run_benchmark(SQUAD, [str(student_dir)], teacher=str(teacher_dir), data=data, protocol=protocol)
    assert [r["role"] for r in rows] == ["teacher", "student"]
    for r in rows:
        assert r["f1"] is not None and r["eval_size"] == 60 and r["max_length"] == MAX_LENGTH
        assert r["latency_p50_ms"] > 0 and r["latency_p50_ms_fixed"] > 0 and r["throughput_per_s"] > 0
        assert r["flops_per_example"] > 0 and r["tokenize_p50_ms"] > 0
    assert rows[0]["agreement"] == 1.0 and 0.0 <= rows[1]["agreement"] <= 1.0
    assert rows[1]["retention"] == pytest.approx(rows[1]["f1"] / rows[0]["f1"])
    # the fixed length timed is the QA window (384), bounded by these tiny models' 128 positions
    assert {r["seq_len_fixed"] for r in rows} == {128}
    from hub.benchmark import fixed_length
    assert fixed_length(Protocol(), KIND, [512]) == 384


# ---------------------------------------------------------------- data augmentation (hub/augment.py)

def test_augmented_questions_keep_context_and_answers_and_a_distillation_records_them(tmp_path, trained_pair,
                                                                                      data_dir, capsys):
    """``augment --task squad``: each question, then copies of it with words of the
    *question* replaced; a valid SQuAD file (every answer still at its answer_start)
    that distillation reads and its run card describes."""
    from hub.cli import main
    from hub.squad import read_squad

    teacher, _ = trained_pair
    out = tmp_path / "aug.json"
    assert main(["augment", "--task", "squad", "--embeddings", str(teacher), "--data-dir", str(data_dir),
                 "--max-train-samples", "40", "--per-example", "3", "--output-file", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-2])
    examples = read_squad(out)
    qas = {qa["id"]: qa for article in json.loads(out.read_text())["data"]
           for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    originals = {ex["id"]: ex for ex in make_examples(240, seed=1, prefix="tr")[:40]}
    assert [ex["id"] for ex in examples if ex["id"] in originals] == list(originals)
    copies = [ex for ex in examples if ex["id"] not in originals]
    assert len(copies) == printed["augmented"] > 40 and printed["originals"] == 40
    for ex in copies:
        source = originals[qas[ex["id"]]["source_id"]]
        assert qas[ex["id"]]["augmented"] is True and ex["id"].startswith(source["id"] + "-aug")
        assert ex["augmented"] is True  # kept when read: a calibration leaves the copies out
        assert (ex["context"], ex["answers"], ex["is_impossible"]) == \
            (source["context"], source["answers"], source["is_impossible"])
        # "color" is the question's only word that is not a stop word: it is the one replaced
        words = ex["question"].split()
        assert words[0] == "what" and words[2:] == ["is", "it?"] and words[1] != "color"
    assert main(["augment", "--task", "squad", "--embeddings", str(teacher), "--data-dir", str(data_dir),
                 "--output-file", str(tmp_path / "aug.tsv")]) == 2
    assert "as .json" in capsys.readouterr().err

    student = tmp_path / "student"
    assert main(["distill", "--task", "squad", "--teacher", str(teacher), "--student", "teacher-layers:1",
                 "--train-file", str(out), "--eval-file", str(data_dir / "squad" / "dev-subset-v2.0.json"),
                 "--alpha", "0", "--epochs", "1", "--max-length", str(MAX_LENGTH), "--output-dir", str(student)]) == 0
    card = json.loads((student / "run.json").read_text())
    assert card["data"]["train_size"] == 40 + printed["augmented"]
    assert card["data"]["augmentation"]["augmented"] == printed["augmented"]
    assert "python -m hub augment --task squad --embeddings" in (student / "README.md").read_text()


def test_an_augmented_qa_job_distills_the_question_copies(monkeypatch, hub_home, trained_pair, data_dir, tmp_path):
    from conftest import run_job_without_training
    from hub import jobs

    teacher, _ = trained_pair
    params = jobs.validate_params({"task": "squad", "teacher": str(teacher), "data": {"data_dir": str(data_dir)},
                                   "student": "teacher-layers:1", "train_samples": 30, "eval_samples": 16,
                                   "augment": 2, "alpha": 0.5, "benchmark": False})
    assert params["alpha"] == 0.0
    result, ctx, seen = run_job_without_training(monkeypatch, params, tmp_path / "job", "f1")
    seen.update(train=list(seen["data"].train), source=seen["data"].source)
    assert result["status"] == "finished" and seen["alpha"] == 0.0
    aug = seen["source"]["augmentation"]
    assert aug["originals"] == 30 and len(seen["train"]) == 30 + aug["augmented"] == seen["source"]["train_size"]
    copies = [ex for ex in seen["train"] if ex.get("augmented")]
    assert len(copies) == aug["augmented"] > 0 and all(ex["question"] != QUESTION for ex in copies)
    assert ctx.phases["augment"]["examples"] == 30


def test_a_cloze_qa_job_distills_the_questions_and_cloze_questions_about_wikitext(monkeypatch, hub_home,
                                                                                  trained_pair, data_dir, tmp_path):
    """``cloze: N``: the training questions, then N cloze questions a paragraph about
    their contexts and WikiText-2's (the data folder's, else the embedded sample's);
    alpha stays the user's (the cloze answers are right); the estimate counts them."""
    from conftest import run_job_without_training
    from hub import jobs
    from hub.samples import samples_dir

    import shutil

    teacher, _ = trained_pair
    data = tmp_path / "data"
    shutil.copytree(data_dir / "squad", data / "squad")
    (data / "wikitext-2").mkdir()
    filler = "The dog ran to the park and home . " * 6
    (data / "wikitext-2" / "valid.txt").write_text(
        " = Heading = \n" + "".join(f"{filler}It was opened in {1900 + i} by the town .\n" for i in range(3)))
    (data / "wikitext-2" / "test.txt").write_text(f"{filler}It sat near the Green River .\nshort line .\n")
    raw = {"task": "squad", "teacher": str(teacher), "data": {"data_dir": str(data)},
           "student": "teacher-layers:1", "train_samples": 30, "eval_samples": 16, "cloze": 1, "alpha": 0.5,
           "benchmark": False}
    params = jobs.validate_params(raw)
    assert params["alpha"] == 0.5
    files, described = jobs.params.cloze_text_files(params)
    assert files == [str(data / "wikitext-2" / "valid.txt"), str(data / "wikitext-2" / "test.txt")]
    # a folder without WikiText: ../shared/data's, else the embedded sample's
    files, described = jobs.params.cloze_text_files({"data": {"data_dir": str(data_dir)}})
    assert all(Path(f).is_file() for f in files) and ("embedded sample" in described) == (
        Path(files[0]).parent.parent == samples_dir())
    result, ctx, seen = run_job_without_training(monkeypatch, params, tmp_path / "job", "f1")
    train, source = list(seen["data"].train), seen["data"].source
    assert result["status"] == "finished" and seen["alpha"] == 0.5
    aug = source["augmentation"]
    assert aug["proposer"] == "cloze" and aug["originals"] == 30 and aug["per_context"] == 1
    assert len(train) == 30 + aug["augmented"] == source["train_size"]
    cloze = [ex for ex in train if ex.get("synthetic") == "cloze"]
    assert train[:30] == [ex for ex in train if not ex.get("synthetic")]
    assert sorted(ex["answers"]["text"][0] for ex in cloze) == ["1900", "1901", "1902", "Green River"]
    assert {ex["title"] for ex in cloze} == {"valid.txt", "test.txt"}  # the fixture's contexts have no names
    assert "cloze" in ctx.phases
    log = (tmp_path / "job" / "log.txt").read_text()
    assert "cloze questions: 1 a paragraph" in log and "4 cloze questions" in log and str(data) not in log
    # the intermediate stage trains on the 30 training questions, the prediction stage on all 34
    assert seen["dcfg"].intermediate_train_samples == 30 and seen["dcfg"].stages == ("intermediate", "prediction")
    assert seen["dcfg"].negative_target == "label"  # no made negatives: every question teaches as it is
    assert "the intermediate stage trains on the 30 training questions" in log
    events = [json.loads(line) for line in (tmp_path / "job" / "events.jsonl").read_text().splitlines()]
    plan = dict(next(e for e in reversed(events) if e["type"] == "plan")["stages"])
    batch = params["batch_size"]
    assert plan == {"intermediate": jobs.plan_steps(30, params["epochs"], batch),
                    "prediction": jobs.plan_steps(34, params["epochs"], batch)}
    est = {**raw, "teacher": "minilm-l6"}  # an estimate names teachers as the page does
    estimate = jobs.estimate(est, teacher_trained=True)
    plain = jobs.estimate({**est, "cloze": 0}, teacher_trained=True)
    assert "cloze" in estimate["phases"] and "cloze" not in plain["phases"]
    added = estimate["distill_examples"] - plain["distill_examples"]  # the prediction stage's only
    assert added == 4 + round(30 * (0.05 + 0.15))  # the paragraphs' counted, the training contexts' guessed
    with pytest.raises(jobs.ParamsError, match="extractive QA"):
        jobs.validate_params({**raw, "task": "sst2", "data": None})
    with pytest.raises(jobs.ParamsError, match="teach the prediction stage"):
        jobs.validate_params({**raw, "stages": ["intermediate"]})
    # a noisy share: the same answers, every question rewritten at 1.0; refused without cloze or outside 0..1
    with pytest.raises(jobs.ParamsError, match="set cloze"):
        jobs.validate_params({**raw, "cloze": 0, "cloze_noise": 0.5})
    with pytest.raises(jobs.ParamsError, match="cloze_noise"):
        jobs.validate_params({**raw, "cloze_noise": 1.5})
    result, ctx, seen = run_job_without_training(monkeypatch, jobs.validate_params({**raw, "cloze_noise": 1.0}),
                                                 tmp_path / "noisy", "f1")
    noisy = [ex for ex in seen["data"].train if ex.get("synthetic")]
    assert result["status"] == "finished" and {ex["synthetic"] for ex in noisy} == {"cloze-noisy"}
    assert [ex["answers"] for ex in noisy] == [ex["answers"] for ex in cloze]
    assert [ex["question"] for ex in noisy] != [ex["question"] for ex in cloze]
    assert seen["data"].source["augmentation"]["noise"] == 1.0
    assert "100% of them in the noisy form" in (tmp_path / "noisy" / "log.txt").read_text()


def test_a_qa_job_with_negatives_adds_unanswerable_copies_the_teacher_alone_teaches(monkeypatch, hub_home,
                                                                                   trained_pair, tmp_path):
    """``negatives: N`` (with cloze): N copies of each training question paired with
    another article's paragraph, after the cloze questions, distilled with
    ``negative_target="teacher"``; the estimate counts them; refused without cloze,
    with alpha 1, out of range, and on one article's questions before any training."""
    from conftest import run_job_without_training
    from hub import jobs

    teacher, _ = trained_pair
    examples = make_examples(30, seed=11, prefix="tr", unanswerable=0.0)
    for i, ex in enumerate(examples):
        ex["title"] = f"article {i % 3}"
    data = tmp_path / "data"
    write_squad(data / "squad" / "xquad-en-train.json", examples)
    write_squad(data / "squad" / "dev-subset-v2.0.json", make_examples(16, seed=2, prefix="ev"))
    (data / "wikitext-2").mkdir()
    filler = "The dog ran to the park and home . " * 6
    (data / "wikitext-2" / "valid.txt").write_text(f"{filler}It was opened in 1900 by the town .\n")
    (data / "wikitext-2" / "test.txt").write_text(f"{filler}It sat near the Green River .\n")
    raw = {"task": "squad", "teacher": str(teacher), "data": {"data_dir": str(data)}, "student": "teacher-layers:1",
           "train_samples": 30, "eval_samples": 16, "cloze": 1, "negatives": 1, "stages": ["prediction"],
           "benchmark": False}
    params = jobs.validate_params(raw)
    result, ctx, seen = run_job_without_training(monkeypatch, params, tmp_path / "job", "f1")
    train = seen["data"].train
    made = [ex for ex in train if ex.get("synthetic") == "negative"]
    assert result["status"] == "finished" and seen["dcfg"].negative_target == "teacher"
    assert train[-30:] == made and train[:30] == [ex for ex in train if not ex.get("synthetic")]
    assert all(ex["is_impossible"] and not ex["answers"]["text"] for ex in made)
    by_id = {ex["id"]: ex for ex in train[:30]}
    for ex in made:  # a paragraph of the training questions', never one of the question's own article
        own = by_id[ex["id"].split("#")[0]]["title"]
        assert ex["context"] in {o["context"] for o in train[:30] if o["title"] != own}
    assert seen["data"].source["augmentation"]["contexts"]["negatives"] == {"questions": 30, "per_question": 1}
    log = (tmp_path / "job" / "log.txt").read_text()
    assert "1 unanswerable copy of each training question" in log and f"+ {len(train) - 30} made questions" in log
    est = {**raw, "teacher": "minilm-l6"}
    added = (jobs.estimate(est, teacher_trained=True)["distill_examples"]
             - jobs.estimate({**est, "negatives": 0}, teacher_trained=True)["distill_examples"])
    assert added == 30 * params["epochs"]
    for bad, match in (({"cloze": 0}, "set cloze"), ({"alpha": 1.0}, "alpha"), ({"negatives": 5}, "negatives")):
        with pytest.raises(jobs.ParamsError, match=match):
            jobs.validate_params({**raw, **bad})
    # one article's questions: refused before any training (the distillation never starts)
    one = tmp_path / "one"
    write_squad(one / "squad" / "xquad-en-train.json", make_examples(30, seed=11, prefix="tr"))
    write_squad(one / "squad" / "dev-subset-v2.0.json", make_examples(16, seed=2, prefix="ev"))
    with pytest.raises(DataError, match="another article"):
        run_job_without_training(monkeypatch, jobs.validate_params({**raw, "data": {"data_dir": str(one)}}),
                                 tmp_path / "refused", "f1")
    log = (tmp_path / "refused" / "log.txt").read_text()
    assert "cloze questions:" not in log and "distilling into" not in log
    # a teacher fine-tuned first: the distillation's own first questions are checked (one article here, though the
    # fine-tuning's 40 span three), before the fine-tuning
    import hub.training

    first = make_examples(20, seed=12, prefix="one", unanswerable=0.0) + examples[:20]
    write_squad(one / "squad" / "xquad-en-train.json", first)
    monkeypatch.setattr(hub.training, "finetune", lambda *a, **k: pytest.fail("fine-tuned before the refusal"))
    bare = make_bare(tmp_path / "bare", layers=1)
    with pytest.raises(DataError, match="another article"):
        run_job_without_training(monkeypatch, jobs.validate_params(
            {**raw, "teacher": str(bare), "data": {"data_dir": str(one)}, "train_samples": 20,
             "finetune_samples": 40}), tmp_path / "refused-ft", "f1")


def test_cloze_file_keeps_the_questions_adds_cloze_questions_and_a_distillation_records_it(tmp_path, trained_pair,
                                                                                        data_dir, capsys):
    """``cloze --task squad``: the training questions, then cloze questions about
    the paragraphs of a text file (the synthetic contexts hold no names or numbers,
    so none about them); a valid SQuAD file that distillation reads and its run and
    model cards describe."""
    from hub.cli import main
    from hub.squad import read_squad

    text = tmp_path / "wiki.txt"
    filler = "The dog ran to the park and home. " * 5
    text.write_text(f" = Heading = \n\n{filler}It ran to the park in 1931. It had 12 dogs and a bird.\n"
                    f"short line .\n{filler}It sat near the Green River.\n")
    out = tmp_path / "cloze.json"
    assert main(["cloze", "--task", "squad", "--contexts", str(text), "--data-dir", str(data_dir),
                 "--max-train-samples", "40", "--output-file", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert printed["originals"] == 40 and printed["augmented"] == 3
    assert printed["contexts"][str(text)] == {"contexts": 2, "questions": 3}
    examples = read_squad(out)
    originals = make_examples(240, seed=1, prefix="tr")[:40]
    assert [ex["id"] for ex in examples[:40]] == [ex["id"] for ex in originals]
    cloze = examples[40:]
    assert all(ex["synthetic"] == "cloze" for ex in cloze) and not any("synthetic" in ex for ex in examples[:40])
    assert sorted(ex["answers"]["text"][0] for ex in cloze) == ["12", "1931", "Green River"]
    assert {ex["question"] for ex in cloze} == {"It ran to the park in when?", "It had how many dogs and a bird?",
                                                "It sat near the what?"}
    assert main(["cloze", "--task", "squad", "--contexts", str(text), "--output-file", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err  # never overwritten silently

    teacher, _ = trained_pair
    student = tmp_path / "student"
    # the intermediate stage on the 40 training questions at the file's head, the prediction stage on all 43
    assert main(["distill", "--task", "squad", "--teacher", str(teacher), "--student", "teacher-layers:1",
                 "--train-file", str(out), "--eval-file", str(data_dir / "squad" / "dev-subset-v2.0.json"),
                 "--epochs", "1", "--max-length", str(MAX_LENGTH), "--batch-size", "1",
                 "--intermediate-train-samples", "40", "--output-dir", str(student)]) == 0
    card = json.loads((student / "run.json").read_text())
    assert card["data"]["train_size"] == 43 and card["data"]["augmentation"]["proposer"] == "cloze"
    assert card["train"]["learning_rate"] == 5e-4  # QA's default for every student (hub.config.KIND_LEARNING_RATES)
    assert card["intermediate_train_samples"] == 40
    from hub.kinds.qa_data import QAData
    from hub.models import load_tokenizer

    tok = load_tokenizer(str(teacher))
    windows = [len(KIND.encode_train(tok, QAData(examples[:n], []), MAX_LENGTH)) for n in (40, 43)]
    assert windows[0] < windows[1]  # one window per cloze question at least
    assert {s: v["examples"] for s, v in card["stage_train"].items()} == dict(zip(("intermediate", "prediction"),
                                                                                 windows))
    readme = (student / "README.md").read_text()
    assert ("40 training questions and 3 cloze questions (0 about 40 paragraphs of training contexts; "
            "3 about 2 paragraphs of wiki.txt)") in readme
    assert "python -m hub cloze --task squad --train-file xquad-en-train.json --max-train-samples 40 --contexts wiki.txt" in readme
    assert "--intermediate-train-samples 40" in readme and "the first 40 training examples only" in readme
    assert main(["distill", "--task", "squad", "--teacher", str(teacher), "--student", "teacher-layers:1",
                 "--train-file", str(out), "--eval-file", str(data_dir / "squad" / "dev-subset-v2.0.json"),
                 "--stages", "prediction", "--intermediate-train-samples", "40",
                 "--output-dir", str(tmp_path / "s2")]) == 2
    assert "which this run does not run" in capsys.readouterr().err


def test_negative_target_teacher_leaves_made_negatives_to_the_teacher(tmp_path, trained_pair, data_dir, capsys):
    """``distill --negative-target teacher``: the made negatives (``synthetic:
    "negative"``) of a transfer set get no gold positions (-100: no CE term, the
    teacher's distributions alone teach them); every other window keeps its gold
    positions; the run card and its reproduce line record it. Refused for other
    tasks, without the prediction stage, and for training data without negatives."""
    from hub.cli import main
    from hub.config import DistillConfig
    from hub.distill import check_distill_config
    from hub.kinds.qa_data import QAData
    from hub.models import load_tokenizer
    from hub.squad import IGNORE, encode_train, read_squad, squad_document

    teacher, _ = trained_pair
    originals = make_examples(240, seed=1, prefix="tr")[:30]
    negatives = [{**ex, "id": f"{ex['id']}#negative-1", "title": "negatives", "context": other["context"],
                  "answers": {"text": [], "answer_start": []}, "is_impossible": True, "synthetic": "negative"}
                 for ex, other in zip(originals[:10], originals[10:20])]
    path = tmp_path / "neg.json"
    path.write_text(json.dumps(squad_document([*originals, *negatives], extra=("synthetic",))))
    examples = read_squad(path)
    tok = load_tokenizer(str(teacher))
    stride = doc_stride_for(MAX_LENGTH)
    plain = encode_train(tok, examples, MAX_LENGTH, stride)
    marked = encode_train(tok, KIND.negatives_teacher_only(QAData(examples, [])).train, MAX_LENGTH, stride)
    assert marked["input_ids"] == plain["input_ids"]
    made = [examples[i].get("synthetic") == "negative" for i in plain["example_index"]]
    assert sum(made) >= 10
    for w, negative in enumerate(made):
        pair = (marked["start_positions"][w], marked["end_positions"][w])
        assert pair == ((IGNORE, IGNORE) if negative else (plain["start_positions"][w], plain["end_positions"][w]))
    assert all(plain["start_positions"][w] == 0 for w, negative in enumerate(made) if negative)  # CLS before

    student = tmp_path / "student"
    dev = str(data_dir / "squad" / "dev-subset-v2.0.json")
    common = ["distill", "--task", "squad", "--teacher", str(teacher), "--student", "teacher-layers:1", "--eval-file",
              dev, "--epochs", "1", "--max-length", str(MAX_LENGTH), "--batch-size", "8"]
    assert main([*common, "--train-file", str(path), "--stages", "prediction", "--negative-target", "teacher",
                 "--output-dir", str(student)]) == 0
    card = json.loads((student / "run.json").read_text())
    assert card["status"] == "finished" and card["negative_target"] == "teacher"
    from safetensors.torch import load_file

    weights = load_file(str(student / "model.safetensors"))  # a batch of negatives alone has no CE: never NaN
    assert all(torch.isfinite(w).all() for w in weights.values())
    readme = (student / "README.md").read_text()
    assert "--negative-target teacher" in readme and "the teacher's start/end distributions alone" in readme
    capsys.readouterr()
    # refused before --overwrite empties the folder: the finished run is kept
    assert main([*common, "--train-file", str(data_dir / "squad" / "xquad-en-train.json"), "--stages", "prediction",
                 "--negative-target", "teacher", "--output-dir", str(student), "--overwrite"]) == 2
    assert "no made negatives" in capsys.readouterr().err and (student / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="which this run does not run"):
        check_distill_config(KIND, SQUAD, DistillConfig(stages=("intermediate",), negative_target="teacher"))
    with pytest.raises(ValueError, match="teach nothing"):
        check_distill_config(KIND, SQUAD, DistillConfig(alpha=1.0, negative_target="teacher"))
    # a student card from before the setting reads as "label" (soups and resumes compare it)
    from hub.config import card_recipe

    older = {k: v for k, v in card.items() if k != "negative_target"}
    assert card_recipe(older)["negative_target"] == "label" and card_recipe(card)["negative_target"] == "teacher"
    sst2 = get_task("sst2")
    with pytest.raises(ValueError, match="only extractive QA"):
        check_distill_config(get_kind(sst2), sst2, DistillConfig(negative_target="teacher"))


def test_cloze_refusals(tmp_path, data_dir, capsys):
    from hub.cli import main

    text = tmp_path / "short.txt"
    text.write_text("too short to ask about .\n")
    for args, message in [
        (["--task", "sst2", "--contexts", str(text), "--output-file", str(tmp_path / "a.json")], "extractive-QA"),
        (["--task", "squad", "--contexts", str(text), "--output-file", str(tmp_path / "a.tsv")], "SQuAD JSON"),
        (["--task", "squad", "--contexts", str(text), "--output-file", str(tmp_path / "a.json")], "no paragraphs"),
        (["--task", "squad", "--output-file", str(tmp_path / "a.json")], "no cloze questions made"),
        (["--task", "squad", "--contexts", str(tmp_path / "none.txt"), "--output-file", str(tmp_path / "a.json")],
         "no such file"),
        (["--task", "squad", "--contexts", str(text), "--per-context", "0", "--data-dir", str(data_dir),
          "--output-file", str(tmp_path / "a.json")], "at least 1"),
    ]:
        assert main(["cloze", *args]) == 2, args
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("a.*"))


def test_intermediate_train_samples_needs_examples_and_the_intermediate_stage(data):
    """``--intermediate-train-samples``: classification and QA take their first N
    examples; text packed into blocks (MLM) is refused, as is a run without the
    intermediate stage, before anything is loaded."""
    from hub.config import DistillConfig
    from hub.distill import check_distill_config

    assert KIND.first_examples(data, 5).train == data.train[:5] and len(data.train) == 240  # a copy, not in place
    sst2 = get_task("sst2")
    check_distill_config(get_kind(sst2), sst2, DistillConfig(intermediate_train_samples=5))
    mlm = get_task("mlm")
    with pytest.raises(ValueError, match="packed into blocks"):
        check_distill_config(get_kind(mlm), mlm, DistillConfig(intermediate_train_samples=5))
    with pytest.raises(ValueError, match="which this run does not run"):
        check_distill_config(KIND, SQUAD, DistillConfig(stages=("prediction",), intermediate_train_samples=5))
    with pytest.raises(ValueError):
        DistillConfig(intermediate_train_samples=0)
