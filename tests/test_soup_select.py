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
from hub.soup import average_state
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

    chosen, records = greedy_select(folders, score, average_state)
    assert chosen == [tmp_path / "high", tmp_path / "low"]  # tie alone (0.5 off): the order given
    assert [(Path(r["path"]).name, r["rank"], r["kept"]) for r in records] == [
        ("high", 1, True), ("low", 2, True), ("far", 3, False)]
    assert records[1]["soup_score"] == pytest.approx(0.0) and records[2]["soup_score"] == pytest.approx(-(7 / 3 - 1))
    assert seen[:3] == [5.0, 1.5, 0.5]  # alone first, then the soups
    with pytest.raises(ValueError, match="at least two"):
        greedy_select(folders[:1], score, average_state)


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
