"""Greedy model soups (hub/soup_select.py, ``python -m hub soup --greedy``): the ingredients are
ranked on held-out data, and one that pulls the soup down is left out. On the synthetic colour
QA data of test_qa_kind, with the hand-built oracle as the teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub.cli import main
from hub.kinds import get_kind
from hub.soup_select import fidelity, greedy_select
from test_qa_kind import KIND, MAX_LENGTH, make_examples, make_oracle, write_squad


def _weights(folder: Path, w: float) -> Path:
    folder.mkdir(parents=True)
    save_file({"w": torch.tensor([w])}, str(folder / "model.safetensors"))
    return folder


def test_greedy_select_ranks_alone_and_leaves_out_what_pulls_the_soup_down(tmp_path):
    folders = [_weights(tmp_path / n, w) for n, w in (("far", 5.0), ("high", 1.5), ("low", 0.5))]
    seen = []

    def score(state):  # best at w = 1
        seen.append(float(state["w"]))
        return -abs(float(state["w"]) - 1.0)

    chosen, records = greedy_select(folders, score)
    assert chosen == [tmp_path / "high", tmp_path / "low"]  # tie alone (0.5 off): the order given
    assert [(Path(r["path"]).name, r["rank"], r["kept"]) for r in records] == [
        ("high", 1, True), ("low", 2, True), ("far", 3, False)]
    assert records[1]["soup_score"] == pytest.approx(0.0) and records[2]["soup_score"] == pytest.approx(-(7 / 3 - 1))
    assert seen[:3] == [5.0, 1.5, 0.5]  # alone first, then the soups
    with pytest.raises(ValueError, match="at least two"):
        greedy_select(folders[:1], score)


def test_fidelity_is_graded_for_answers_and_a_share_for_labels():
    assert fidelity(KIND, ["red car", "", "blue"], ["red", "", "green"]) == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)
    assert fidelity(get_kind("classification"), [0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(75.0)


@pytest.fixture(scope="module")
def qa_soup_setup(tmp_path_factory):
    """The oracle teacher; three "students" from one start: the oracle, the oracle with its answer
    head scaled 1.5 (the same answers) and with its head times -3 (wrong answers; averaged with the
    other two, a negative head); a selection file and an evaluation file."""
    from transformers import BertForQuestionAnswering

    root = tmp_path_factory.mktemp("greedy")
    teacher = make_oracle(root / "teacher")
    students = {}
    for name, factor in (("negated", -3.0), ("oracle", 1.0), ("scaled", 1.5)):
        folder = make_oracle(root / name)
        model = BertForQuestionAnswering.from_pretrained(str(folder))
        with torch.no_grad():
            model.qa_outputs.weight *= factor
        model.save_pretrained(str(folder))
        (folder / "run.json").write_text(json.dumps({
            "kind": "student", "task": "squad", "status": "finished", "teacher": str(teacher),
            "student": {"spec": "teacher-layers:1"}, "train": {"max_length": MAX_LENGTH, "seed": len(students)}}))
        students[name] = folder
    select = write_squad(root / "select.json", make_examples(30, seed=7, prefix="se"))
    evaluation = write_squad(root / "dev.json", make_examples(30, seed=8, prefix="ev"))
    return root, teacher, students, select, evaluation


def _soup(students, out, *extra):
    args = ["soup", "--task", "squad", "--output-dir", str(out)]
    for name in ("negated", "oracle", "scaled"):
        args += ["--model", str(students[name])]
    return main([*args, *extra])


@pytest.mark.parametrize("against_teacher", [True, False])
def test_greedy_soup_leaves_out_the_student_that_ruins_it(qa_soup_setup, tmp_path, capsys, against_teacher):
    root, teacher, students, select, evaluation = qa_soup_setup
    out = tmp_path / "soup"
    teacher_flags = ["--teacher", str(teacher)] if against_teacher else []
    assert _soup(students, out, "--greedy", "--select-file", str(select), *teacher_flags,
                 "--eval-file", str(evaluation)) == 0
    printed = json.loads(capsys.readouterr().out)
    card = json.loads((out / "run.json").read_text())
    assert [Path(i["path"]).name for i in card["soup"]["ingredients"]] == ["oracle", "scaled"]
    selection = card["soup"]["selection"]
    assert selection["data"] == str(select.resolve()) and selection["size"] == 30
    assert selection["teacher"] == (str(teacher) if against_teacher else None)
    records = {Path(r["path"]).name: r for r in selection["ingredients"]}
    assert records["oracle"]["alone"] == records["scaled"]["alone"] == pytest.approx(100.0)
    assert records["negated"]["alone"] < 50 and not records["negated"]["kept"] and records["negated"]["rank"] == 3
    assert records["negated"]["soup_score"] < 100 and records["scaled"]["soup_score"] == pytest.approx(100.0)
    assert printed["selection"] == selection["ingredients"] and "greedy" in card["soup"]["method"]
    # the soup is the average of the two kept, and scores as the oracle does
    soup, a, b = (load_file(f / "model.safetensors") for f in (out, students["oracle"], students["scaled"]))
    torch.testing.assert_close(soup["qa_outputs.weight"], (a["qa_outputs.weight"] + b["qa_outputs.weight"]) / 2)
    assert card["eval"]["student"]["f1"] == pytest.approx(100.0)
    readme = (out / "README.md").read_text()
    assert "chosen greedily among 3 on held-out data" in readme and "| `negated` | 3 |" in readme
    assert ("--model oracle --model scaled --model negated --greedy --select-file select.json"
            + (" --teacher teacher" if against_teacher else "")) in readme
    # a uniform soup of all three is ruined by the negated one (the reason to choose)
    assert _soup(students, tmp_path / "uniform", "--eval-file", str(evaluation)) == 0
    capsys.readouterr()
    uniform = json.loads((tmp_path / "uniform" / "run.json").read_text())
    assert uniform["eval"]["student"]["f1"] < 90 and "selection" not in uniform["soup"]


def test_greedy_soup_refusals(qa_soup_setup, tmp_path, capsys):
    root, teacher, students, select, evaluation = qa_soup_setup

    def refused(*extra, out=None):
        assert _soup(students, out or tmp_path / "soup", *extra) == 2
        return capsys.readouterr().err

    assert "add --greedy" in refused("--select-file", str(select))
    assert "add --greedy" in refused("--teacher", str(teacher))
    assert "needs --select-file" in refused("--greedy")
    assert "no such file" in refused("--greedy", "--select-file", str(root / "missing.json"))
    # the evaluation set, named by --eval-file or by the students' run cards, is not a selection set
    assert "upper bound" in refused("--greedy", "--select-file", str(evaluation), "--eval-file", str(evaluation))
    data_dir = root / "data"
    write_squad(data_dir / "squad" / "dev-subset-v2.0.json", make_examples(10, seed=9, prefix="dd"))
    assert "upper bound" in refused("--greedy", "--select-file", str(data_dir / "squad" / "dev-subset-v2.0.json"),
                                    "--data-dir", str(data_dir))
    scored = root / "scored"
    shutil.copytree(students["scaled"], scored)
    card = json.loads((scored / "run.json").read_text())
    (scored / "run.json").write_text(json.dumps({**card, "data": {"kind": "files", "eval_file": str(select)}}))
    assert _soup(students, tmp_path / "soup", "--model", str(scored), "--greedy", "--select-file", str(select)) == 2
    assert "upper bound" in capsys.readouterr().err
    # a written --output-dir is refused before any model is scored
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert "--overwrite" in refused("--greedy", "--select-file", str(select), out=busy)
    assert (busy / "keep.txt").read_text() == "mine" and not (tmp_path / "soup").exists()


def test_the_apps_soup_job_chooses_greedily_on_an_uploaded_file(qa_soup_setup, hub_home, tmp_path):
    """The Distill tab's "Average students" with "choose greedily": the uploaded selection file is
    checked and copied, the job ranks the picked students on it against their teacher, averages
    the kept ones, and says so; its estimate counts the passes over the file."""
    import threading

    import gradio as gr

    from hub import jobs
    from hub.jobs.runner import JobContext
    from hub.jobs.soup_job import run_soup
    from hub.paths import models_dir
    from ui.distill_soup import start_soup
    from ui.run_status import soup_line

    root, teacher, students, select, evaluation = qa_soup_setup
    keys = []
    for name in ("negated", "oracle", "scaled"):
        folder = models_dir() / name / "student"
        shutil.copytree(students[name], folder)
        card = json.loads((folder / "run.json").read_text())
        card["data"] = {"kind": "files", "eval_file": str(evaluation), "eval_size": 30}
        card["eval"] = {"student": {"f1": 50.0, "eval_size": 30}, "headline": "f1"}
        (folder / "run.json").write_text(json.dumps(card))
        keys.append(f"{name}/student")
    staged = jobs.stage_selection_upload(select, True, hub_home / "uploads" / "abc")
    assert staged["size"] == 30 and Path(staged["select_file"]).parent == hub_home / "uploads" / "abc"
    params = {"task": "squad", "models": keys, "benchmark": False, "select_file": staged["select_file"],
              "select_teacher": True}
    assert jobs.validate_soup_params(params)["select_file"] == staged["select_file"]
    with pytest.raises(ValueError, match="uploaded to this server"):  # never any server path
        jobs.validate_soup_params({**params, "select_file": str(select)})
    guess = jobs.soup_estimate(params, select_size=30)
    assert guess["phases"]["select"]["seconds"] == round(7 * 30 / 140.0, 1)  # 3 alone, 2 soups, the teacher (2)
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "g", "name": "greedy-soup", "params": params}, threading.Event())
    result = run_soup(ctx)
    ctx.close()
    soup = json.loads((models_dir() / "greedy-soup" / "student" / "run.json").read_text())
    assert result["status"] == "finished" and result["ingredients"] == ["oracle/student", "scaled/student"]
    assert [Path(i["path"]).parent.name for i in soup["soup"]["ingredients"]] == ["oracle", "scaled"]
    assert soup["soup"]["selection"]["teacher"] == str(teacher) and soup["eval"]["student"]["f1"] == 100.0
    assert ctx.phases["select"]["examples"] == 210 and "2 of 3 students kept" in (folder / "log.txt").read_text()
    assert staged["select_file"] in soup["soup"]["selection"]["data"] and Path(staged["select_file"]).is_file()
    readme = (models_dir() / "greedy-soup" / "student" / "README.md").read_text()
    assert "| `negated/student` | 3 |" in readme and "--model oracle/student --model scaled/student" in readme
    assert "chosen greedily among 3" in soup_line(soup, "f1")
    # the page: no file is refused before anything is queued or copied
    with pytest.raises(gr.Error, match="Upload a selection file"):
        start_soup("squad", keys, None, None, greedy=True, select_path=None)
    bad = root / "bad.json"
    bad.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "", "qas": []}]}]}))
    with pytest.raises(gr.Error, match="selection file"):
        start_soup("squad", keys, None, None, greedy=True, select_path=str(bad))
    # copied, then refused before queueing (it is the students' evaluation set): the copy is not kept
    with pytest.raises(gr.Error, match="upper bound"):
        start_soup("squad", keys, None, None, greedy=True, select_path=str(evaluation))
    assert sorted(p.name for p in (hub_home / "uploads").iterdir()) == ["abc"]
    # a job that fails choosing (its teacher gone) leaves no upload behind
    gone = jobs.stage_selection_upload(select, True, hub_home / "uploads" / "def")
    cards = {k: json.loads((models_dir() / k / "run.json").read_text()) for k in keys}
    for k, card in cards.items():
        (models_dir() / k / "run.json").write_text(json.dumps({**card, "teacher": str(root / "moved-teacher")}))
    folder = tmp_path / "job2"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "h", "name": "orphan", "params": {**params, "select_file": gone["select_file"]}},
                     threading.Event())
    with pytest.raises(Exception, match="teacher"):
        run_soup(ctx)
    ctx.close()
    assert not (hub_home / "uploads" / "def").exists() and not (models_dir() / "orphan").exists()
    # a stop while choosing: the job ends "stopped" at the next pass, nothing written, the upload gone
    for k, card in cards.items():
        (models_dir() / k / "run.json").write_text(json.dumps(card))
    staged = jobs.stage_selection_upload(select, True, hub_home / "uploads" / "ghi")
    stop = threading.Event()
    stop.set()
    folder = tmp_path / "job3"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "i", "name": "stopped", "params": {**params, "select_file": staged["select_file"]}},
                     stop)
    assert run_soup(ctx)["status"] == "stopped"
    ctx.close()
    assert not (hub_home / "uploads" / "ghi").exists() and not (models_dir() / "stopped").exists()


def test_a_classification_soup_is_chosen_greedily_against_its_teacher(trained_pair, tiny_data_dir, tmp_path, capsys):
    """Text classification: agreement with the teacher's labels on a held-out table; the records
    keep the greedy invariant (ranked by score alone; kept exactly when the soup's score did not fall)."""
    from test_soup import _ingredient

    teacher, student = trained_pair
    models = [_ingredient(student, tmp_path / name, seed)[0] for name, seed in (("a", 1), ("b", 2), ("c", 3))]
    select = tiny_data_dir / "sst2" / "train.tsv"
    args = ["soup", "--task", "sst2", "--output-dir", str(tmp_path / "soup"), "--greedy", "--select-file",
            str(select), "--teacher", str(teacher), "--max-select-samples", "120", "--data-dir", str(tiny_data_dir)]
    for m in models:
        args += ["--model", str(m)]
    assert main(args) == 0
    capsys.readouterr()
    card = json.loads((tmp_path / "soup" / "run.json").read_text())
    selection = card["soup"]["selection"]
    assert selection["size"] == 120 and selection["score"].startswith("agreement (%) with the teacher")
    records = selection["ingredients"]
    assert [r["alone"] for r in records] == sorted((r["alone"] for r in records), reverse=True)
    best = records[0]["alone"]
    for r in records[1:]:
        assert r["kept"] == (r["soup_score"] >= best)
        best = max(best, r["soup_score"]) if r["kept"] else best
    assert len(card["soup"]["ingredients"]) == sum(r["kept"] for r in records)
    assert "--max-select-samples 120" in (tmp_path / "soup" / "README.md").read_text()
    # the evaluation file as the selection file: refused, by its content
    args[args.index(str(select))] = str(tiny_data_dir / "sst2" / "validation.tsv")
    args[args.index("--output-dir") + 1] = str(tmp_path / "soup2")
    assert main(args) == 2 and "upper bound" in capsys.readouterr().err
    # a task whose soups are not chosen greedily here: refused before anything is loaded
    assert main(["soup", "--task", "mlm", "--model", str(models[0]), "--model", str(models[1]), "--output-dir",
                 str(tmp_path / "soup3"), "--greedy", "--select-file", str(select)]) == 2
    assert "per-example predictions" in capsys.readouterr().err


def test_a_greedy_soup_may_keep_one_student(qa_soup_setup, tmp_path, capsys):
    """When averaging any other candidate in lowers the score, the soup is its best student alone."""
    root, teacher, students, select, evaluation = qa_soup_setup
    out = tmp_path / "one"
    assert main(["soup", "--task", "squad", "--model", str(students["negated"]), "--model", str(students["oracle"]),
                 "--output-dir", str(out), "--greedy", "--select-file", str(select), "--teacher", str(teacher),
                 "--eval-file", str(evaluation)]) == 0
    capsys.readouterr()
    card = json.loads((out / "run.json").read_text())
    assert [Path(i["path"]).name for i in card["soup"]["ingredients"]] == ["oracle"]
    assert card["eval"]["student"]["f1"] == pytest.approx(100.0)
    oracle = load_file(students["oracle"] / "model.safetensors")
    assert all(torch.equal(v, oracle[k]) for k, v in load_file(out / "model.safetensors").items())
    assert "kept one TinyBERT-style student" in (out / "README.md").read_text()
