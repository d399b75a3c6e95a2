"""``python -m hub soup``: the uniform weight average of students from one start,
its run card and evaluation, and the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hub.cli import main


def _ingredient(src, dest, seed: int):
    """A copy of the student ``src`` with its float weights moved by seeded noise (a "second seed")."""
    shutil.copytree(src, dest)
    gen = torch.Generator().manual_seed(seed)
    state = load_file(dest / "model.safetensors")
    moved = {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v for k, v in state.items()}
    save_file(moved, str(dest / "model.safetensors"), metadata={"format": "pt"})
    for stale in dest.glob("checkpoint-*"):
        shutil.rmtree(stale)
    return dest, moved


def _edit_card(folder, **changes):
    card = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**card, **changes}))


def test_soup_averages_weights_and_evaluates(trained_pair, tiny_data_dir, tmp_path, capsys):
    _, student = trained_pair
    a, wa = _ingredient(student, tmp_path / "a", 1)
    b, wb = _ingredient(student, tmp_path / "b", 2)
    # b's run named its teacher and data folder relative to where it ran: the same files, so one teacher reference
    import os

    recorded = json.loads((b / "run.json").read_text())
    _edit_card(b, teacher=os.path.relpath(recorded["teacher"]),
               data={**recorded["data"], "data_dir": os.path.relpath(recorded["data"]["data_dir"])})
    out = tmp_path / "soup"
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(b), "--output-dir", str(out),
                 "--data-dir", str(tiny_data_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    soup = load_file(out / "model.safetensors")
    assert soup.keys() == wa.keys()
    for k, v in soup.items():
        if v.is_floating_point():
            torch.testing.assert_close(v, (wa[k] + wb[k]) / 2)
            assert not torch.equal(v, wa[k])
        else:
            assert torch.equal(v, wa[k])
    card = json.loads((out / "run.json").read_text())
    assert card["status"] == "finished" and card["task"] == "sst2" and card["kind"] == "student"
    assert [i["path"] for i in card["soup"]["ingredients"]] == [str(a), str(b)]
    assert card["soup"]["ingredients"][0]["eval"]["accuracy"] == printed["ingredients"][0]["accuracy"]
    # the soup's own scores, the same as `hub evaluate` gives, and retention against the ingredients' teacher
    assert main(["evaluate", "--task", "sst2", "--model", str(out), "--data-dir", str(tiny_data_dir)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert card["eval"]["student"]["accuracy"] == evaluated["accuracy"] == printed["eval"]["student"]["accuracy"]
    teacher = json.loads((student / "run.json").read_text())["eval"]["teacher"]
    assert card["eval"]["teacher"] == teacher
    assert card["eval"]["retention"] == pytest.approx(evaluated["accuracy"] / teacher["accuracy"])
    assert "train_time_s" not in card and (out / "tokenizer.json").is_file()
    assert card["warnings"] == json.loads((student / "run.json").read_text()).get("warnings", [])


def test_soup_without_data_is_scored_on_its_students_evaluation_data(trained_pair, tiny_data_dir, tmp_path, capsys):
    """No data flags: the soup is scored on the eval set its ingredients' cards name, as `evaluate` with
    that data scores it; when the cards name none found from here, it is saved unscored and says so."""
    _, student = trained_pair
    a, _ = _ingredient(student, tmp_path / "a", 1)
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(student),
                 "--output-dir", str(tmp_path / "soup")]) == 0
    captured = capsys.readouterr()
    card = json.loads((tmp_path / "soup" / "run.json").read_text())
    assert "the students' evaluation data" in captured.err and card["status"] == "finished"
    assert main(["evaluate", "--task", "sst2", "--model", str(tmp_path / "soup"), "--data-dir",
                 str(tiny_data_dir)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert card["eval"]["student"]["accuracy"] == evaluated["accuracy"]
    assert card["eval"]["student"]["eval_size"] == evaluated["eval_size"]
    recorded = json.loads((a / "run.json").read_text())
    _edit_card(a, data={**recorded["data"], "eval_file": str(tmp_path / "gone.tsv")})
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(student),
                 "--output-dir", str(tmp_path / "soup2")]) == 0
    captured = capsys.readouterr()
    card = json.loads((tmp_path / "soup2" / "run.json").read_text())
    assert "eval" not in card and json.loads(captured.out)["eval"] is None and "not scored" in captured.err
    # a Hub data set that cannot be read here (offline): saved unscored, not failed
    b, _ = _ingredient(student, tmp_path / "b", 3)
    for folder in (a, b):
        _edit_card(folder, data={"kind": "hub", "dataset": "nobody/no-such-set", "eval_size": 8})
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(b),
                 "--output-dir", str(tmp_path / "soup3")]) == 0
    captured = capsys.readouterr()
    card = json.loads((tmp_path / "soup3" / "run.json").read_text())
    assert card["status"] == "finished" and "eval" not in card and "cannot be read here" in captured.err


def test_soup_card_lists_what_differs_and_has_a_model_card(trained_pair, tmp_path, capsys):
    """The settings the ingredients differ in (seed, learning rate, alpha) leave the
    soup's card and are listed per ingredient; the folder gets a README (model card)
    that says it is a soup, with its ingredients and the soup command."""
    _, student = trained_pair
    recorded = json.loads((student / "run.json").read_text())
    a, _ = _ingredient(student, tmp_path / "a", 1)
    b, _ = _ingredient(student, tmp_path / "b", 2)
    _edit_card(a, train={**recorded["train"], "seed": 43, "learning_rate": 2e-4}, alpha=0.8,
               # a threshold calibrated for ingredient a (calibrate-null --apply) is a's, not the soup's
               eval_options={"null_threshold": 3.0}, null_calibration={"threshold": 3.0, "teacher": "t"},
               eval_before_calibration=recorded["eval"])
    out = tmp_path / "soup"
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(b), "--output-dir", str(out)]) == 0
    card = json.loads((out / "run.json").read_text())
    assert not {"eval_options", "null_calibration", "eval_before_calibration"} & set(card)
    assert "seed" not in card["train"] and "learning_rate" not in card["train"] and "alpha" not in card
    assert card["train"]["epochs"] == recorded["train"]["epochs"] and card["temperature"] == recorded["temperature"]
    assert [i["settings"] for i in card["soup"]["ingredients"]] == [
        {"learning_rate": 2e-4, "seed": 43, "alpha": 0.8},
        {"learning_rate": recorded["train"]["learning_rate"], "seed": recorded["train"]["seed"],
         "alpha": recorded["alpha"]}]
    readme = (out / "README.md").read_text()
    assert "A model soup: the uniform weight average of 2" in readme
    section = readme[readme.index("## Soup"):readme.index("## Recipe")]
    assert "| ingredient | learning rate | seed | alpha | Accuracy |" in section, section
    assert f"| `a` | 0.0002 | 43 | 0.8 | {100 * recorded['eval']['student']['accuracy']:.2f}% |" in section, section
    assert "α = see Soup" in readme and "python -m hub soup --task sst2 --model a --model b" in readme
    assert "python -m hub distill" not in readme  # an ingredient's command would not rebuild the soup


def test_soup_pushes_its_folder_to_the_hub(trained_pair, tmp_path, capsys, monkeypatch):
    """--push-to-hub uploads the soup's folder (model card included); offline it says so
    with exit code 2 and keeps the soup."""
    from unittest import mock

    from huggingface_hub import constants

    _, student = trained_pair
    a, _ = _ingredient(student, tmp_path / "a", 1)
    args = ["soup", "--task", "sst2", "--model", str(a), "--model", str(student), "--push-to-hub", "me/soup"]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert main([*args, "--output-dir", str(tmp_path / "s1")]) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err and (tmp_path / "s1" / "README.md").is_file()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with mock.patch("huggingface_hub.HfApi") as api_cls:
        api_cls.return_value.create_repo.return_value = "https://huggingface.co/me/soup"
        assert main([*args, "--output-dir", str(tmp_path / "s2")]) == 0
    assert api_cls.return_value.upload_folder.call_args.kwargs["folder_path"] == str(tmp_path / "s2")
    assert "uploaded to https://huggingface.co/me/soup" in capsys.readouterr().err


def test_soup_refusals(trained_pair, tmp_path, capsys):
    from conftest import make_tiny_bert

    teacher, student = trained_pair
    a, _ = _ingredient(student, tmp_path / "a", 1)

    def refused(*models, task="sst2", out=None):
        args = ["soup", "--task", task, "--output-dir", str(out or tmp_path / "soup")]
        for m in models:
            args += ["--model", str(m)]
        assert main(args) == 2
        return capsys.readouterr().err

    assert "at least two different" in refused(student, student)
    assert "at least two different" in refused(student)
    assert "not 'squad'" in refused(student, a, task="squad")
    other = make_tiny_bert(tmp_path / "other", layers=3)  # no run card (a warning), and another shape
    assert "differ in config" in refused(student, other)
    # the teacher has the same task and tokenizer, but another shape and start
    assert "differ in config" in refused(student, teacher)
    c, _ = _ingredient(student, tmp_path / "c", 3)
    _edit_card(c, student={"spec": "tinybert-4l-312"})
    assert "different checkpoints" in refused(student, c)
    # teacher-layers:K of another teacher is another start; so is a random-init shape drawn with another seed
    recorded = json.loads((student / "run.json").read_text())
    _edit_card(c, student={"spec": recorded["student"]["spec"]}, teacher=str(tmp_path / "another-teacher"))
    assert "different checkpoints" in refused(student, c)
    r1, _ = _ingredient(student, tmp_path / "r1", 5)
    r2, _ = _ingredient(student, tmp_path / "r2", 6)
    for folder, seed in ((r1, 1), (r2, 2)):
        _edit_card(folder, student={"spec": "custom-2x32x2x37"}, train={**recorded["train"], "seed": seed})
    assert "drawn with seed 1" in refused(r1, r2)
    _edit_card(r2, train={**recorded["train"], "seed": 1})  # the same draw: one start
    assert main(["soup", "--task", "sst2", "--model", str(r1), "--model", str(r2), "--output-dir",
                 str(tmp_path / "same-draw")]) == 0
    capsys.readouterr()
    d, _ = _ingredient(student, tmp_path / "d", 4)
    _edit_card(d, status="running")
    assert "not finished" in refused(student, d)
    e = tmp_path / "e"
    shutil.copytree(student, e)
    (e / "model.safetensors").rename(e / "weights.bin")
    assert "safetensors" in refused(student, e)
    assert "one of the ingredients" in refused(student, a, out=a)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert "--overwrite" in refused(student, a, out=busy)
    assert (busy / "keep.txt").read_text() == "mine" and not (tmp_path / "soup").exists()


def test_soup_reads_a_setting_an_older_card_lacks_as_its_default(trained_pair, tmp_path, capsys):
    """Cards written before --precision/--attention-dropout existed lack them: beside an fp32 card they do not
    differ; a bf16 ingredient does, and is listed so."""
    _, student = trained_pair
    recorded = json.loads((student / "run.json").read_text())
    old_train = {k: v for k, v in recorded["train"].items() if k not in ("precision", "attention_dropout")}
    a, _ = _ingredient(student, tmp_path / "a", 1)
    b, _ = _ingredient(student, tmp_path / "b", 2)
    c, _ = _ingredient(student, tmp_path / "c", 3)
    _edit_card(a, train=old_train)
    _edit_card(b, train={**old_train, "precision": "fp32", "attention_dropout": None})
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(b), "--output-dir", str(tmp_path / "s1")]) == 0
    assert json.loads((tmp_path / "s1" / "run.json").read_text())["soup"]["ingredients"][0]["settings"] == {}
    _edit_card(c, train={**old_train, "precision": "bf16"})
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(c), "--output-dir", str(tmp_path / "s2")]) == 0
    card = json.loads((tmp_path / "s2" / "run.json").read_text())
    assert [i["settings"] for i in card["soup"]["ingredients"]] == [{"precision": "fp32"}, {"precision": "bf16"}]
    assert "precision" not in card["train"]
    # a card that recorded no training settings is not given any: its seed is unknown, not 42
    d, _ = _ingredient(student, tmp_path / "d", 4)
    _edit_card(d, train={})
    assert main(["soup", "--task", "sst2", "--model", str(a), "--model", str(d), "--output-dir", str(tmp_path / "s3")]) == 0
    listed = json.loads((tmp_path / "s3" / "run.json").read_text())["soup"]["ingredients"][1]["settings"]
    assert listed["seed"] is None and listed["precision"] is None


# ---------------------------------------------------------------- the app's soup job


def _job_students(trained_pair, tmp_path, names=("seed1", "seed2")):
    """Two finished students of one start, as app jobs leave them under models_dir()."""
    from hub.paths import models_dir

    _, student = trained_pair
    for i, name in enumerate(names, start=1):
        (models_dir() / name).mkdir(parents=True, exist_ok=True)
        _ingredient(student, models_dir() / name / "student", i)
    return [f"{n}/student" for n in names]


def test_soup_params_are_checked_on_the_server(hub_home, trained_pair, tmp_path):
    from hub.jobs.params import ParamsError
    from hub.jobs.soup_job import validate_soup_params

    keys = _job_students(trained_pair, tmp_path)
    ok = validate_soup_params({"task": "sst2", "models": [*keys, keys[0]]})  # a repeat counts once
    assert ok == {"task": "sst2", "models": keys, "name": "sst2-soup", "benchmark": True, "calibrate_null": False}
    for bad, message in [({"task": "sst2", "models": keys[:1]}, "between 2 and 16"),
                         ({"task": "sst2", "models": [keys[0], "../../etc"]}, "not a finished sst2 student"),
                         ({"task": "squad", "models": keys}, "not a finished squad student"),
                         ({"task": "nope", "models": keys}, "task must be one of"),
                         ({"task": "sst2", "models": "a,b"}, "list of model names"),
                         ({"task": "sst2", "models": keys, "benchmark": "false"}, "true or false"),
                         ({"task": "sst2", "models": keys, "calibrate_null": True}, "task sst2 is classification"),
                         ({"task": "sst2", "models": keys, "path": "/tmp"}, "unknown soup parameter")]:
        with pytest.raises(ParamsError, match=message):
            validate_soup_params(bad)


def test_soup_job_averages_evaluates_and_benchmarks(hub_home, trained_pair, tmp_path):
    """The Distill tab's "Average students": a queued job in its own process writes the soup under the job's
    name, scores it on the students' evaluation set as they were scored (retention against their teacher) and
    adds a quick-protocol leaderboard row."""
    from hub.jobs import JobQueue
    from hub.leaderboard import LeaderboardStore
    from hub.paths import models_dir
    from hub.runs import read_card

    keys = _job_students(trained_pair, tmp_path)
    q = JobQueue(poll_s=0.1)
    try:
        job = q.submit("soup", {"task": "sst2", "models": keys, "name": "my soup"})
        status = q.wait(job, timeout=300)
    finally:
        q.close(cancel_running=True, timeout=60)
    assert status["state"] == "finished", (status["error"], status["log"][-10:])
    card = read_card(models_dir() / "my-soup" / "student")
    assert card["status"] == "finished" and len(card["soup"]["ingredients"]) == 2
    ev, scored = card["eval"], [read_card(models_dir() / k)["eval"] for k in keys]
    assert ev["student"]["eval_size"] == scored[0]["student"]["eval_size"] == 80
    assert ev["student"]["max_length"] == scored[0]["student"]["max_length"]
    assert ev["teacher"] == scored[0]["teacher"] and ev["retention"] is not None
    assert status["result"]["ingredients"] == keys and status["result"]["benchmark"] == "quick"
    assert {"soup", "evaluate", "benchmark"} <= set(status["result"]["phases"])
    rows = LeaderboardStore().rows(task="sst2")
    soup = next(r for r in rows if r["role"] == "student")  # timed beside the teacher, as a distilled student
    assert (soup["name"], soup["protocol"], soup["ranked"]) == ("my-soup/student", "quick", 1)
    assert soup["speedup_p50"] and soup["accuracy"] == ev["student"]["accuracy"]


def test_the_distill_tabs_soup_section_lists_checks_and_queues(hub_home, trained_pair, tmp_path, monkeypatch):
    import gradio as gr

    from hub import jobs
    from hub.paths import models_dir
    from ui import distill_soup, run_status

    keys = _job_students(trained_pair, tmp_path)
    choices = distill_soup.soup_choices("sst2")
    assert sorted(v for _, v in choices) == sorted(keys) and all(" · accuracy " in label for label, _ in choices)
    assert distill_soup.soup_choices("squad") == []
    with pytest.raises(gr.Error, match="between 2 and 16"):
        distill_soup.start_soup("sst2", keys[:1], "", {})
    # a student of another shape cannot be averaged: refused before queueing, named as the page names it
    other = models_dir() / "other" / "student"
    shutil.copytree(models_dir() / keys[0], other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "intermediate_size": cfg["intermediate_size"] * 2}))
    with pytest.raises(gr.Error, match=r"other/student and seed1/student differ in config 'intermediate_size'") as e:
        distill_soup.start_soup("sst2", [keys[0], "other/student"], "", {})
    assert str(hub_home) not in str(e.value)
    q = jobs.JobQueue(root=hub_home / "jobs", pipeline="test_jobs:hold", pythonpath=[str(Path(__file__).parent)])
    monkeypatch.setattr(jobs, "default_queue", lambda: q)
    try:
        out = distill_soup.start_soup("sst2", keys, " two seeds ", {})
        status = q.wait(out["watch"], timeout=60)
        updates, _, _ = run_status.poll(out["watch"], out["owned"], None)
        assert updates["plot"].visible is False and updates["plot_caption"].visible is False  # nothing trained, no curves
    finally:
        q.close(cancel_running=True)
    assert status["kind"] == "soup" and status["name"] == "two-seeds"
    assert status["params"] == {"task": "sst2", "models": keys, "name": "two-seeds", "benchmark": True,
                                "calibrate_null": False}
    assert q.is_owner(out["watch"], out["owned"]["token"])
    from hub import views

    assert views.public_status(status)["params"] == {"task": "sst2", "models": keys, "name": "two-seeds",
                                                     "benchmark": True, "calibrate_null": False}
    # the outcome names the ingredients' score range
    card = {"status": "finished", "eval": {"student": {"accuracy": 0.8}},
            "soup": {"ingredients": [{"eval": {"accuracy": 0.7}}, {"eval": {"accuracy": 0.75}}]}}
    assert run_status.soup_line(card, "accuracy") == " · the average of 2 students (accuracy 0.700–0.750)"
    import doctest

    assert doctest.testmod(run_status).failed == 0  # calibration_line
    assert run_status.calibration_line(card, "accuracy") == ""
    distilled = {"null_calibration": {"threshold": 4.9, "agreement": 0.876, "how": "distill"}}
    assert run_status.calibration_line(distilled, "f1") == \
        ' · "no answer" calibrated to the teacher: threshold 4.9 (agreement 0.876)'
    assert run_status.PHASES["soup"] == "averaging the students' weights"


def test_soup_eval_source_is_the_students_own(tmp_path):
    """What the soup is scored on: the students' one evaluation set with its columns and size (packed text
    counts blocks); none when they differ or the file is not found from here."""
    from hub.soup import eval_source

    evals = tmp_path / "test.txt"
    evals.write_text("some text\n")
    mlm = {"data": {"kind": "files", "eval_file": str(evals), "eval_blocks": 12, "text_column": None}}
    assert eval_source([mlm, mlm]) == ({"eval_file": str(evals.resolve())}, 12)
    hub = {"data": {"kind": "hub", "dataset": "me/reviews", "config": None, "text_column": "review",
                    "label_column": "stars", "eval_size": 100}}
    assert eval_source([hub, hub]) == ({"dataset": "me/reviews", "text_column": "review", "label_column": "stars"},
                                       100)
    assert eval_source([mlm, hub]) is None
    assert eval_source([mlm, {"data": {**mlm["data"], "eval_blocks": 6}}]) is None  # other examples
    gone = {"data": {"kind": "files", "eval_file": "runs/elsewhere/dev.json", "eval_size": 5}}
    assert eval_source([gone, gone]) is None and eval_source([{}, {}]) is None


def test_a_soup_whose_evaluation_fails_is_not_left_finished(trained_pair, tmp_path):
    from hub.runs import read_card
    from hub.soup import make_soup

    _, student = trained_pair
    a, _ = _ingredient(student, tmp_path / "a", 1)
    b, _ = _ingredient(student, tmp_path / "b", 2)

    def broken(folder):
        assert read_card(folder)["status"] == "running"  # not finished before it is scored
        raise FileNotFoundError("no such file: dev.json")

    with pytest.raises(FileNotFoundError):
        make_soup([str(a), str(b)], tmp_path / "soup", "sst2", evaluate=broken)
    card = read_card(tmp_path / "soup")
    assert card["status"] == "failed" and "dev.json" in card["error"] and "eval" not in card
    assert (tmp_path / "soup" / "model.safetensors").is_file()  # the weights are kept


def test_soup_doctests():
    import doctest

    import hub.soup

    result = doctest.testmod(hub.soup)
    assert result.failed == 0 and result.attempted >= 2


def test_soup_estimate_counts_its_phases_and_reads_an_earlier_soup(hub_home, trained_pair, tmp_path):
    """The soup section's estimate before it starts: averaging per ingredient, the evaluation of
    the students' set, the benchmark; an earlier finished soup job of the task on this machine
    replaces the default guesses (averaging scaled by its ingredients)."""
    from hub import jobs
    from hub.hardware import cpu_cores, cpu_model
    from hub.paths import models_dir

    keys = _job_students(trained_pair, tmp_path, names=("e1", "e2", "e3"))
    for key in keys:
        _edit_card(models_dir() / key, data={"kind": "files", "eval_file": "x.tsv", "eval_size": 174})
    e = jobs.soup_estimate({"task": "sst2", "models": keys[:2]})
    assert list(e["phases"]) == ["soup", "evaluate", "benchmark"] and e["basis"] == "default guess"
    assert e["phases"]["soup"]["seconds"] == 2 + 2 / 1.0 and e["phases"]["evaluate"]["seconds"] == 1.0  # 174 at 174/s
    assert e["seconds"] == pytest.approx(sum(ph["seconds"] for ph in e["phases"].values()) + jobs.OVERHEAD_S)
    assert "benchmark" not in jobs.soup_estimate({"task": "sst2", "models": keys[:2], "benchmark": False})["phases"]
    folder = hub_home / "jobs" / "20250101-000001-000000-abcd"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"name": "old soup", "params": {"task": "sst2", "models": keys[:2]}}))
    (folder / "result.json").write_text(json.dumps({
        "status": "finished", "hardware": {"cpu": cpu_model(), "cores": cpu_cores()},
        "phases": {"soup": {"seconds": 6.0, "examples": 2}, "evaluate": {"seconds": 4.0},
                   "benchmark": {"seconds": 30.0}}}))
    m = jobs.soup_estimate({"task": "sst2", "models": keys})
    assert m["basis"] == "measured" and m["phases"]["soup"]["seconds"] == 9.0  # 3 ingredients at the old 3 s each
    assert m["phases"]["benchmark"] == {"seconds": 30.0, "basis": "measured", "source": "measured: job old soup"}
    with pytest.raises(jobs.ParamsError, match="task sst2 is classification"):
        jobs.soup_estimate({"task": "sst2", "models": keys, "calibrate_null": True})
