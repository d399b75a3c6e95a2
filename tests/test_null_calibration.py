"""Calibrating a QA student's null-answer threshold to its teacher (hub/null_calibration.py,
``python -m hub calibrate-null``) on the synthetic colour data of test_qa_kind: the
hand-built oracle is the teacher, and a copy of it whose "no answer" logit is three
times too large is the student (at threshold 0 it declines every question)."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
import torch

import hub.null_calibration as calibration
from hub.data import DataError
from hub.null_calibration import OTHER, agreement_threshold, unanswerable_pairs
from test_qa_kind import KIND, MAX_LENGTH, make_examples, make_oracle, write_squad


def test_doctests():
    result = doctest.testmod(calibration)
    assert result.failed == 0 and result.attempted >= 5


@pytest.fixture(scope="module")
def oracles(tmp_path_factory) -> tuple[Path, Path]:
    """The oracle (teacher) and the over-confident "no answer" student, both recording MAX_LENGTH."""
    from transformers import BertForQuestionAnswering

    root = tmp_path_factory.mktemp("calibration")
    teacher = make_oracle(root / "teacher")
    student = make_oracle(root / "student")
    model = BertForQuestionAnswering.from_pretrained(str(student))
    with torch.no_grad():
        model.qa_outputs.weight[:, 4:6] *= 3  # the CLS direction: null score x3
    model.save_pretrained(str(student))
    for folder in (teacher, student):
        (folder / "run.json").write_text(json.dumps({"task": "squad", "train": {"max_length": MAX_LENGTH}}))
    return teacher, student


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibration_data")
    write_squad(root / "squad" / "xquad-en-train.json", make_examples(40, seed=3, prefix="tr"))
    write_squad(root / "squad" / "dev-subset-v2.0.json", make_examples(30, seed=4, prefix="ev"))
    return root


def test_unanswerable_pairs_take_another_articles_paragraph():
    ex = [{"id": str(i), "title": t, "context": f"{t}{i}", "question": f"q{i}"}
          for i, t in enumerate(["A", "A", "B", "C"])]
    pairs = unanswerable_pairs(ex)
    assert [p["context"] for p in pairs] == ["B2", "B2", "C3", "A1"]  # question i takes paragraph i mod n
    assert all(p["id"].endswith(OTHER) and p["is_impossible"] and not p["answers"]["text"] for p in pairs)
    assert [p["question"] for p in pairs] == ["q0", "q1", "q2", "q3"]
    # one title for all: each paragraph is its own article
    same = [{**e, "title": "t"} for e in ex]
    assert [p["context"] for p in unanswerable_pairs(same)] == ["A1", "B2", "C3", "A0"]
    with pytest.raises(DataError, match="at least two articles"):
        unanswerable_pairs([{"id": "1", "title": "A", "context": "c", "question": "q"}] * 2)


def test_agreement_threshold_edges():
    # the reference says "no answer" everywhere: any threshold below every margin (0 is one; from 5: 1 below the lowest)
    r = agreement_threshold([2.0, 3.0], [True, True])
    assert r["threshold"] == 0.0 and r["agreement"] == 1.0 and r["agreement_at_prefer"] == 1.0
    r = agreement_threshold([2.0, 3.0], [True, True], prefer=5.0)
    assert r["threshold"] == 1.0 and r["agreement_at_prefer"] == 0.0 and r["null_rate"] == 1.0
    # never "no answer": above the highest margin; no span (inf) is "no answer" at any threshold
    r = agreement_threshold([-2.0, 7.0, math.inf], [False, False, True], prefer=1.0)
    assert r["threshold"] == 8.0 and r["agreement"] == 1.0 and r["null_rate"] == pytest.approx(1 / 3)
    assert r["reference_null_rate"] == pytest.approx(1 / 3) and r["n"] == 3
    # equal margins decide together
    r = agreement_threshold([1.0, 1.0, 1.0], [True, False, True])
    assert r["agreement"] == pytest.approx(2 / 3) and r["threshold"] == 0.0
    # a margin equal to the threshold answers (no answer only when margin > threshold)
    assert agreement_threshold([0.0], [False])["threshold"] == 0.0
    assert agreement_threshold([0.0], [True])["threshold"] == -1.0
    # two equally good stretches, [-3, -1) and [0.5, 1000): the one nearer 0 wins, at its middle
    r = agreement_threshold([-3.0, -1.0, 0.5, 1000.0], [False, True, False, True])
    assert r["agreement"] == 0.75 and r["threshold"] == pytest.approx(500.25)
    with pytest.raises(ValueError, match="must be finite"):
        agreement_threshold([1.0], [True], prefer=math.nan)
    with pytest.raises(ValueError, match="no calibration pairs"):
        agreement_threshold([], [])
    with pytest.raises(ValueError, match="2 margins against 1"):
        agreement_threshold([1.0, 2.0], [True])


def test_calibrate_null_moves_an_over_confident_student_to_agree(oracles, data_dir):
    from hub.kinds.qa_data import read_examples
    from hub.models import load_model, load_tokenizer
    from hub.tasks import get_task

    teacher_dir, student_dir = oracles
    task = get_task("squad")
    (teacher, _), (student, _) = load_model(str(teacher_dir), task), load_model(str(student_dir), task)
    questions = read_examples(str(data_dir / "squad" / "xquad-en-train.json"))
    r = calibration.calibrate_null(KIND, teacher, load_tokenizer(str(teacher_dir)), student,
                                   load_tokenizer(str(student_dir)), questions, teacher_length=MAX_LENGTH,
                                   student_length=MAX_LENGTH)
    assert r["questions"] == 40 and r["pairs"] == 80 and r["n"] == 80
    # the teacher declines where a paragraph holds no colour (its margin +16, else -16); the student's null
    # score is 48, its margins 48 - 0 and 48 - 32: at 0 it declines everything, from 16 to 48 it agrees
    own, other = r["own_paragraph"], r["other_article"]
    none = sum(not q["answers"]["text"] for q in questions) / 40
    assert 0 < none < 1 and own["teacher_null_rate"] == pytest.approx(none)
    assert own["student_null_rate_before"] == 1.0 and other["student_null_rate_before"] == 1.0
    assert own["student_null_rate_after"] == pytest.approx(none) and own["agreement_after"] == 1.0
    assert 0 < other["teacher_null_rate"] < 1 and other["agreement_after"] == 1.0
    assert r["agreement"] == 1.0 and r["agreement_at_prefer"] < 1.0
    assert r["threshold"] == pytest.approx(32.0, abs=0.5)  # the middle of the stretch that agrees
    assert r["student_threshold_before"] == 0.0 and r["teacher_threshold"] == 0.0


def test_cli_calibrate_null_then_evaluate_with_it(oracles, data_dir, capsys):
    from hub.cli import main

    teacher_dir, student_dir = oracles
    base = ["--task", "squad", "--model", str(student_dir), "--data-dir", str(data_dir)]
    assert main(["evaluate", *base]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["HasAns_f1"] == 0.0  # declines everything at 0
    assert main(["calibrate-null", "--teacher", str(teacher_dir), *base]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["agreement"] == 1.0 and out["questions"] == 40 and "--null-threshold" in captured.err
    assert out["calibration_data"].endswith("xquad-en-train.json")
    assert main(["calibrate-null", "--teacher", str(teacher_dir), *base, "--max-train-samples", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["questions"] == 10
    assert main(["evaluate", *base, "--null-threshold", str(out["threshold"])]) == 0
    after = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--task", "squad", "--model", str(teacher_dir), "--data-dir", str(data_dir)]) == 0
    reference = json.loads(capsys.readouterr().out)
    assert after["f1"] == pytest.approx(reference["f1"]) and after["HasAns_f1"] == 100.0


def test_cli_calibrate_null_refusals(oracles, data_dir, tmp_path, capsys):
    from hub.cli import main

    teacher_dir, student_dir = oracles
    code = main(["calibrate-null", "--task", "sst2", "--teacher", str(teacher_dir), "--model", str(student_dir),
                 "--data-dir", str(data_dir)])
    assert code == 2 and "task sst2 has no null answer" in capsys.readouterr().err
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(teacher_dir), "--model", str(student_dir)])
    assert code == 2 and "one source of calibration questions" in capsys.readouterr().err
    one = write_squad(tmp_path / "one.json", make_examples(1, seed=5, prefix="x", unanswerable=0.0))
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(teacher_dir), "--model", str(student_dir),
                 "--train-file", str(one)])
    assert code == 2 and "at least two articles" in capsys.readouterr().err
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(tmp_path / "missing"), "--model",
                 str(student_dir), "--data-dir", str(data_dir)])
    assert code == 2 and "no model folder at" in capsys.readouterr().err
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(tmp_path / "missing"), "--model",
                 str(student_dir), "--data-dir", str(data_dir), "--max-train-samples", "0"])
    assert code == 2 and "no training questions left" in capsys.readouterr().err  # before any model is loaded


def _finished_copy(student_dir: Path, folder: Path, eval_file: Path, evaluated: dict, teacher: dict) -> Path:
    """The over-confident student as a finished run of this hub, scored at threshold 0."""
    import shutil

    shutil.copytree(student_dir, folder)
    card = {"kind": "student", "task": "squad", "status": "finished", "train": {"max_length": MAX_LENGTH},
            "stages": ["prediction"], "temperature": 1.0, "alpha": 0.5, "teacher": "oracle",
            "data": {"kind": "files", "eval_file": str(eval_file), "eval_size": evaluated["eval_size"]},
            "eval": {"student": evaluated, "teacher": teacher, "headline": "f1",
                     "retention": evaluated["f1"] / teacher["f1"]}}
    (folder / "run.json").write_text(json.dumps(card))
    return folder


def test_cli_calibrate_null_apply_records_the_threshold_and_scores_again(oracles, data_dir, tmp_path, capsys):
    """``--apply``: the threshold goes into the run card (evaluate then uses it with no flag), the
    recorded scores are redone on the card's evaluation set (the old ones kept aside), the
    retention recomputed, the model card says how; a card whose set is gone is left unscored."""
    from hub.cli import main

    teacher_dir, student_dir = oracles
    dev = data_dir / "squad" / "dev-subset-v2.0.json"
    scored = []
    for model in (teacher_dir, student_dir):
        assert main(["evaluate", "--task", "squad", "--model", str(model), "--data-dir", str(data_dir)]) == 0
        scored.append(json.loads(capsys.readouterr().out))
    teacher, before = ({k: v for k, v in s.items() if k not in ("model", "task")} for s in scored)
    student = _finished_copy(student_dir, tmp_path / "student", dev, before, teacher)
    base = ["calibrate-null", "--task", "squad", "--teacher", str(teacher_dir), "--data-dir", str(data_dir)]
    assert main([*base, "--model", str(student), "--apply"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert "recorded in" in captured.err
    card = json.loads((student / "run.json").read_text())
    assert card["eval_options"]["null_threshold"] == out["threshold"]
    assert card["null_calibration"]["agreement"] == 1.0 and card["null_calibration"]["before"] == 0.0
    assert card["eval_before_calibration"]["student"]["HasAns_f1"] == 0.0
    assert card["eval"]["student"]["f1"] == pytest.approx(teacher["f1"]) == out["eval"]["student"]["f1"]
    assert card["eval"]["student"]["null_threshold"] == out["threshold"] and card["eval"]["retention"] == 1.0
    assert "calibrated so that" in (student / "README.md").read_text()
    assert main(["evaluate", "--task", "squad", "--model", str(student), "--data-dir", str(data_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(teacher["f1"])  # the card's threshold
    assert "calibrate-null --task squad --teacher teacher --model" in (student / "README.md").read_text()
    # a second calibration (the threshold is already the agreeing one): the uncalibrated scores stay aside
    assert main([*base, "--model", str(student), "--apply"]) == 0
    capsys.readouterr()
    again = json.loads((student / "run.json").read_text())
    assert again["eval_before_calibration"]["student"]["HasAns_f1"] == 0.0
    assert again["null_calibration"]["before"] == out["threshold"]
    # its evaluation file gone: refused before any model is loaded, the card untouched (its scores kept)
    gone = _finished_copy(student_dir, tmp_path / "gone", tmp_path / "moved.json", before, teacher)
    kept = (gone / "run.json").read_text()
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(tmp_path / "missing"), "--model", str(gone),
                 "--data-dir", str(data_dir), "--apply"])
    assert code == 2 and "not found from here" in capsys.readouterr().err
    assert (gone / "run.json").read_text() == kept
    # its evaluation set a Hub data set that cannot be read here (offline): refused before the calibration
    hub_card = json.loads((gone / "run.json").read_text())
    hub_card["data"] = {"kind": "hub", "dataset": "squad_v2", "eval_size": before["eval_size"]}
    (gone / "run.json").write_text(json.dumps(hub_card))
    kept = (gone / "run.json").read_text()
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(tmp_path / "missing"), "--model", str(gone),
                 "--data-dir", str(data_dir), "--apply"])
    assert code == 2 and "cannot be read here" in capsys.readouterr().err
    assert (gone / "run.json").read_text() == kept
    # only a finished run of this hub records one, refused before any model is loaded
    running = _finished_copy(student_dir, tmp_path / "running", dev, before, teacher)
    (running / "run.json").write_text(json.dumps({"task": "squad", "status": "running"}))
    code = main(["calibrate-null", "--task", "squad", "--teacher", str(tmp_path / "missing"), "--model",
                 str(running), "--data-dir", str(data_dir), "--apply"])
    assert code == 2 and "status 'running'" in capsys.readouterr().err


def test_distill_calibrate_null_scores_the_student_at_its_calibrated_threshold(oracles, data_dir, tmp_path, capsys):
    """``distill --calibrate-null``: after training, the student's threshold is calibrated on the
    real training questions (a cloze file's made ones left out), recorded as its own, and the
    student (not the teacher) is scored at it — the same threshold ``calibrate-null`` then finds
    for it; the recipe's command repeats the flag. Refused before training where it cannot run."""
    from hub.cli import main
    from hub.reproduce import reproduce_command
    from hub.squad import squad_document

    teacher_dir, _ = oracles
    real = make_examples(40, seed=3, prefix="tr")
    made = [{**ex, "id": f"{ex['id']}-cloze", "synthetic": "cloze"} for ex in make_examples(12, seed=6, prefix="cz")]
    train = tmp_path / "transfer.json"
    train.write_text(json.dumps(squad_document([*real, *made], extra=("synthetic",))))
    dev = data_dir / "squad" / "dev-subset-v2.0.json"
    out = tmp_path / "student"
    base = ["distill", "--task", "squad", "--teacher", str(teacher_dir), "--student", "teacher-layers:1",
            "--train-file", str(train), "--eval-file", str(dev), "--stages", "prediction", "--max-steps", "2",
            "--batch-size", "8", "--max-length", str(MAX_LENGTH)]
    assert main([*base, "--output-dir", str(out), "--calibrate-null"]) == 0
    printed = json.loads(capsys.readouterr().out)
    card = json.loads((out / "run.json").read_text())
    c = card["null_calibration"]
    assert c["how"] == "distill" and c["questions"] == 40 and c["pairs"] == 80  # the 12 cloze questions left out
    assert c["calibration_data"] == str(train) and c["teacher_threshold"] == 0.0 and c["before"] == 0.0
    assert card["eval_options"]["null_threshold"] == c["threshold"] == printed["null_calibration"]["threshold"]
    assert card["eval"]["student"]["null_threshold"] == c["threshold"]  # scored at it
    assert card["eval"]["teacher"]["null_threshold"] == 0.0  # the teacher at its own
    assert card["status"] == "finished" and "--calibrate-null" in reproduce_command(card)
    readme = (out / "README.md").read_text()
    assert "distill ... --calibrate-null" in readme and "calibrate-null --task" not in readme
    # the same calibration from the command (the student's recorded threshold is now its starting point)
    assert main(["calibrate-null", "--task", "squad", "--teacher", str(teacher_dir), "--model", str(out),
                 "--train-file", str(train)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["questions"] == 40 and again["threshold"] == pytest.approx(c["threshold"])
    assert again["agreement"] == pytest.approx(c["agreement"])
    # refused before training: a threshold given too, another task, questions of one article; --overwrite
    # never empties the folder of a run before the refusal
    kept = (out / "run.json").read_text()
    assert main([*base, "--output-dir", str(out), "--overwrite", "--calibrate-null", "--null-threshold", "1"]) == 2
    assert "without --null-threshold" in capsys.readouterr().err and (out / "run.json").read_text() == kept
    sst2 = ["distill", "--task", "sst2", "--teacher", str(teacher_dir), "--data-dir", str(data_dir)]
    assert main([*sst2, "--output-dir", str(tmp_path / "x"), "--calibrate-null"]) == 2
    assert "task sst2 has no null answer" in capsys.readouterr().err and not (tmp_path / "x").exists()
    one = write_squad(tmp_path / "one.json", [{**ex, "title": "same"} for ex in make_examples(1, seed=5, prefix="o",
                                                                                             unanswerable=0.0)])
    code = main(["distill", "--task", "squad", "--teacher", str(teacher_dir), "--student", "teacher-layers:1",
                 "--train-file", str(one), "--eval-file", str(dev), "--stages", "prediction", "--max-steps", "1",
                 "--output-dir", str(out), "--overwrite", "--calibrate-null"])
    assert code == 2 and "at least two articles" in capsys.readouterr().err
    assert (out / "run.json").read_text() == kept


def test_a_qa_job_calibrates_its_student_when_asked(oracles, data_dir, hub_home, tmp_path, monkeypatch):
    """The Distill tab's "calibrate no answer" box (job parameter ``calibrate_null``): the job's
    student is calibrated after training, a phase of its own over the pairs, scored at its
    threshold; the estimate counts the phase; other tasks refuse it."""
    import threading

    from hub import jobs
    from hub.jobs import pipeline
    from hub.jobs.runner import JobContext
    from hub.paths import models_dir

    teacher_dir, _ = oracles
    raw = {"task": "squad", "teacher": str(teacher_dir), "data": {"data_dir": str(data_dir)},
           "student": "teacher-layers:1", "train_samples": 20, "eval_samples": 16, "stages": ["prediction"],
           "max_steps": 2, "batch_size": 8, "max_length": MAX_LENGTH, "calibrate_null": True, "benchmark": False}
    params = jobs.validate_params(raw)
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "x", "name": "calibrated", "params": params}, threading.Event())
    result = pipeline.run_job(ctx)
    ctx.close()
    assert result["status"] == "finished"
    card = json.loads((Path(result["student"]["path"]) / "run.json").read_text())
    assert card["null_calibration"]["how"] == "distill" and card["null_calibration"]["questions"] == 20
    assert card["eval"]["student"]["null_threshold"] == card["eval_options"]["null_threshold"]
    assert ctx.phases["calibrate"]["examples"] == 40 and "calibrating the student's null threshold" in \
        (folder / "log.txt").read_text()
    est = {**raw, "teacher": "minilm-l6", "data": None}
    with_it, without = jobs.estimate(est, teacher_trained=True), jobs.estimate({**est, "calibrate_null": False},
                                                                               teacher_trained=True)
    assert "calibrate" in with_it["phases"] and "calibrate" not in without["phases"]
    with pytest.raises(jobs.ParamsError, match="task sst2 is classification"):
        jobs.validate_params({**raw, "task": "sst2", "data": None, "teacher": "minilm-l6"})
    # questions of one article: refused before any training (the distillation never starts)
    from conftest import run_job_without_training

    one = tmp_path / "one"
    write_squad(one / "squad" / "xquad-en-train.json", make_examples(3, seed=5, prefix="o", unanswerable=0.0)[:1])
    write_squad(one / "squad" / "dev-subset-v2.0.json", make_examples(20, seed=4, prefix="ev"))
    with pytest.raises(DataError, match="at least two articles"):
        run_job_without_training(monkeypatch, jobs.validate_params({**raw, "data": {"data_dir": str(one)}}),
                                 tmp_path / "refused", "f1")
    assert "distilling into" not in (tmp_path / "refused" / "log.txt").read_text()
    assert not (models_dir() / "refused").exists()


def test_a_soup_job_scores_the_soup_at_its_own_threshold_not_a_calibrated_ingredients(oracles, data_dir, hub_home,
                                                                                         tmp_path, capsys):
    """A soup's weights are not its first ingredient's: a threshold calibrated to that ingredient
    is neither recorded for the soup nor used to score it (the app's "Average students")."""
    import threading

    from hub import jobs
    from hub.cli import main
    from hub.jobs.runner import JobContext
    from hub.jobs.soup_job import run_soup
    from hub.paths import models_dir

    teacher_dir, student_dir = oracles
    dev = data_dir / "squad" / "dev-subset-v2.0.json"
    assert main(["evaluate", "--task", "squad", "--model", str(student_dir), "--data-dir", str(data_dir)]) == 0
    before = {k: v for k, v in json.loads(capsys.readouterr().out).items() if k not in ("model", "task")}
    keys = []
    for name in ("calibrated", "plain"):
        (models_dir() / name).mkdir(parents=True)
        folder = _finished_copy(student_dir, models_dir() / name / "student", dev, before, before)
        keys.append(f"{name}/student")
    card = json.loads((models_dir() / "calibrated" / "student" / "run.json").read_text())
    card.update(eval_options={"null_threshold": 32.0}, null_calibration={"threshold": 32.0, "teacher": "t"})
    (models_dir() / "calibrated" / "student" / "run.json").write_text(json.dumps(card))
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "s", "name": "soup", "params": {"task": "squad", "models": keys,
                                                                    "benchmark": False}}, threading.Event())
    result = run_soup(ctx)
    ctx.close()
    soup = json.loads((models_dir() / "soup" / "student" / "run.json").read_text())
    assert result["status"] == "finished" and "eval_options" not in soup and "null_calibration" not in soup
    # two copies of the over-confident student: at the default threshold it declines every question
    assert soup["eval"]["student"]["null_threshold"] == 0.0 and soup["eval"]["student"]["HasAns_f1"] == 0.0
    # "calibrate no answer": the soup's own threshold from its students' teacher and training questions,
    # recorded, and the soup scored again at it (it now answers as the teacher does)
    train = data_dir / "squad" / "xquad-en-train.json"
    for key in keys:
        path = models_dir() / key / "run.json"
        card = json.loads(path.read_text())
        # as a job records its data: the students trained on the first 30 of the file's 40 questions
        card["teacher"], card["data"]["train_file"], card["data"]["train_size"] = str(teacher_dir), str(train), 30
        path.write_text(json.dumps(card))
    jobs.soup_job.check_calibration("squad", keys)  # the page's check before queueing
    guess = jobs.soup_estimate({"task": "squad", "models": keys, "calibrate_null": True})
    assert guess["phases"]["calibrate"]["seconds"] == round(60 / 51.0, 1)  # each question twice, default QA rate
    folder = tmp_path / "job2"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "c", "name": "calibrated-soup", "params": {
        "task": "squad", "models": keys, "benchmark": False, "calibrate_null": True}}, threading.Event())
    result = run_soup(ctx)
    ctx.close()
    soup = json.loads((models_dir() / "calibrated-soup" / "student" / "run.json").read_text())
    c = soup["null_calibration"]
    assert result["status"] == "finished" and c["questions"] == 30 and c["agreement"] == 1.0  # those it trained on
    assert soup["eval_options"]["null_threshold"] == c["threshold"] == soup["eval"]["student"]["null_threshold"]
    assert soup["eval_before_calibration"]["student"]["HasAns_f1"] == 0.0
    assert main(["evaluate", "--task", "squad", "--model", str(teacher_dir), "--data-dir", str(data_dir)]) == 0
    assert soup["eval"]["student"]["f1"] == pytest.approx(json.loads(capsys.readouterr().out)["f1"])  # the teacher's
    assert soup["eval"]["student"]["HasAns_f1"] == 100.0 and ctx.phases["calibrate"]["examples"] == 60
    assert "null threshold" in (folder / "log.txt").read_text() and result["calibration"].startswith("threshold")
    readme = (models_dir() / "calibrated-soup" / "student" / "README.md").read_text()
    assert "--train-file xquad-en-train.json --max-train-samples 30 --apply" in readme  # the questions it used
    # refused before queueing: training data not found here
    card = json.loads((models_dir() / keys[0] / "run.json").read_text())
    card["data"]["train_file"] = str(tmp_path / "moved.json")
    (models_dir() / keys[0] / "run.json").write_text(json.dumps(card))
    with pytest.raises(DataError, match="training data is not found"):
        jobs.soup_job.check_calibration("squad", keys)


def test_the_model_cards_calibration_command_names_its_questions():
    """The Reproduce line of a calibrated model: a file by name, a Hub data set with its config,
    the number of questions read; a card from before sources were recorded names its file."""
    from hub.model_card import _calibration_command

    base = {"task": "squad", "null_calibration": {"teacher": "/x/teacher", "calibration_data": "/d/train.json"}}
    assert _calibration_command(base, "S") == [
        "python -m hub calibrate-null --task squad --teacher teacher --model S --train-file train.json --apply"]
    hub = {**base, "null_calibration": {**base["null_calibration"], "source": {
        "dataset": "squad_v2", "dataset_config": "plain", "max_train_samples": 500}}}
    assert _calibration_command(hub, "S")[0].endswith(
        "--model S --dataset squad_v2 --dataset-config plain --max-train-samples 500 --apply")
    assert _calibration_command({**base, "null_calibration": {**base["null_calibration"], "how": "distill"}}, "S") == []


def test_a_failed_calibration_keeps_the_trained_student_and_says_so(oracles, data_dir, tmp_path, capsys, monkeypatch):
    """The calibration runs after training: when it fails the student is kept, finished and scored at
    the threshold it had, with a warning in its card and output."""
    import hub.null_calibration
    from hub.cli import main

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(hub.null_calibration, "calibrate_null", broken)
    teacher_dir, _ = oracles
    out = tmp_path / "student"
    assert main(["distill", "--task", "squad", "--teacher", str(teacher_dir), "--student", "teacher-layers:1",
                 "--data-dir", str(data_dir), "--stages", "prediction", "--max-steps", "1", "--batch-size", "8",
                 "--max-length", str(MAX_LENGTH), "--output-dir", str(out), "--calibrate-null"]) == 0
    printed = json.loads(capsys.readouterr().out)
    card = json.loads((out / "run.json").read_text())
    assert card["status"] == "finished" and "null_calibration" not in card and "eval_options" not in card
    assert card["eval"]["student"]["null_threshold"] == 0.0 and (out / "model.safetensors").is_file()
    assert any("calibration failed (RuntimeError: out of memory)" in w for w in printed["warnings"])
