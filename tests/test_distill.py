"""End-to-end fine-tuning and distillation on tiny in-memory models."""

from __future__ import annotations

import json
from pathlib import Path
import threading

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import make_bare_bert, make_sentences, make_tiny_bert, write_tsv
from hub.data import load_classification
from hub.distill import DistillConfig, TrainConfig, distill
from hub.training import finetune
from hub.models import UntrainedHeadError, parse_student
from hub.tasks import get_task
from hub.teacher_cache import teacher_logits_for

SST2 = get_task("sst2")


@pytest.fixture(scope="module")
def data(tiny_data_dir):
    return load_classification(SST2, data_dir=str(tiny_data_dir))


def _curve(events, term="total"):
    return [e["losses"][term] for e in events if term in e.get("losses", {})]


def test_pair_trains_saves_loads_and_reports(trained_pair):
    teacher_dir, student_dir = trained_pair
    for folder in (teacher_dir, student_dir):
        model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        AutoTokenizer.from_pretrained(str(folder))
        assert (folder / "model.safetensors").is_file()
        assert model.config.id2label == {0: "negative", 1: "positive"}
    card = json.loads((student_dir / "run.json").read_text())
    assert card["status"] == "finished" and card["kind"] == "student"
    assert card["student"]["layers"] == 2 and card["layer_map"] == [2, 4]
    assert card["stages"] == ["intermediate", "prediction"]
    for key in ("teacher", "params", "teacher_params", "temperature", "alpha", "loss_weights", "data", "versions",
                "hardware", "wall_time_s", "train_examples_per_s"):
        assert card[key] is not None, key
    assert card["params"] < card["teacher_params"]
    ev = card["eval"]
    assert set(ev) == {"student", "teacher", "retention", "headline"} and ev["headline"] == "accuracy"
    assert ev["student"]["max_length"] == 128  # evaluated at the training length, and says so
    assert 0.0 <= ev["student"]["accuracy"] <= 1.0 and ev["student"]["eval_size"] == 80
    # the fine-tuned tiny teacher learns the synthetic word-list task
    t_card = json.loads((teacher_dir / "run.json").read_text())
    assert t_card["eval"]["model"]["accuracy"] > 0.8


def test_losses_decrease(tmp_path, data):
    base = make_tiny_bert(tmp_path / "base")
    events: list[dict] = []
    finetune(SST2, str(base), data, str(tmp_path / "t"), TrainConfig(epochs=3, learning_rate=3e-3, batch_size=16),
             progress=events.append)
    ce = _curve(events)
    assert sum(ce[-5:]) / 5 < sum(ce[:5]) / 5
    events.clear()
    distill(SST2, str(tmp_path / "t"), parse_student("custom", 2, 16, 2, 32), data, str(tmp_path / "s"),
            TrainConfig(epochs=2, learning_rate=1e-3, batch_size=16), DistillConfig(stages=("intermediate",)),
            progress=events.append)
    total = _curve(events)
    assert len(total) > 10 and sum(total[-5:]) / 5 < sum(total[:5]) / 5
    assert {"embedding", "attention", "hidden"} <= set(events[-2]["losses"])


def test_untrained_head_is_refused(tmp_path, data):
    make_bare_bert(tmp_path / "bare")
    with pytest.raises(UntrainedHeadError, match="finetune"):
        distill(SST2, str(tmp_path / "bare"), parse_student("teacher-layers:1"), data, str(tmp_path / "s"))
    assert not (tmp_path / "s").exists()  # refused before anything is written


def test_cancel_stops_and_keeps_checkpoint(tmp_path, trained_pair, data):
    teacher_dir, _ = trained_pair
    cancel = threading.Event()

    def hook(e):
        if e.get("step") == 3:
            cancel.set()

    card = distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                   TrainConfig(epochs=1, batch_size=16, save_steps=100), progress=hook, cancel=cancel)
    assert card["status"] == "stopped"
    assert json.loads((tmp_path / "s" / "run.json").read_text())["status"] == "stopped"
    assert list((tmp_path / "s" / "stages" / "intermediate").glob("checkpoint-3"))
    AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "s"))


def test_resume_after_crash(tmp_path, trained_pair, data):
    teacher_dir, _ = trained_pair
    cfg = TrainConfig(epochs=1, batch_size=16, save_steps=4)

    class Crash(RuntimeError):
        pass

    def crash(e):
        if e.get("stage") == "prediction" and e.get("step") == 6:
            raise Crash("simulated power cut")

    out = tmp_path / "s"
    with pytest.raises(Crash):
        distill(SST2, str(teacher_dir), parse_student("teacher-layers:2"), data, str(out), cfg, progress=crash)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    with pytest.raises(FileExistsError, match="--resume"):
        distill(SST2, str(teacher_dir), parse_student("teacher-layers:2"), data, str(out), cfg)
    events: list[dict] = []
    card = distill(SST2, str(teacher_dir), parse_student("teacher-layers:2"), data, str(out), cfg,
                   progress=events.append, resume=True)
    assert card["status"] == "finished"
    stages = [e["stage"] for e in events if "losses" in e and e["stage"] != "evaluate"]
    assert "intermediate" not in stages  # the finished stage is not redone
    assert min(e["step"] for e in events if e["stage"] == "prediction") == 5  # continues after checkpoint-4
    assert set(card["attention"]) == {"intermediate", "prediction"}  # the skipped stage's kernel still recorded


def test_resume_refuses_other_settings(tmp_path, trained_pair, data):
    teacher_dir, _ = trained_pair
    cfg = TrainConfig(epochs=1, batch_size=16, save_steps=2)

    def crash(e):
        if e.get("stage") == "intermediate" and e.get("step") == 3:
            raise KeyboardInterrupt

    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(out), cfg, progress=crash)
    before = sorted(p.name for p in (out / "stages" / "intermediate").iterdir())
    other = TrainConfig(epochs=1, batch_size=16, save_steps=2, precision="bf16", learning_rate=cfg.learning_rate)
    with pytest.raises(ValueError, match=r"precision 'fp32' then, 'bf16' now.*--overwrite"):
        distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(out), other, resume=True)
    with pytest.raises(ValueError, match=r"temperature 1\.0 then, 2\.0 now"):
        distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(out), cfg,
                DistillConfig(temperature=2.0), resume=True)
    assert json.loads((out / "run.json").read_text())["status"] == "failed"  # the run is untouched
    assert sorted(p.name for p in (out / "stages" / "intermediate").iterdir()) == before
    # a changed checkpoint interval changes nothing trained: allowed
    card = distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(out),
                   TrainConfig(epochs=1, batch_size=16, save_steps=50), resume=True)
    assert card["status"] == "finished"


def test_prediction_stage_caches_teacher_logits(tmp_path, trained_pair, data, monkeypatch):
    import hub.distill as D
    import hub.teacher_cache as C

    calls = {"cache": 0, "teacher_forward": 0}
    real_cache, real_load = C.teacher_logits_for, D.load_model

    def counting_cache(*a, **k):
        calls["cache"] += 1
        return real_cache(*a, **k)

    def counting_load(*a, **k):
        model, ok = real_load(*a, **k)
        model.register_forward_hook(lambda *_: calls.__setitem__("teacher_forward", calls["teacher_forward"] + 1))
        return model, ok

    monkeypatch.setattr(C, "teacher_logits_for", counting_cache)
    monkeypatch.setattr(D, "load_model", counting_load)
    teacher_dir, _ = trained_pair
    distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
            TrainConfig(epochs=3, batch_size=50), DistillConfig(stages=("prediction",)))
    assert calls["cache"] == 1
    # 400 examples: 7 batches of 64 fill the cache once for 3 epochs; the teacher's eval scores come from its
    # run card (same eval file, size and length), so the teacher never runs on the eval set again
    assert calls["teacher_forward"] == 7


def test_cached_logits_match_teacher(trained_pair, data):
    from transformers import DataCollatorWithPadding

    from hub.data import tokenize
    from hub.models import load_model, load_tokenizer

    teacher, _ = load_model(str(trained_pair[0]), SST2)
    tok = load_tokenizer(str(trained_pair[0]))
    ds = tokenize(tok, data.train_texts[:20], data.train_labels[:20])
    from hub.kinds import get_kind

    cache = teacher_logits_for(teacher, ds, DataCollatorWithPadding(tok), get_kind(SST2), batch_size=7)
    cached = cache.get(list(range(20)), 0, "cpu")[0]
    with torch.no_grad():
        direct = teacher(**tok(data.train_texts[:20], padding=True, return_tensors="pt")).logits
    assert torch.allclose(cached, direct, atol=1e-5)


def test_logit_cache_is_the_same_in_length_order_and_data_order(trained_pair, data):
    """Length-sorted batches (little padding) fill the cache with the same rows, keyed by
    idx, as batches in data order and as unpadded single examples; progress reports
    examples done and an ETA that reaches 0."""
    from transformers import DataCollatorWithPadding

    from hub.data import tokenize
    from hub.kinds import get_kind
    from hub.models import load_model, load_tokenizer

    teacher, _ = load_model(str(trained_pair[0]), SST2)
    tok = load_tokenizer(str(trained_pair[0]))
    ds = tokenize(tok, data.train_texts[:30], data.train_labels[:30])
    assert len(set(ds["length"])) > 3  # lengths differ: the two orders batch differently
    collate, kind = DataCollatorWithPadding(tok), get_kind(SST2)
    events: list[dict] = []
    by_length = teacher_logits_for(teacher, ds, collate, kind, batch_size=8, progress=events.append)
    in_order = teacher_logits_for(teacher, ds, collate, kind, batch_size=8, by_length=False)
    single = teacher_logits_for(teacher, ds, collate, kind, batch_size=1)
    assert by_length.rows.keys() == in_order.rows.keys() == single.rows.keys() == set(range(30))
    for i in range(30):
        assert torch.allclose(by_length.rows[i][0], in_order.rows[i][0], atol=1e-5)
        assert torch.allclose(by_length.rows[i][0], single.rows[i][0], atol=1e-5)
    assert [e["step"] for e in events] == [8, 16, 24, 30] and {e["total"] for e in events} == {30}
    assert events[-1]["eta_s"] == 0 and all(e["eta_s"] >= 0 for e in events)


def test_same_seed_same_numbers(tmp_path, trained_pair, data):
    teacher_dir, _ = trained_pair
    cards = [
        distill(SST2, str(teacher_dir), parse_student("custom", 1, 16, 2, 32), data, str(tmp_path / f"s{i}"),
                TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, seed=7))
        for i in range(2)
    ]
    assert cards[0]["eval"] == cards[1]["eval"]


def test_string_labels_round_trip(tmp_path):
    import pandas as pd

    task = get_task("classification")
    names = {0: "neg", 1: "pos"}
    rows = make_sentences(120, seed=3)
    for split, part in (("train", rows[:100]), ("eval", rows[100:])):
        pd.DataFrame({"review": [s for s, _ in part], "mood": [names[y] for _, y in part]}).to_csv(
            tmp_path / f"{split}.csv", index=False)
    data = load_classification(task, train_file=str(tmp_path / "train.csv"), eval_file=str(tmp_path / "eval.csv"),
                               text_column="review", label_column="mood")
    assert data.label_names == ["neg", "pos"]
    base = make_tiny_bert(tmp_path / "base")
    finetune(task, str(base), data, str(tmp_path / "t"), TrainConfig(max_steps=2, batch_size=16))
    distill(task, str(tmp_path / "t"), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
            TrainConfig(max_steps=2, batch_size=16))
    for folder in ("t", "s"):
        cfg = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / folder)).config
        assert cfg.id2label == {0: "neg", 1: "pos"} and cfg.label2id == {"neg": 0, "pos": 1}


def test_custom_layer_map_and_weights(tmp_path, trained_pair, data):
    card = distill(SST2, str(trained_pair[0]), parse_student("teacher-layers:2"), data, str(tmp_path / "s"),
                   TrainConfig(max_steps=2, batch_size=16),
                   DistillConfig(layer_map=[1, 3], w_attention=0.5, temperature=2.0, alpha=0.2))
    assert card["layer_map"] == [1, 3] and card["loss_weights"]["attention"] == 0.5
    with pytest.raises(ValueError, match="outside"):
        distill(SST2, str(trained_pair[0]), parse_student("teacher-layers:2"), data, str(tmp_path / "s2"),
                TrainConfig(max_steps=1), DistillConfig(layer_map=[1, 9]))
    with pytest.raises(ValueError, match="unknown stage"):
        DistillConfig(stages=("intermediate", "predction"))
    from hub.config import from_dict

    with pytest.raises(ValueError, match="unknown parameter"):
        from_dict(DistillConfig, {"w_hiden": 1.0})


def test_cli_end_to_end(tmp_path, tiny_data_dir, capsys):
    from hub.cli import main

    base = make_tiny_bert(tmp_path / "base")
    common = ["--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64", "--max-steps", "2"]
    assert main(["finetune", "--model", str(base), "--output-dir", str(tmp_path / "t"), *common]) == 0
    assert main(["distill", "--teacher", str(tmp_path / "t"), "--student", "teacher-layers:1",
                 "--output-dir", str(tmp_path / "s"), *common]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--task", "sst2", "--model", str(tmp_path / "s"), "--data-dir", str(tiny_data_dir),
                 "--max-eval-samples", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eval_size"] == 10 and set(out) >= {"accuracy", "f1"}
    # --teacher-cache: the second run of the prediction stage reads what the first stored
    for name in ("c1", "c2"):
        assert main(["distill", "--teacher", str(tmp_path / "t"), "--student", "teacher-layers:1", "--stages",
                     "prediction", "--teacher-cache", str(tmp_path / "tc"), "--output-dir", str(tmp_path / name),
                     *common]) == 0
    err = capsys.readouterr().err
    assert "cached the teacher's logits for 64 training examples" in err
    assert "read the teacher's logits for 64 training examples from " + str(tmp_path / "tc") in err
    # clear errors, exit code 2, no traceback
    assert main(["distill", "--teacher", str(make_bare_bert(tmp_path / "bare")), "--student", "teacher-layers:1",
                 "--output-dir",
                 str(tmp_path / "x"), *common]) == 2
    assert main(["distill", "--teacher", str(tmp_path / "t"), "--student", "custom", "--student-layers", "2",
                 "--student-hidden", "30", "--student-heads", "4", "--output-dir", str(tmp_path / "y"), *common]) == 2
    err = capsys.readouterr().err
    assert "no trained" in err and "not divisible" in err
    with pytest.raises(SystemExit):
        main(["distill", "--teacher", "t", "--tempreature", "2"])  # misspelled options fail loudly


def test_cli_distills_a_pruned_student_and_its_card_reproduces_it(tmp_path, trained_pair, tiny_data_dir, capsys):
    from hub.cli import main
    from hub.reproduce import reproduce_command

    teacher, _ = trained_pair
    common = ["--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64", "--max-steps", "2"]
    assert main(["distill", "--teacher", str(teacher), "--student", "teacher-layers:2", "--prune-ffn", "16",
                 "--output-dir", str(tmp_path / "s"), *common]) == 0
    card = json.loads((tmp_path / "s" / "run.json").read_text())
    assert card["student"]["ffn"] == 16 and card["student"]["prune_ffn"] == 16
    assert card["student"]["spec"] == "teacher-layers:2"
    assert "--student teacher-layers:2 --prune-ffn 16" in reproduce_command(card)
    student = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "s"))
    assert student.config.intermediate_size == 16 and student.bert.encoder.layer[0].intermediate.dense.out_features == 16
    capsys.readouterr()
    # a random-init preset cannot be pruned: a clear error, exit code 2, nothing written
    assert main(["distill", "--teacher", str(teacher), "--student", "tinybert-4l-312", "--prune-ffn", "16",
                 "--output-dir", str(tmp_path / "x"), *common]) == 2
    assert "give it --student-ffn" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_eval_label_unseen_in_training_fails_before_training(tmp_path):
    write_tsv(tmp_path / "train.tsv", [("good movie", 0), ("bad movie", 1)])
    write_tsv(tmp_path / "eval.tsv", [("fine movie", 2)])
    from hub.data import DataError

    with pytest.raises(DataError, match="not seen in training"):
        load_classification(get_task("classification"), train_file=str(tmp_path / "train.tsv"),
                            eval_file=str(tmp_path / "eval.tsv"))


def test_rate_counts_the_steps_run_and_eval_uses_the_training_length(tmp_path, trained_pair, data, capsys,
                                                                     tiny_data_dir):
    """Defects 4 and 5: the examples/s come from the Trainer's steps actually run (max_steps), and
    evaluation runs at the training max_length, recorded in the card and used by `evaluate`."""
    card = distill(SST2, str(trained_pair[0]), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                   TrainConfig(max_steps=3, batch_size=8, max_length=16), DistillConfig(stages=("prediction",)))
    # 3 steps x 8 examples in the measured training time (not the whole data set x epochs)
    # train_time_s is rounded to 0.01 s, so the product is off by up to rate x 0.005 (a few examples when the
    # 3 steps take ~40 ms); the whole tiny data set would be far more
    rate, seconds = card["train_examples_per_s"], card["train_time_s"]
    assert abs(rate * seconds - 24) <= 0.005 * rate + 0.05, (rate, seconds)
    assert len(data.train_texts) > 24 + 0.005 * rate + 1
    assert card["eval"]["student"]["max_length"] == 16 and card["eval"]["teacher"]["max_length"] == 16
    from hub.cli import main

    capsys.readouterr()
    assert main(["evaluate", "--task", "sst2", "--model", str(tmp_path / "s"), "--data-dir", str(tiny_data_dir),
                 "--max-eval-samples", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["max_length"] == 16


def test_finished_run_drops_checkpoints_and_writes_a_model_card(trained_pair):
    _, student_dir = trained_pair
    assert not (student_dir / "stages").exists() and not (student_dir / "checkpoints").exists()
    assert (student_dir / "README.md").read_text().startswith("---")


def test_stop_after_the_last_step_is_finished(tmp_path, trained_pair, data):
    cancel = threading.Event()

    def hook(e):
        if e.get("stage") == "prediction" and e.get("step") == e.get("total") == 2:
            cancel.set()  # arrives once the last step is done

    card = distill(SST2, str(trained_pair[0]), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                   TrainConfig(max_steps=2, batch_size=8), DistillConfig(stages=("prediction",)),
                   progress=hook, cancel=cancel)
    assert cancel.is_set() and card["status"] == "finished"


def test_near_chance_teacher_warns(tmp_path, data, tiny_teacher_dir):
    """Issue 8.9: a teacher at chance level (random head) warns in the card before distilling."""
    events: list[dict] = []
    card = distill(SST2, str(tiny_teacher_dir), parse_student("teacher-layers:1"), data, str(tmp_path / "s"),
                   TrainConfig(max_steps=1, batch_size=8), DistillConfig(stages=("prediction",)),
                   progress=events.append)
    teacher_acc = card["eval"]["teacher"]["accuracy"]
    if teacher_acc <= get_kind_chance(data) + 0.05:
        below = teacher_acc < get_kind_chance(data)  # worded by where it stands
        assert card["warnings"] and ("below always predicting the majority class" if below else "near chance") \
            in card["warnings"][0]
        assert any(e["stage"] == "warning" for e in events)
    else:  # a random head that happens to be good: no warning
        assert "warnings" not in card


def get_kind_chance(data):
    from hub.kinds import get_kind

    return get_kind(SST2).chance_level(data)


def test_distilbert_teacher_finetunes_and_distills_from_the_cli(tmp_path, tiny_data_dir, capsys):
    """Defect 1: DistilBertConfig has no intermediate_size (its FFN width is hidden_dim)."""
    import torch
    from transformers import DistilBertConfig, DistilBertModel

    from conftest import VOCAB, make_tokenizer
    from hub.cli import main

    torch.manual_seed(0)
    DistilBertModel(DistilBertConfig(vocab_size=len(VOCAB), dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                     max_position_embeddings=128)).save_pretrained(str(tmp_path / "base"))
    make_tokenizer(tmp_path / "base")
    common = ["--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64", "--max-steps", "2"]
    assert main(["finetune", "--model", str(tmp_path / "base"), "--output-dir", str(tmp_path / "t"), *common]) == 0
    for student in ("teacher-layers:1", "custom"):
        extra = ["--student-layers", "1", "--student-hidden", "16", "--student-heads", "2"] if student == "custom" else []
        assert main(["distill", "--teacher", str(tmp_path / "t"), "--student", student, *extra,
                     "--output-dir", str(tmp_path / student.replace(":", "")), *common]) == 0
    card = json.loads((tmp_path / "custom" / "run.json").read_text())
    assert card["student"]["ffn"] == 64 and card["status"] == "finished"  # custom default ffn = 4 x 16


def test_same_seed_same_head_initialisation(tmp_path, data):
    """A run seeds before creating new weights: two fine-tunes of a bare model with one seed agree
    exactly, whatever the process consumed from the random generator before."""
    base = make_bare_bert(tmp_path / "bare")
    cards = []
    for i in range(2):
        torch.rand(7 + i)  # different RNG history before each run
        cards.append(finetune(SST2, str(base), data, str(tmp_path / f"t{i}"), TrainConfig(max_steps=2, batch_size=8)))
    heads = [AutoModelForSequenceClassification.from_pretrained(str(tmp_path / f"t{i}")).classifier.weight
             for i in range(2)]
    assert torch.equal(heads[0], heads[1]) and cards[0]["eval"] == cards[1]["eval"]


def test_teacher_logit_cache_batches_by_length(tiny_teacher_dir, data):
    """The cache pads each teacher batch to its longest example: batches in length order (longest first) waste fewest
    tokens."""
    from transformers import DataCollatorWithPadding

    from hub.data import tokenize
    from hub.kinds import get_kind
    from hub.models import load_model, load_tokenizer

    teacher, _ = load_model(str(tiny_teacher_dir), SST2)
    tok = load_tokenizer(str(tiny_teacher_dir))
    ds = tokenize(tok, data.train_texts[:40], data.train_labels[:40])
    padded, pad = [], DataCollatorWithPadding(tok)

    def recording(rows):
        batch = pad(rows)
        padded.append(batch["input_ids"].shape[1])
        return batch

    cache = teacher_logits_for(teacher, ds, recording, get_kind(SST2), batch_size=8)
    assert padded == sorted(padded, reverse=True) and len(padded) == 5 and sorted(cache.rows) == list(range(40))
    with torch.no_grad():
        direct = teacher(**tok(data.train_texts[:40], padding=True, return_tensors="pt")).logits
    assert torch.allclose(cache.get(list(range(40)), 0, "cpu")[0], direct, atol=1e-5)


def test_run_card_records_the_training_device(monkeypatch):
    """A run trained on a GPU must not read as a CPU run (the H200 cards of session 2 said "cpu")."""
    import torch

    from hub.training import base_card

    class Data:
        source = {"kind": "files"}

    assert base_card("student", SST2, Data(), TrainConfig())["hardware"]["device"] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    hw = base_card("student", SST2, Data(), TrainConfig())["hardware"]
    assert hw["device"] == "cuda" and hw["gpu"] == "NVIDIA H200"


def test_teacher_cache_on_disk_is_reused_and_gives_the_same_student(tmp_path, trained_pair, data, tiny_data_dir,
                                                                     monkeypatch):
    """distill(teacher_cache=DIR): the first run computes and stores the teacher's
    logits, a second run on the same teacher and data reads them (no teacher pass)
    and trains the very same student; another training set is another file."""
    import hub.teacher_cache as C
    from safetensors.torch import load_file

    calls = {"cache": 0}
    real = C.teacher_logits_for

    def counting(*a, **k):
        calls["cache"] += 1
        return real(*a, **k)

    monkeypatch.setattr(C, "teacher_logits_for", counting)
    teacher_dir, _ = trained_pair
    store = tmp_path / "store"
    cfg = dict(epochs=1, batch_size=32, learning_rate=1e-3, seed=7)
    cards = [distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), data, str(tmp_path / f"s{i}"),
                     TrainConfig(**cfg), DistillConfig(stages=("prediction",)), teacher_cache=store)
             for i in range(2)]
    assert calls["cache"] == 1
    files = list(store.glob("*.safetensors"))
    assert len(files) == 1 and not list(store.glob(".*tmp"))
    assert [c["teacher_cache"]["reused"] for c in cards] == [False, True]
    assert cards[1]["teacher_cache"]["file"] == str(files[0])
    a, b = (load_file(str(tmp_path / f"s{i}" / "model.safetensors")) for i in range(2))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a different training set (fewer sentences) is a different key: computed again, stored beside
    fewer = load_classification(SST2, data_dir=str(tiny_data_dir), max_train_samples=50)
    distill(SST2, str(teacher_dir), parse_student("teacher-layers:1"), fewer, str(tmp_path / "s2"),
            TrainConfig(**cfg), DistillConfig(stages=("prediction",)), teacher_cache=store)
    assert calls["cache"] == 2 and len(list(store.glob("*.safetensors"))) == 2


def test_teacher_cache_files_round_trip_and_misses(tmp_path, trained_pair, data):
    """Both cache types survive the disk exactly; a damaged file, a file of other
    rows and a key of other weights are misses, never errors."""
    from transformers import DataCollatorWithPadding

    from hub.data import tokenize
    from hub.kinds import get_kind
    from hub.models import load_model, load_tokenizer
    from hub.teacher_cache import TopKLogitCache, cache_key, load_cache, save_cache

    teacher, _ = load_model(str(trained_pair[0]), SST2)
    tok = load_tokenizer(str(trained_pair[0]))
    ds = tokenize(tok, data.train_texts[:12], data.train_labels[:12])
    kind = get_kind(SST2)
    full = teacher_logits_for(teacher, ds, DataCollatorWithPadding(tok), kind, batch_size=5)
    path = tmp_path / f"{cache_key(teacher, ds, kind, 'full')}.safetensors"
    save_cache(full, path)
    back = load_cache(path, ds["idx"])
    assert back.rows.keys() == full.rows.keys() and back.token_level == full.token_level
    assert all(torch.equal(back.rows[i][0], full.rows[i][0]) for i in full.rows)
    assert load_cache(path, list(range(11))) is None  # other rows
    assert load_cache(tmp_path / "absent.safetensors", ds["idx"]) is None

    topk = TopKLogitCache(3)
    topk.put([4, 9], torch.randn(2, 5, 3), torch.randint(0, 100_000, (2, 5, 3)), [5, 2])
    save_cache(topk, tmp_path / "topk.safetensors")
    back = load_cache(tmp_path / "topk.safetensors", [9, 4])
    assert isinstance(back, TopKLogitCache) and back.k == 3
    for i in (4, 9):
        assert all(torch.equal(x, y) for x, y in zip(back.rows[i], topk.rows[i]))

    path.write_bytes(path.read_bytes()[:100])  # damaged (a copy cut short)
    assert load_cache(path, ds["idx"]) is None

    # the key follows the weights and the data
    key = cache_key(teacher, ds, kind, "full")
    assert cache_key(teacher, ds, kind, "top8") != key
    assert cache_key(teacher, ds.select(range(11)), kind, "full") != key
    # the targets are not the teacher's input: other labels, the same logits, the same key; other tokens, another
    flipped = ds.map(lambda ex: {"labels": 1 - ex["labels"]})
    assert flipped["labels"] != ds["labels"] and cache_key(teacher, flipped, kind, "full") == key
    assert cache_key(teacher, ds.map(lambda ex: {"input_ids": ex["input_ids"][:-2] + ex["input_ids"][-1:]}),
                     kind, "full") != key
    # QA windows whose targets differ (--negative-target teacher: -100 on made negatives) share the key
    from datasets import Dataset

    from hub.tasks import TASKS
    qa_kind = get_kind(TASKS["squad"])
    windows = Dataset.from_dict({"idx": [0, 1], "input_ids": [[101, 7, 102], [101, 8, 102]],
                                 "attention_mask": [[1, 1, 1]] * 2, "start_positions": [1, 0], "end_positions": [1, 0]})
    ignored = windows.map(lambda ex: {"start_positions": -100, "end_positions": -100})
    assert cache_key(teacher, ignored, qa_kind, "full") == cache_key(teacher, windows, qa_kind, "full")
    with torch.no_grad():
        next(teacher.parameters()).add_(1e-3)
    assert cache_key(teacher, ds, kind, "full") != key


def test_every_kind_pops_its_target_columns_and_nothing_the_teacher_reads():
    """``target_columns`` (what the cache key leaves out) is what ``split_targets``
    takes out of a batch: a column listed but kept would hide a change of the
    teacher's input from the key; one popped but not listed only costs a miss."""
    from hub.kinds import get_kind
    from hub.tasks import TASKS

    kinds = {task.kind for task in TASKS.values()}
    assert {"classification", "qa", "mlm", "generation", "general"} <= kinds
    for name in sorted(kinds):
        kind = get_kind(name)
        assert kind.target_columns and "input_ids" not in kind.target_columns, name
        batch = {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.ones(2, 4, dtype=torch.long)}
        batch.update({k: torch.zeros(2, dtype=torch.long) for k in kind.target_columns})
        targets = kind.split_targets(batch)
        assert set(batch) == {"input_ids", "attention_mask"}, name
        assert set(targets) <= set(kind.target_columns), name


def test_teacher_cache_write_is_atomic(tmp_path, monkeypatch):
    """A write that dies midway leaves neither a cache file nor its temporary."""
    import safetensors.torch

    from hub.teacher_cache import LogitCache, save_cache

    cache = LogitCache(token_level=False)
    cache.put([0, 1], [torch.randn(2, 2)], [3, 3])

    def dies(tensors, filename, metadata=None):
        open(filename, "wb").write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", dies)
    with pytest.raises(KeyboardInterrupt):
        save_cache(cache, tmp_path / "c.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_teacher_cache_folder_keeps_to_its_budget(tmp_path):
    """Beyond the budget the least recently used cache files go, never the one
    just written and never a file the cache did not name."""
    import os

    from hub.teacher_cache import evict

    names = [f"{i:032x}.safetensors" for i in range(4)]
    for age, name in enumerate(names):
        f = tmp_path / name
        f.write_bytes(b"x" * 100)
        os.utime(f, (1000 + age, 1000 + age))  # names[0] the oldest
    (tmp_path / "mine.safetensors").write_bytes(b"y" * 1000)  # a user's own file in the folder
    os.utime(tmp_path / names[0], (5000, 5000))  # names[0] just reused: now the most recent
    deleted = evict(tmp_path, keep=tmp_path / names[3], budget=250)
    assert [d.name for d in deleted] == [names[1], names[2]]
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([names[0], names[3], "mine.safetensors"])
    assert evict(tmp_path, keep=tmp_path / names[3], budget=0) == [tmp_path / names[0]]


def test_bf16_distillation_runs_in_autocast_and_saves_fp32(tmp_path, trained_pair, tiny_data_dir, monkeypatch):
    """--precision bf16: the student's matmuls run in bf16 (autocast), its weights, the losses and the saved model
    stay fp32, the card and its reproduce command say bf16; a chip without native bf16 gets a warning."""
    import hub.distill as D
    from hub.cli import main
    from hub.reproduce import reproduce_command

    teacher, _ = trained_pair
    seen: dict = {}
    compute = D.DistillTrainer.compute_loss

    def spy(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        hook = model.student.bert.encoder.layer[0].attention.self.query.register_forward_hook(
            lambda m, i, o: seen.setdefault(self.stage, (o.dtype, m.weight.dtype)) and None)
        loss = compute(self, model, inputs, return_outputs, num_items_in_batch)
        hook.remove()
        seen.setdefault("loss_" + self.stage, loss.dtype)
        assert torch.isfinite(loss)
        return loss

    monkeypatch.setattr(D.DistillTrainer, "compute_loss", spy)
    common = ["--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64", "--max-steps", "2",
              "--teacher", str(teacher), "--student", "teacher-layers:2"]
    assert main(["distill", *common, "--precision", "bf16", "--output-dir", str(tmp_path / "b")]) == 0
    assert seen["intermediate"] == (torch.bfloat16, torch.float32) == seen["prediction"]
    assert seen["loss_intermediate"] == torch.float32 == seen["loss_prediction"]
    card = json.loads((tmp_path / "b" / "run.json").read_text())
    assert card["train"]["precision"] == "bf16" and card["status"] == "finished"
    assert "--precision bf16" in reproduce_command(card)
    student = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "b"))
    assert all(p.dtype == torch.float32 for p in student.parameters())
    seen.clear()
    assert main(["distill", *common, "--output-dir", str(tmp_path / "f")]) == 0  # the default stays fp32
    assert seen["prediction"] == (torch.float32, torch.float32)
    assert "--precision" not in reproduce_command(json.loads((tmp_path / "f" / "run.json").read_text()))
    monkeypatch.setattr("hub.training.native_bf16", lambda device: False)
    assert main(["distill", *common, "--precision", "bf16", "--output-dir", str(tmp_path / "e")]) == 0
    assert any("bf16 is emulated" in w for w in json.loads((tmp_path / "e" / "run.json").read_text())["warnings"])


def test_bf16_finetuning_runs_in_autocast(tmp_path, tiny_data_dir, monkeypatch):
    import hub.training as T
    from hub.cli import main

    base = make_tiny_bert(tmp_path / "base")
    seen: list = []
    compute = T._FinetuneTrainer.compute_loss

    def spy(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        layer = model.bert.encoder.layer[0].attention.self.query
        hook = layer.register_forward_hook(lambda m, i, o: seen.append((o.dtype, m.weight.dtype)) and None)
        loss = compute(self, model, inputs, return_outputs, num_items_in_batch)
        hook.remove()
        return loss

    monkeypatch.setattr(T._FinetuneTrainer, "compute_loss", spy)
    assert main(["finetune", "--task", "sst2", "--model", str(base), "--data-dir", str(tiny_data_dir),
                 "--max-train-samples", "64", "--max-steps", "2", "--precision", "bf16",
                 "--output-dir", str(tmp_path / "t")]) == 0
    assert seen and set(seen) == {(torch.bfloat16, torch.float32)}
    assert json.loads((tmp_path / "t" / "run.json").read_text())["train"]["precision"] == "bf16"
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "t"))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_attention_dropout_is_set_for_training_and_the_saved_model_keeps_its_own(tmp_path, trained_pair,
                                                                                 tiny_data_dir, monkeypatch):
    """--attention-dropout 0: the student trains without dropout on its attention probabilities (so the fused SDPA
    kernel runs in the prediction stage, the intermediate stage keeping eager attention for its maps), the saved
    config keeps the architecture's 0.1, and the card and its reproduce command carry the flag."""
    import hub.distill as D
    from hub.cli import main
    from hub.reproduce import reproduce_command

    teacher, _ = trained_pair
    seen: dict = {}
    compute = D.DistillTrainer.compute_loss

    def spy(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        attn = model.student.bert.encoder.layer[0].attention.self
        seen[self.stage] = (attn.dropout.p, model.student.config._attn_implementation, self.teacher.config._attn_implementation)
        return compute(self, model, inputs, return_outputs, num_items_in_batch)

    monkeypatch.setattr(D.DistillTrainer, "compute_loss", spy)
    assert main(["distill", "--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64",
                 "--max-steps", "2", "--teacher", str(teacher), "--student", "teacher-layers:2",
                 "--attention-dropout", "0", "--output-dir", str(tmp_path / "s")]) == 0
    assert seen == {"intermediate": (0.0, "eager", "eager"), "prediction": (0.0, "sdpa", "sdpa")}
    card = json.loads((tmp_path / "s" / "run.json").read_text())
    assert card["train"]["attention_dropout"] == 0.0 and "--attention-dropout 0" in reproduce_command(card)
    assert card["attention"] == {"intermediate": {"student": "eager", "teacher": "eager"},
                                 "prediction": {"student": "sdpa", "teacher": "sdpa"}}
    assert json.loads((tmp_path / "s" / "config.json").read_text())["attention_probs_dropout_prob"] == 0.1
    seen.clear()
    assert main(["distill", "--task", "sst2", "--data-dir", str(tiny_data_dir), "--max-train-samples", "64",
                 "--max-steps", "2", "--teacher", str(teacher), "--student", "teacher-layers:2", "--stages",
                 "prediction", "--output-dir", str(tmp_path / "d")]) == 0
    assert seen == {"prediction": (0.1, "sdpa", "sdpa")}  # by default the model's own dropout
    assert "--attention-dropout" not in reproduce_command(json.loads((tmp_path / "d" / "run.json").read_text()))


def test_set_attention_dropout_covers_bert_distilbert_gpt2_and_llama():
    from transformers import (AlbertConfig, AlbertModel, BertConfig, BertModel, DistilBertConfig, DistilBertModel,
                              GPT2Config, GPT2Model, LlamaConfig, LlamaModel)

    from hub.models import set_attention_dropout

    small = dict(vocab_size=64)
    models = [BertModel(BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, **small)),
              DistilBertModel(DistilBertConfig(dim=16, n_layers=2, n_heads=2, hidden_dim=32, **small)),
              GPT2Model(GPT2Config(n_embd=16, n_layer=2, n_head=2, **small)),
              LlamaModel(LlamaConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                                     **small)),
              AlbertModel(AlbertConfig(embedding_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=32, **small))]
    for model in models[:4]:
        before = model.config.to_dict()
        assert set_attention_dropout(model, 0.25) == 2, type(model).__name__
        assert model.config.to_dict() == before  # the saved model keeps its own value
    assert models[0].encoder.layer[1].attention.self.dropout.p == 0.25
    assert models[2].h[0].attn.attn_dropout.p == 0.25 and models[3].layers[0].self_attn.attention_dropout == 0.25
    assert set_attention_dropout(models[4], 0.0) == 1  # ALBERT shares one layer's weights (and modules)
    assert models[4].encoder.albert_layer_groups[0].albert_layers[0].attention.attention_dropout.p == 0.0
    with pytest.raises(ValueError, match="no attention dropout"):
        set_attention_dropout(torch.nn.Sequential(torch.nn.Linear(2, 2)), 0.0)


def test_teacher_scores_are_read_from_its_card_however_the_eval_file_is_spelled(tmp_path, trained_pair,
                                                                               tiny_data_dir, monkeypatch):
    """The teacher's card names the eval file one way (absolute), the distillation another (relative): one file,
    so its recorded scores are used and the teacher is not evaluated again."""
    teacher, _ = trained_pair
    recorded = json.loads((teacher / "run.json").read_text())
    assert Path(recorded["data"]["eval_file"]).is_absolute()
    monkeypatch.chdir(tiny_data_dir.parent)
    relative = load_classification(SST2, data_dir=tiny_data_dir.name)
    assert not Path(relative.source["eval_file"]).is_absolute()
    events: list = []
    card = distill(SST2, str(teacher), parse_student("teacher-layers:2"), relative, str(tmp_path / "s"),
                   TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, max_steps=1), progress=events.append)
    assert "evaluate-teacher" not in {e["stage"] for e in events}
    assert card["eval"]["teacher"]["accuracy"] == recorded["eval"]["model"]["accuracy"]


def test_native_bf16_asks_for_the_bf16_instructions_not_any_avx512(monkeypatch):
    """An AVX512 CPU without AVX512-BF16 or AMX (Skylake to Ice Lake) emulates bf16: not native (oneDNN's own
    check says yes there)."""
    from hub.hardware import native_bf16

    for avx512_bf16, amx, native in ((False, False, False), (True, False, True), (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
        assert native_bf16("cpu") is native
    assert native_bf16("mps") is False


def test_finetune_resume_refuses_another_learning_rate_from_the_cli(tmp_path, tiny_data_dir, capsys):
    from hub.cli import main

    base = make_tiny_bert(tmp_path / "base")
    out = tmp_path / "t"
    args = ["finetune", "--task", "sst2", "--model", str(base), "--data-dir", str(tiny_data_dir),
            "--max-train-samples", "64", "--max-steps", "2", "--output-dir", str(out)]
    assert main([*args, "--learning-rate", "1e-4"]) == 0
    capsys.readouterr()
    assert main([*args, "--learning-rate", "3e-4", "--resume"]) != 0
    err = capsys.readouterr().err
    assert "learning_rate 0.0001 then, 0.0003 now" in err and "--overwrite" in err
    assert json.loads((out / "run.json").read_text())["train"]["learning_rate"] == 1e-4


def test_resume_compares_the_data_source_on_what_both_cards_record(tmp_path):
    """A packed-text run adds its block and token counts to the card's data as it goes: a resumed run, whose
    card is built before packing, is not refused for lacking them; another training file is."""
    from hub.runs import write_card
    from hub.training import check_resume

    train = {"epochs": 1.0, "learning_rate": 1e-4, "precision": "fp32", "attention_dropout": None}
    source = {"kind": "files", "train_file": "valid.txt", "eval_file": "test.txt", "block_size": 128}
    write_card(tmp_path, {"task": "mlm", "train": train, "data": {**source, "train_blocks": 9, "eval_tokens": 99}})
    check_resume(tmp_path, {"task": "mlm", "train": train, "data": dict(source)})
    with pytest.raises(ValueError, match=r"data.train_file 'valid.txt' then, 'other.txt' now"):
        check_resume(tmp_path, {"task": "mlm", "train": train, "data": {**source, "train_file": "other.txt"}})
