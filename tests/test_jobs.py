"""The training jobs: the queue (positions, size, owners, duplicates, stop and
kill, persistence and restart recovery) with fast fake pipelines run in real
child processes, the parameters, the estimate, the registry, deleting a run,
and real tiny jobs: one SIGKILLed mid-run while the queue goes on, one stopped.

The fake pipelines below are functions of this module: the child process
imports it by name (``pipeline="test_jobs:hold"``, this folder on its path).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub import jobs
from hub.jobs import DuplicateJob, JobActive, JobQueue, QueueFull

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# ---------------------------------------------------------------- fake pipelines (run in the child)


def _card(folder: str, status: str) -> None:
    from hub.runs import write_card

    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / "checkpoint-2").mkdir(exist_ok=True)
    write_card(folder, {"kind": "student", "task": "sst2", "status": status})


def hold(ctx) -> dict:
    """Reports progress like hub.distill, then holds until its gate file exists;
    honours the stop (unless ``ignore_stop``); may fail on request."""
    import time as _time

    p = ctx.params
    if p.get("folder"):
        ctx.output("student", p["folder"])
        _card(p["folder"], "running")
    steps = p.get("steps", 4)
    ctx.set_plan([("intermediate", steps), ("prediction", steps)])
    for stage in ("intermediate", "prediction"):
        for step in range(1, steps + 1):
            term = "hidden" if stage == "intermediate" else "prediction"
            ctx.progress({"stage": stage, "step": step, "total": steps, "epoch": step / steps,
                          "examples_per_s": 100.0, "eta_s": 0.01 * (steps - step),
                          "losses": {term: 1.0 / step, "total": 1.0 / step}})
    while p.get("gate") and not Path(p["gate"]).exists():
        if ctx.cancel.is_set() and not p.get("ignore_stop"):
            return {"status": "stopped"}
        _time.sleep(0.02)
    if p.get("fail"):
        raise RuntimeError("boom")
    if p.get("user_error"):
        from hub.data import DataError

        raise DataError("train.csv: missing column(s) ['text']")
    if p.get("folder"):
        _card(p["folder"], "finished")
    return {"status": "finished", "answer": 42}


# ---------------------------------------------------------------- helpers


@pytest.fixture
def make_queue(hub_home):
    made = []

    def make(**kw) -> JobQueue:
        kw.setdefault("pipeline", "test_jobs:hold")
        kw.setdefault("root", hub_home / "jobs")
        q = JobQueue(pythonpath=[str(TESTS)], poll_s=0.05, **kw)
        made.append(q)
        return q

    yield make
    for q in made:
        q.close(cancel_running=True, timeout=30)


@pytest.fixture
def gate(tmp_path):
    def make(name: str) -> str:
        return str(tmp_path / f"gate-{name}")
    return make


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def running_with_log(q: JobQueue, job_id: str) -> bool:
    s = q.status(job_id)
    return s["state"] == "running" and any("started" in line for line in s["log"])


# ---------------------------------------------------------------- the queue


def test_one_job_at_a_time_positions_and_curves_from_events(make_queue, gate):
    q = make_queue(max_size=3)
    a = q.submit("fake", {"gate": gate("a"), "steps": 5})
    b = q.submit("fake", {"gate": gate("b")})
    c = q.submit("fake", {})
    wait_for(lambda: q.status(a)["progress"].get("fraction") == 1.0)
    assert [q.position(j) for j in (a, b, c)] == [0, 1, 2]
    assert q.status(b)["state"] == "queued" and q.current()["id"] == a
    status = q.status(a)
    assert status["plan"] == [["intermediate", 5], ["prediction", 5]]
    assert status["losses"]["hidden"][0] == [1, 1.0]
    assert [x for x, _ in status["losses"]["prediction"]] == [6, 7, 8, 9, 10]  # steps continue across stages
    assert "total" not in status["losses"]
    for key in ("owner_hash", "child", "pipeline"):
        assert key not in status

    Path(gate("a")).touch()
    wait_for(lambda: q.status(b)["state"] == "running")
    assert q.status(a)["state"] == "finished" and q.status(a)["result"] == {"status": "finished", "answer": 42}
    assert [q.position(j) for j in (a, b, c)] == [-1, 0, 1]
    Path(gate("b")).touch()
    assert q.wait(c, timeout=20)["state"] == "finished"
    assert [j["id"] for j in q.jobs()] == [c, b, a]  # newest first
    assert q.jobs()[0]["fraction"] == 1.0


def test_curves_keep_real_points_when_thinned(tmp_path):
    from hub.jobs.events import EventView

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"type": "progress", "stage": "prediction", "step": i, "total": 2500,
                                        "x": i, "losses": {"prediction": 1.0 / i}}) + "\n"
                            for i in range(1, 2501)) + '{"type": "progr')  # a line still being written
    view = EventView(path)
    view.update()
    points = view.curves(max_points=1000)["prediction"]
    assert 800 <= len(points) <= 1000 and points[-1] == [2500, 1.0 / 2500]
    assert all(v == 1.0 / x for x, v in points)  # every point was reported, none interpolated
    assert view.progress()["step"] == 2500


def test_full_queue_and_duplicate_submissions_are_refused(make_queue, gate):
    q = make_queue(max_size=3)
    a = q.submit("fake", {"gate": gate("a")}, owner="browser-1")
    with pytest.raises(DuplicateJob, match="already have a run"):
        q.submit("fake", {}, owner="browser-1")  # a double click on Quick start
    q.submit("fake", {"gate": gate("b")}, owner="browser-2")
    q.submit("fake", {})
    with pytest.raises(QueueFull, match="full"):
        q.submit("fake", {}, owner="browser-3")
    assert issubclass(DuplicateJob, QueueFull)  # the app's handler shows both as one clear line
    Path(gate("a")).touch()
    q.wait(a, timeout=20)
    assert q.submit("fake", {}, owner="browser-1")  # its run ended: a new one is fine


def test_cancel_waiting_job_removes_it(make_queue, gate):
    q = make_queue()
    a = q.submit("fake", {"gate": gate("a")})
    b = q.submit("fake", {})
    c = q.submit("fake", {})
    wait_for(lambda: q.position(a) == 0)
    assert q.cancel(b) is True
    assert q.status(b)["state"] == "stopped" and q.status(b)["started_at"] is None
    assert q.position(b) == -1 and q.position(c) == 1
    Path(gate("a")).touch()
    assert q.wait(c, timeout=20)["state"] == "finished"


def test_stop_signals_the_child_which_stops_and_its_run_card_says_so(make_queue, gate, tmp_path):
    q = make_queue()
    folder = tmp_path / "run" / "student"
    a = q.submit("fake", {"gate": gate("a"), "folder": str(folder)})
    wait_for(lambda: q.status(a)["outputs"] and running_with_log(q, a))
    assert q.cancel(a) is True
    final = q.wait(a, timeout=20)
    assert final["state"] == "stopped" and final["error"] is None
    assert final["result"] == {"status": "stopped"}
    # the fake returned without closing its card: the server marks it (one truth per run)
    from hub.runs import read_card

    assert read_card(folder)["status"] == "stopped" and (folder / "checkpoint-2").is_dir()
    assert q.cancel(a) is False  # already over


def test_a_child_that_ignores_the_stop_is_killed_after_the_timeout(make_queue, gate, tmp_path):
    q = make_queue(stop_timeout_s=1.0)
    folder = tmp_path / "run" / "student"
    a = q.submit("fake", {"gate": gate("a"), "ignore_stop": True, "folder": str(folder)})
    b = q.submit("fake", {})
    wait_for(lambda: running_with_log(q, a) and q.status(a)["outputs"])
    q.cancel(a)
    assert q.status(a)["stopping"] is True
    final = q.wait(a, timeout=20)
    assert final["state"] == "stopped" and "did not stop within 1 s" in final["error"]
    from hub.runs import read_card

    assert read_card(folder)["status"] == "stopped"
    assert q.wait(b, timeout=20)["state"] == "finished"


def test_owner_checks(make_queue, gate):
    q = make_queue()
    a = q.submit("fake", {"gate": gate("a")}, owner="secret-1")
    wait_for(lambda: q.position(a) == 0)
    for other in ("someone-else", "", None):
        with pytest.raises(PermissionError):
            q.cancel(a, owner=other)  # None is not a master key for someone else's run
    assert q.is_owner(a, "secret-1") and not q.is_owner(a, "x") and not q.is_owner(a, None)
    with pytest.raises(PermissionError):
        jobs.delete_job_models(a, "someone-else", queue=q)
    assert q.cancel(a, owner="secret-1") is True
    server_job = q.submit("fake", {"gate": gate("b")})
    with pytest.raises(PermissionError):
        q.cancel(server_job, owner="secret-1")  # no browser stops a run the server queued
    assert q.cancel(server_job) is True


def test_failures_leave_a_trace_and_the_queue_goes_on(make_queue, caplog):
    q = make_queue()
    bad = q.submit("fake", {"fail": True})
    user = q.submit("fake", {"user_error": True})
    good = q.submit("fake", {})
    with caplog.at_level(logging.INFO, logger="hub.jobs.queue"):
        assert q.wait(bad, timeout=20)["state"] == "failed"
        assert q.wait(user, timeout=20)["state"] == "failed"
        assert q.wait(good, timeout=20)["state"] == "finished"
    status = q.status(bad)
    assert status["error"] == "RuntimeError: boom"  # one clear line for the user
    assert any("Traceback (most recent call last)" in line for line in status["log"])  # the job's log file
    assert "Traceback" in caplog.text and 'raise RuntimeError("boom")' in caplog.text  # the server log
    u = q.status(user)
    assert u["error"] == "DataError: train.csv: missing column(s) ['text']"
    assert not any("Traceback" in line for line in u["log"])  # the user's mistake: one line, no traceback
    assert [r.levelname for r in caplog.records if "DataError" in r.getMessage()] == ["WARNING"]


def test_a_killed_child_fails_with_its_log_tail_and_its_run_marked(make_queue, gate, tmp_path):
    q = make_queue()
    folder = tmp_path / "run" / "student"
    a = q.submit("fake", {"gate": gate("a"), "folder": str(folder)})
    b = q.submit("fake", {})
    wait_for(lambda: running_with_log(q, a) and q.status(a)["outputs"])
    os.kill(q.pid(a), signal.SIGKILL)  # what the out-of-memory killer does
    final = q.wait(a, timeout=20)
    assert final["state"] == "failed" and "killed by SIGKILL" in final["error"]
    assert any("[prediction] step 4/4" in line for line in final["log_tail"])
    from hub.runs import read_card

    card = read_card(folder)
    assert card["status"] == "failed" and "SIGKILL" in card["error"] and (folder / "checkpoint-2").is_dir()
    assert q.wait(b, timeout=20)["state"] == "finished"


def test_unknown_job_id_and_kind(make_queue):
    q = make_queue(pipeline=None)
    with pytest.raises(KeyError):
        q.status("../../etc/passwd")
    with pytest.raises(ValueError, match="unknown job kind"):
        q.submit("rm -rf", {})


def test_one_queue_per_folder(make_queue, hub_home):
    q = make_queue()
    with pytest.raises(RuntimeError, match="another job queue"):
        JobQueue(root=hub_home / "jobs")
    q.close()
    make_queue()  # the lock went with the closed queue


def test_dry_run_checks_a_job_without_training(hub_home, tiny_data_dir):
    """The ``dry-run`` kind: settings and data checked in the child, a plan, no model."""
    from hub.paths import models_dir

    q = JobQueue(root=hub_home / "jobs", poll_s=0.05)
    try:
        job_id = q.submit("dry-run", {"data": {"data_dir": str(tiny_data_dir)}, "train_samples": 64,
                                      "batch_size": 16, "name": "check"})
        status = q.wait(job_id, timeout=30)
    finally:
        q.close()
    assert status["state"] == "finished", status["log"]
    assert status["result"]["train_rows"] == 400 and status["plan"] == [["intermediate", 4], ["prediction", 4]]
    assert status["data"]["kind"] == "local" and not models_dir().exists()


def test_the_names_the_app_uses_exist():
    """The app is written elsewhere: every ``jobs.NAME`` it reads must stay importable."""
    import re

    sources = [REPO / "app.py", REPO / "hub" / "views.py", *sorted((REPO / "ui").glob("*.py"))]
    used = {name for f in sources if f.is_file() for name in re.findall(r"\bjobs\.([A-Za-z_]+)\b", f.read_text())}
    assert used and not [name for name in sorted(used) if not hasattr(jobs, name)]


# ---------------------------------------------------------------- restarts


def _write_job(root: Path, job_id: str, state: str, **fields) -> Path:
    folder = root / job_id
    folder.mkdir(parents=True)
    job = {"id": job_id, "kind": "fake", "params": fields.pop("params", {}), "name": f"run-{job_id[-4:]}",
           "pipeline": "test_jobs:hold", "state": state, "created_at": "2025-01-01T00:00:00+00:00", **fields}
    (folder / "job.json").write_text(json.dumps(job))
    return folder


def test_restart_marks_dead_runs_failed_and_runs_the_queued_ones(hub_home, make_queue, tmp_path):
    root = hub_home / "jobs"
    dead = subprocess.Popen(["true"])
    dead.wait()
    crashed = _write_job(root, "20250101-000000-000000-abcd", "running", child=f"{dead.pid}:12345",
                         started_at="2025-01-01T00:00:01+00:00")
    model = tmp_path / "models" / "run-1" / "student"
    _card(str(model), "running")
    (crashed / "events.jsonl").write_text(json.dumps({"type": "output", "role": "student", "folder": str(model)}) + "\n")
    (crashed / "log.txt").write_text("00:00:01 [prediction] step 3/10\n")
    ended = _write_job(root, "20250101-000001-000000-abcd", "running", child=f"{dead.pid}:12345")
    (ended / "result.json").write_text(json.dumps({"status": "finished", "answer": 42}))  # ended while we were down
    waiting = _write_job(root, "20250101-000002-000000-abcd", "queued")
    (root / "20250101-000003-000000-abcd").mkdir()  # a broken folder: no job.json
    (root / "not-a-job").mkdir()

    q = make_queue()
    after = q.status(crashed.name)
    assert after["state"] == "failed" and after["error"] == "server restarted; checkpoints kept in run-1/student"
    assert after["log_tail"] == ["00:00:01 [prediction] step 3/10"]
    from hub.runs import read_card

    assert read_card(model)["status"] == "failed" and (model / "checkpoint-2").is_dir()
    assert json.loads((crashed / "job.json").read_text())["state"] == "failed"
    assert q.status(ended.name)["state"] == "finished" and q.status(ended.name)["result"]["answer"] == 42
    assert q.wait(waiting.name, timeout=20)["state"] == "finished"  # the queue kept its place across the restart
    assert {j["id"] for j in q.jobs()} == {crashed.name, ended.name, waiting.name}


def test_restart_adopts_a_child_that_outlived_its_server(hub_home, make_queue, gate):
    """A server killed mid-run: its child (own session) trains on; the next server
    finds it running, supervises it and records its end."""
    root = hub_home / "jobs"
    script = (
        "import sys, time\n"
        "from hub.jobs import JobQueue\n"
        f"q = JobQueue(root={str(root)!r}, pipeline='test_jobs:hold', pythonpath=[{str(TESTS)!r}])\n"
        f"j = q.submit('fake', {{'gate': {gate('a')!r}}}, owner='browser')\n"
        "while not any('started' in line for line in q.status(j)['log']): time.sleep(0.05)\n"
        "print(j, flush=True)\n"
        "time.sleep(120)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], cwd=str(REPO), stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, HUB_HOME=str(hub_home)))
    try:
        job_id = server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
    q = make_queue()
    assert q.status(job_id)["state"] == "running" and q.position(job_id) == 0
    assert q.is_owner(job_id, "browser")
    Path(gate("a")).touch()
    final = q.wait(job_id, timeout=20)
    assert final["state"] == "finished" and final["result"]["answer"] == 42


# ---------------------------------------------------------------- parameters


def test_validate_params_schema_and_cross_checks(tiny_data_dir, tiny_teacher_dir, hub_home):
    data = {"data_dir": str(tiny_data_dir)}
    p = jobs.validate_params({"data": data})
    assert p["teacher"] == "minilm-l6" and p["stages"] == ["intermediate", "prediction"]
    assert jobs.validate_params({"data": data, "benchmark": "false"})["benchmark"] is False
    assert jobs.validate_params({"data": data, "stages": "prediction"})["stages"] == ["prediction"]
    assert jobs.validate_params({"data": data, "teacher": str(tiny_teacher_dir)})["teacher"] == str(tiny_teacher_dir)
    assert jobs.validate_params({"data": data, "student": "teacher-layers:2", "prune_ffn": "32"})["prune_ffn"] == 32
    assert jobs.validate_params({"task": "classification", "data": {"train_file": str(tiny_data_dir / "sst2/train.tsv"),
                                                                    "eval_file": str(tiny_data_dir / "sst2/validation.tsv")}})
    for bad, message in [
        ({"batch_size": 10_000}, "batch_size must be between 1 and 128"),
        ({"epohcs": 3}, "unknown parameter"),
        ({"learning_rate": float("nan")}, "finite"),
        ({"benchmark": "maybe"}, "true or false"),
        ({"stages": "distillation"}, "stages must be"),
        ({"student": "custom", "layers": 2, "hidden": 100, "heads": 3}, "divisible"),
        ({"student": "custom", "layers": 2}, "custom student needs hidden, heads"),
        ({"student": "teacher-layers:0"}, "teacher-layers:K needs K"),
        ({"student": "/tmp/evil"}, "student must be"),
        ({"task": "nope"}, "task must be one of"),
        ({"teacher": "../../etc/passwd"}, "the teacher must be"),
        ({"teacher": "/etc"}, "the teacher must be"),
        ({"data": {"data_dir": "x", "dataset": "glue"}}, "exactly one data source"),
        ({"data": {"dataset": "../glue"}}, "Hub data set id"),
        ({"data": {"train_file": "/nonexistent.csv", "eval_file": "/nonexistent.csv"}}, "does not exist"),
        ({"name": "///"}, "run name"),
        ({"student": "tinybert-4l-312", "prune_ffn": 600}, "prune_ffn prunes a student that starts from trained"),
        ({"student": "custom", "layers": 2, "hidden": 32, "heads": 4, "prune_ffn": 64}, "set its ffn instead"),
        ({"student": "teacher-layers:2", "prune_ffn": 8}, "prune_ffn must be between 16 and 4096"),
        ({"augment": 21}, "augment must be between 0 and 20"),
        ({"task": "mlm", "data": None, "augment": 4}, "augment rewrites the text of classification and qa examples"),
    ]:
        with pytest.raises(ValueError, match=message):
            jobs.validate_params({"data": data, **bad})
    with pytest.raises(ValueError, match="choose a data source"):
        jobs.validate_params({"task": "classification"})  # no local layout to fall back on
    assert jobs.safe_name("../../etc/passwd") == "etc-passwd"


def test_a_missing_data_folder_falls_back_to_the_embedded_sample(tmp_path):
    from hub.samples import samples_dir

    p = jobs.validate_params({"data": {"data_dir": str(tmp_path / "nowhere")}})
    source, used = jobs.resolve_data(p)
    if used["kind"] == "local":  # ../shared/data exists on this machine: it comes before the sample
        assert Path(source["data_dir"]).name == "data"
    else:
        assert used["kind"] == "embedded sample" and source["data_dir"] == str(samples_dir())
        assert "the chosen folder lacks sst2/train.tsv" in used["description"]
    assert str(tmp_path) not in used["description"]  # no server paths in what the user sees
    assert jobs.data_kwargs(p)["data_dir"] == source["data_dir"]


# ---------------------------------------------------------------- the estimate


def _fake_model(folder: Path, card: dict) -> Path:
    from hub.hardware import cpu_cores, cpu_model

    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0")
    card = {"task": "sst2", "status": "finished", "created_at": "2025-01-01T00:00:00+00:00",
            "hardware": {"cpu": cpu_model(), "cores": cpu_cores()}, **card}
    (folder / "run.json").write_text(json.dumps(card))
    return folder


def test_measured_rates_come_from_runs_of_the_same_task_kind(hub_home):
    from hub.jobs.estimate_rates import measured_rates
    from hub.paths import models_dir

    teacher = _fake_model(models_dir() / "old" / "teacher", {"kind": "teacher", "base_model": "minilm-l6",
                                                            "train_examples_per_s": 50.0})
    _fake_model(models_dir() / "old" / "student", {
        "kind": "student", "teacher": str(teacher), "train_examples_per_s": 200.0,
        "student": {"spec": "teacher-layers:3", "layers": 3, "hidden": 384, "heads": 12, "ffn": 1536}})
    args = ("minilm-l6", "teacher-layers:3", (3, 384, 12, 1536))
    assert measured_rates(*args, kind="classification")["distill"]["examples_per_s"] == 200.0
    qa = measured_rates(*args, kind="qa")  # SST-2 sentences say nothing of QA windows
    assert qa["distill"]["basis"] == qa["finetune"]["basis"] == "default guess"
    assert qa["distill"]["examples_per_s"] == jobs.KIND_RATES["qa"]["distill"] != jobs.DEFAULT_RATES["distill"]
    # a QA run's card counts windows/s (3 windows a question at 128 tokens); the estimate counts questions
    _fake_model(models_dir() / "qa" / "student", {
        "task": "squad", "kind": "student", "teacher": str(teacher), "train_examples_per_s": 30.0,
        "data": {"train_size": 100}, "train": {"epochs": 2.0}, "stages": ["intermediate", "prediction"],
        "train_time_s": 40.0, "student": {"spec": "teacher-layers:3"}})
    qa = measured_rates(*args, kind="qa")
    assert qa["distill"]["examples_per_s"] == 100 * 2 * 2 / 40.0 and qa["distill"]["basis"] == "measured"


def test_measured_rates_count_only_runs_trained_with_the_same_arithmetic(hub_home):
    """A bf16 run without attention dropout trains about 3x faster: it says nothing of an fp32 job, and the
    reverse; cards from before the settings existed count as fp32 with the model's own dropout."""
    from hub.jobs.estimate_rates import measured_rates
    from hub.paths import models_dir

    student = {"kind": "student", "teacher": "minilm-l6",
               "student": {"spec": "teacher-layers:3", "layers": 3, "hidden": 384, "heads": 12, "ffn": 1536}}
    _fake_model(models_dir() / "old" / "student", {**student, "train_examples_per_s": 100.0})
    args = ("minilm-l6", "teacher-layers:3", (3, 384, 12, 1536))
    assert measured_rates(*args, kind="classification")["distill"]["examples_per_s"] == 100.0
    fast = ("bf16", 0.0)
    guess = measured_rates(*args, kind="classification", arithmetic=fast)["distill"]
    assert guess["basis"] == "default guess"
    _fake_model(models_dir() / "fast" / "student", {**student, "train_examples_per_s": 300.0,
                                                    "train": {"precision": "bf16", "attention_dropout": 0.0}})
    assert measured_rates(*args, kind="classification", arithmetic=fast)["distill"]["examples_per_s"] == 300.0
    assert measured_rates(*args, kind="classification")["distill"]["examples_per_s"] == 100.0
    # the Distill tab's estimate reads the form's two fields (its dropout field sends "0" or "own")
    from ui.distill import estimate_markdown

    form = {"task": "sst2", "teacher": "minilm-l6", "student": "teacher-layers:3", "finetune_samples": 2000,
            "train_samples": 4000, "finetune_epochs": 1, "epochs": 1, "stages": ["intermediate", "prediction"],
            "batch_size": 32, "source": "Hub data set", "hub_id": "glue", "hub_config": "sst2"}
    assert "distill 8,000 example-passes at 100/s" in estimate_markdown({**form, "attention_dropout": "own"})
    assert "distill 8,000 example-passes at 300/s" in estimate_markdown({**form, "precision": "bf16",
                                                                         "attention_dropout": "0"})
    p = jobs.validate_params({"precision": "bf16", "attention_dropout": 0})
    assert (p["precision"], p["attention_dropout"]) == fast
    with pytest.raises(ValueError):
        jobs.validate_params({"precision": "fp16"})


def test_estimate_from_the_chosen_data_and_measured_rates(hub_home, tiny_data_dir, tmp_path):
    from hub.paths import models_dir

    base = {"task": "sst2", "teacher": "minilm-l6", "student": "teacher-layers:3", "finetune_samples": 800,
            "train_samples": 1000, "epochs": 2, "finetune_epochs": 1, "data": {"data_dir": str(tiny_data_dir)}}
    e = jobs.estimate(base)
    assert e["basis"] == "default guess" and e["rates"]["distill"]["basis"] == "default guess"
    assert e["train_rows"] == 400 and e["finetune_examples"] == 400  # the data holds 400 rows, not 800
    assert e["distill_examples"] == 400 * 2 * 2  # x epochs x stages
    rates, guess = jobs.DEFAULT_RATES, jobs.DEFAULT_PHASES
    expected = {"finetune": 400 / rates["finetune"], "evaluate-teacher": 872 / guess["evaluate-teacher"][0],
                "teacher-logits": 400 / guess["teacher-logits"][0], "distill": 1600 / rates["distill"],
                "evaluate": 872 / guess["evaluate"][0], "benchmark": guess["benchmark"][1] + 872 / guess["benchmark"][0]}
    assert list(e["phases"]) == list(expected)  # every phase, in the order a job runs them
    for name, seconds in expected.items():
        assert e["phases"][name]["seconds"] == pytest.approx(seconds, abs=0.1), name
    assert e["seconds"] == pytest.approx(sum(expected.values()) + jobs.OVERHEAD_S, abs=0.5)
    assert jobs.estimate(base, teacher_trained=True)["finetune_s"] == 0
    no_kd = jobs.estimate({**base, "stages": ["intermediate"], "benchmark": False})["phases"]
    assert "teacher-logits" not in no_kd and "benchmark" not in no_kd  # no prediction stage: nothing cached

    upload = tmp_path / "train.jsonl"
    upload.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(150)))
    files = {"train_file": str(upload), "eval_file": str(upload)}
    assert jobs.estimate({**base, "task": "classification", "data": files})["distill_examples"] == 150 * 2 * 2
    import pandas as pd

    pd.read_json(upload, lines=True).iloc[:120].to_parquet(tmp_path / "train.parquet")
    parquet = {"train_file": str(tmp_path / "train.parquet"), "eval_file": str(upload)}
    assert jobs.estimate({**base, "task": "classification", "data": parquet})["train_rows"] == 120
    capped = jobs.estimate({**base, "max_steps": 5, "batch_size": 10})
    assert capped["distill_examples"] == 5 * 10 * 2

    teacher = _fake_model(models_dir() / "old" / "teacher", {"kind": "teacher", "base_model": "minilm-l6",
                                                            "train_examples_per_s": 50.0})
    _fake_model(models_dir() / "old" / "student", {
        "kind": "student", "teacher": str(teacher), "train_examples_per_s": 200.0,
        "student": {"spec": "teacher-layers:3", "layers": 3, "hidden": 384, "heads": 12, "ffn": 1536}})
    _fake_model(models_dir() / "elsewhere" / "student", {  # another machine's run never counts
        "kind": "student", "teacher": str(teacher), "train_examples_per_s": 9999.0,
        "hardware": {"cpu": "another CPU", "cores": 64},
        "student": {"spec": "teacher-layers:3", "layers": 3, "hidden": 384, "heads": 12, "ffn": 1536}})
    m = jobs.estimate(base)
    assert m["basis"] == "default guess" and m["phases"]["benchmark"]["basis"] == "default guess"
    assert m["rates"]["finetune"]["examples_per_s"] == 50.0 and "same base model" in m["rates"]["finetune"]["source"]
    assert m["rates"]["distill"]["examples_per_s"] == 200.0 and "same teacher and student" in m["rates"]["distill"]["source"]
    assert m["phases"]["finetune"]["seconds"] == 8.0 and m["phases"]["distill"]["seconds"] == 8.0
    # an earlier finished job like this one on this machine gives the other phases (caching scaled by examples)
    from hub.hardware import cpu_cores, cpu_model

    took = {"evaluate-teacher": {"seconds": 3.0}, "teacher-logits": {"seconds": 10.0, "examples": 200},
            "evaluate": {"seconds": 2.0}, "benchmark": {"seconds": 12.0}}
    for name, params, hw in (("other", {**base, "eval_samples": 100}, cpu_model()), ("like", base, cpu_model()),
                             ("elsewhere", base, "another CPU")):
        folder = hub_home / "jobs" / f"20250101-00000{len(name)}-000000-{name[:4].encode().hex()[:4]}"
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(json.dumps({"name": name, "params": jobs.validate_params(params)}))
        (folder / "result.json").write_text(json.dumps({"status": "finished", "phases": took,
                                                        "hardware": {"cpu": hw, "cores": cpu_cores()}}))
    m = jobs.estimate(base)
    assert m["basis"] == "measured" and m["phases"]["benchmark"]["source"] == "measured: job like"
    assert m["phases"]["teacher-logits"]["seconds"] == 20.0  # 400 examples at the earlier job's 20/s
    assert m["seconds"] == pytest.approx(8 + 3 + 20 + 8 + 2 + 12 + jobs.OVERHEAD_S, abs=0.2)
    # from the trained teacher by its model name: no fine-tuning, same teacher origin
    assert jobs.estimate({**base, "teacher": "old/teacher"})["finetune_s"] == 0
    shape = jobs.estimate({**base, "student": "custom", "layers": 3, "hidden": 384, "heads": 12, "ffn": 1536})
    assert "same student shape" in shape["rates"]["distill"]["source"]
    other = jobs.estimate({**base, "student": "tinybert-4l-312"})
    assert other["rates"]["distill"]["basis"] == "default guess" and other["basis"] == "default guess"
    for bad in ("../../etc/passwd", "/etc", str(teacher)):  # client input: never a path
        with pytest.raises(ValueError, match="the teacher must be"):
            jobs.estimate({**base, "teacher": bad})


def test_estimate_reads_the_teacher_logits_an_earlier_job_cached(hub_home):
    """A job on the windows an earlier finished job cached (same teacher, data, limits) reads
    that cache: the form's estimate counts a read, not the teacher's pass — the job queued
    from the same form (``job_params``) has the same key, and so does a job that fine-tuned
    that teacher itself — and a job that read a cache never lends its seconds to a pass."""
    from hub.hardware import cpu_cores, cpu_model
    from hub.paths import models_dir
    from ui.distill_estimate import estimate_markdown
    from ui.distill_form import LOCAL, data_source, job_params, local_datasets

    teacher = _fake_model(models_dir() / "old" / "teacher", {"kind": "teacher", "base_model": "minilm-l6"})
    form = {"task": "sst2", "teacher": "old/teacher", "student": "teacher-layers:3", "train_samples": 300,
            "epochs": 1, "stages": ["intermediate", "prediction"], "source": LOCAL,
            "local_name": next(iter(local_datasets("sst2")))}
    cache_file = hub_home / "cache" / "teacher-logits" / "abc.safetensors"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"0")
    n = len(list((hub_home / "jobs").glob("*"))) if (hub_home / "jobs").exists() else 0

    def finished_job(form: dict, took: dict, taught: Path | None = None) -> None:
        nonlocal n
        n += 1
        folder = hub_home / "jobs" / f"2025010{n}-000000-000000-abcd"
        folder.mkdir(parents=True)
        params = jobs.validate_params(job_params(form, data_source(form)))  # what Start queues
        (folder / "job.json").write_text(json.dumps({"name": f"job{n}", "params": params}))
        (folder / "result.json").write_text(json.dumps({
            "status": "finished", "phases": {"teacher-logits": took},
            "teacher": {"path": str(taught)} if taught else None,
            "hardware": {"cpu": cpu_model(), "cores": cpu_cores()}}))

    def logits(**change) -> dict:
        return jobs.estimate(job_params({**form, **change}, data_source({**form, **change})))["phases"][
            "teacher-logits"]

    assert "cached" not in logits()
    assert "cache the teacher's logits ≈" in estimate_markdown(form)
    finished_job(form, {"seconds": 30.0, "examples": 300, "cache_file": str(cache_file)})  # wrote it
    wrote = logits()
    assert wrote["cached"] and wrote["basis"] == "default guess" and "abc.safetensors" in wrote["source"]
    assert wrote["seconds"] == pytest.approx(jobs.CACHE_READ[1] + 300 / jobs.CACHE_READ[0], abs=0.1)
    finished_job({**form, "seed": 7}, {"seconds": 2.4, "examples": 300, "cache_file": str(cache_file),
                                       "read": True})  # a newer job read it (the seed draws nothing here)
    assert logits() == {"seconds": 2.4, "basis": "measured", "cached": True,
                        "source": "measured: job job2, whose cached teacher logits these windows read"}
    assert "read the teacher's logits an earlier job cached ≈ 2s;" in estimate_markdown(form)
    # other windows: the teacher's pass, at the rate of job1's pass (job2's read is no pass)
    other = logits(train_samples=200)
    assert "cached" not in other and other["seconds"] == pytest.approx(20.0) and other["source"] == "measured: job job1"
    # the form's estimate finds that job too (it once set a custom shape on every student: no job matched)
    assert "cache the teacher's logits ≈ 20s" in estimate_markdown({**form, "train_samples": 200})
    assert "cached" not in logits(max_length=64)
    assert "cached" not in logits(text_column="sentence2")  # another column: other windows
    assert "cached" not in logits(augment=1, alpha=0.0)
    assert "cached" not in jobs.estimate({**job_params(form, None), "teacher": "old/teacher"},
                                         teacher_trained=False)["phases"]["teacher-logits"]  # fine-tuned: new weights
    # a job that fine-tuned minilm-l6 cached its own teacher's logits: a job distilling from that teacher reads them
    tuned = _fake_model(models_dir() / "quick" / "teacher", {"kind": "teacher", "base_model": "minilm-l6"})
    finished_job({**form, "teacher": "minilm-l6", "train_samples": 100},
                 {"seconds": 10.0, "examples": 100, "cache_file": str(cache_file)}, taught=tuned)
    assert logits(teacher="quick/teacher", train_samples=100)["cached"]
    cache_file.unlink()  # evicted from the cache folder: a pass again
    assert "cached" not in logits()

# ---------------------------------------------------------------- registry, uploads, deleting


def test_registry_lists_job_models_and_pairs_them(hub_home):
    from hub.paths import models_dir

    teacher = _fake_model(models_dir() / "run" / "teacher", {"kind": "teacher", "base_model": "minilm-l6"})
    _fake_model(models_dir() / "run" / "student", {"kind": "student", "teacher": str(teacher),
                                                   "created_at": "2025-01-02T00:00:00+00:00"})
    (models_dir() / "run" / "broken").mkdir()
    (models_dir() / "run" / "broken" / "run.json").write_text("{}")  # no weights: not listed
    assert [m.key for m in jobs.trained_models("sst2")] == ["run/student", "run/teacher"]
    models = jobs.allowed_models("sst2")
    assert set(models) == {"run/student", "run/teacher"} and models["run/student"]["role"] == "student"
    assert jobs.default_pair(models) == ("run/teacher", "run/student")
    assert jobs.short_name(teacher) == "run/teacher" and jobs.short_name("minilm-l6") == "minilm-l6"
    assert jobs.resolve_teacher("run/teacher", "sst2") == str(teacher.resolve())


def test_teacher_aliases_match_hub_models():
    from hub import models
    from hub.jobs.registry import TEACHER_ALIASES

    assert TEACHER_ALIASES == models.ALIASES  # the torch-free copy must not drift


def test_stage_upload_splits_and_rejects(tmp_path):
    import pandas as pd

    from hub.data import DataError

    src = tmp_path / "mine.csv"
    src.write_text("text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(100)))
    out = jobs.stage_upload(src, None, tmp_path / "staged")
    assert len(pd.read_json(out["train_file"], lines=True)) == 90
    assert len(pd.read_json(out["eval_file"], lines=True)) == 10
    with pytest.raises(DataError, match="limit"):
        jobs.stage_upload(src, None, tmp_path / "s2", max_rows=50)
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    with pytest.raises(DataError, match="must be one of"):
        jobs.stage_upload(bad, None, tmp_path / "s3")


def _squad_upload(path: Path, contexts: int, per_context: int | list[int], bad: str | None = None) -> Path:
    """A SQuAD 2.0 file: ``contexts`` paragraphs of ``per_context`` questions each (or
    ``per_context[c]``; the answer "word<k>" is in the context); ``bad`` names a question
    whose answer_start is off by one."""
    paragraphs = []
    for c in range(contexts):
        n = per_context[c] if isinstance(per_context, list) else per_context
        context = f"paragraph {c} says word{c} twice: word{c}."
        start = context.index(f"word{c}")
        qas = [{"id": f"q{c}-{k}", "question": f"what does paragraph {c} say ({k})?", "is_impossible": False,
                "answers": [{"text": f"word{c}", "answer_start": start + (f"q{c}-{k}" == bad)}]}
               for k in range(n)]
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "Upload", "paragraphs": paragraphs}]}))
    return path


def test_the_held_out_paragraphs_come_close_to_a_tenth_of_the_questions(tmp_path):
    """A paragraph that would take the held-out split further from 10% is skipped, so
    one large paragraph never becomes the whole evaluation set."""
    from hub.squad import read_squad

    for seed in range(5):
        src = _squad_upload(tmp_path / "uneven.json", contexts=31, per_context=[50] + [1] * 30)  # 80 questions
        out = jobs.stage_squad_upload(src, None, tmp_path / f"s{seed}", seed=seed)
        assert len(read_squad(out["eval_file"])) == 8
    src = _squad_upload(tmp_path / "two.json", contexts=2, per_context=[50, 40])  # both over twice the 9
    assert len(read_squad(jobs.stage_squad_upload(src, None, tmp_path / "two")["eval_file"])) == 40  # the smaller


def test_stage_squad_upload_holds_out_whole_paragraphs_and_rejects(tmp_path):
    from hub.data import DataError
    from hub.squad import read_squad

    src = _squad_upload(tmp_path / "mine.json", contexts=40, per_context=5)
    out = jobs.stage_squad_upload(src, None, tmp_path / "staged")
    train, held = read_squad(out["train_file"]), read_squad(out["eval_file"])
    assert out["eval_file"].endswith("eval.json") and len(train) + len(held) == 200 and len(held) == 20
    assert not {ex["context"] for ex in train} & {ex["context"] for ex in held}  # no paragraph on both sides
    again = jobs.stage_squad_upload(src, None, tmp_path / "again")
    assert read_squad(again["eval_file"]) == held  # seeded
    both = jobs.stage_squad_upload(src, out["eval_file"], tmp_path / "both")
    assert len(read_squad(both["train_file"])) == 200 and len(read_squad(both["eval_file"])) == 20

    import pandas as pd  # Hub-style rows are taken too

    rows = tmp_path / "rows.jsonl"
    pd.DataFrame(train).to_json(rows, orient="records", lines=True)
    assert read_squad(jobs.stage_squad_upload(rows, None, tmp_path / "rows")["train_file"])
    for upload, message in [
        (_squad_upload(tmp_path / "bad.json", 3, 10, bad="q1-4"), "question 'q1-4'"),
        (tmp_path / "mine.csv", "must be one of .json, .jsonl, .parquet"),
        (_squad_upload(tmp_path / "one.json", 1, 30), "at least 2 contexts"),
    ]:
        upload.touch()
        with pytest.raises(DataError, match=message):
            jobs.stage_squad_upload(upload, None, tmp_path / "refused")
    with pytest.raises(DataError, match="200 questions; the limit is 100"):
        jobs.stage_squad_upload(src, None, tmp_path / "refused", max_questions=100)
    assert not (tmp_path / "refused").exists()


def test_delete_job_models_for_its_owner_only(make_queue, gate, hub_home):
    from hub.leaderboard import LeaderboardStore
    from hub.paths import models_dir

    q = make_queue()
    folder = models_dir() / "mine" / "student"
    a = q.submit("fake", {"gate": gate("a"), "folder": str(folder)}, owner="browser")
    wait_for(lambda: q.status(a)["outputs"] and folder.is_dir())
    with pytest.raises(JobActive):
        jobs.delete_job_models(a, "browser", queue=q)  # still running
    Path(gate("a")).touch()
    q.wait(a, timeout=20)
    store = LeaderboardStore()
    store.add({"model": str(folder.resolve()), "name": "mine/student", "task": "sst2", "status": "finished",
               "accuracy": 0.9})
    with pytest.raises(PermissionError):
        jobs.delete_job_models(a, None, queue=q)
    out = jobs.delete_job_models(a, "browser", queue=q)
    assert out["deleted"] == ["mine/student"] and out["leaderboard_rows"] == 1
    assert not folder.exists() and not (models_dir() / "mine").exists() and store.rows() == []
    assert q.status(a)["models_deleted"] == ["mine/student"]


# ---------------------------------------------------------------- the pipeline's decisions


@pytest.mark.parametrize("card_status, job_status", [("finished", "finished"), ("stopped", "stopped")])
def test_pipeline_reads_the_run_card_not_the_stop_flag(monkeypatch, hub_home, tiny_data_dir, tiny_teacher_dir,
                                                       tmp_path, card_status, job_status):
    """A stop that arrives after the last step leaves a finished model: the job
    says what the card says. A stopped model gets an unranked leaderboard row."""
    import threading

    import hub.distill
    from hub.jobs import pipeline
    from hub.jobs.runner import JobContext
    from hub.leaderboard import LeaderboardStore
    from hub.runs import write_card

    cancel = threading.Event()

    specs, caches = [], []

    def fake_distill(task, teacher_ref, spec, data, output_dir, cfg, dcfg, progress=None, cancel=None,
                     teacher_cache=None, calibrate_null=False):
        specs.append((spec, cfg.precision, cfg.attention_dropout))
        caches.append(teacher_cache)
        Path(output_dir).mkdir(parents=True)
        cached = str(teacher_cache / "abc.safetensors")  # an earlier job's logits, read
        progress({"stage": "teacher-logits", "step": 32, "total": 32, "losses": {}, "cache_file": cached})
        progress({"stage": "prediction", "step": 1, "total": 1, "losses": {"prediction": 0.1}})
        cancel.set()  # the stop arrives as training ends
        card = {"kind": "student", "task": "sst2", "status": card_status, "eval": {"student": {"accuracy": 0.5}},
                "teacher_cache": {"file": cached, "reused": True, "time_s": 1.25}}
        write_card(output_dir, card)
        return card

    monkeypatch.setattr(hub.distill, "distill", fake_distill)
    params = jobs.validate_params({"teacher": str(tiny_teacher_dir), "data": {"data_dir": str(tiny_data_dir)},
                                   "student": "teacher-layers:2", "prune_ffn": 32, "train_samples": 32,
                                   "eval_samples": 16, "precision": "bf16", "attention_dropout": 0})
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "x", "name": "decide", "params": params}, cancel)
    result = pipeline.run_job(ctx)
    ctx.close()
    assert result["status"] == job_status and result["student"]["status"] == card_status
    # the job's pruning and arithmetic
    assert [(s.kind, s.layers, s.prune_ffn, p, a) for s, p, a in specs] == [("teacher-layers", 2, 32, "bf16", 0.0)]
    assert caches == [hub_home / "cache" / "teacher-logits"]  # jobs keep the teacher's logits for the next job
    # a read is timed by the card (hashing and loading), not by the events that came after both
    assert ctx.phases["teacher-logits"] == {"seconds": 1.25, "examples": 32, "read": True,
                                            "cache_file": str(caches[0] / "abc.safetensors")}
    assert result["data"]["kind"] == "local"
    rows = LeaderboardStore().rows()
    if job_status == "finished":
        assert result["benchmark"].startswith("skipped") and rows == []
    else:
        assert [(r["name"], r["status"], r["ranked"]) for r in rows] == [("decide/student", "stopped", 0)]
    log_text = (folder / "log.txt").read_text()
    assert "data: local data folder" in log_text and str(tiny_data_dir) not in log_text


# ---------------------------------------------------------------- real jobs (tiny models, real child processes)


def test_real_job_killed_mid_run_the_queue_goes_on(hub_home, tiny_data_dir, tiny_teacher_dir, tmp_path):
    """The issue's test: SIGKILL a training child mid-run. The server keeps serving,
    the job is failed with its log tail, its run card says failed, and the next
    job (fine-tune a headless teacher, distill, quick benchmark in a fresh process)
    runs to the end."""
    from conftest import make_bare_bert

    from hub.leaderboard import LeaderboardStore
    from hub.paths import models_dir
    from hub.runs import read_card

    data = {"data_dir": str(tiny_data_dir)}
    q = JobQueue(poll_s=0.1)
    try:
        doomed = q.submit("distill", {
            "teacher": str(tiny_teacher_dir), "student": "teacher-layers:2", "data": data, "train_samples": 100,
            "eval_samples": 16, "batch_size": 2, "max_length": 32, "epochs": 10, "stages": "prediction",
            "name": "doomed", "benchmark": False})  # 500 steps: it is killed long before the end
        base = make_bare_bert(tmp_path / "base")
        full = q.submit("distill", {
            "teacher": str(base), "student": "teacher-layers:1", "data": data, "finetune_samples": 64,
            "train_samples": 64, "eval_samples": 32, "batch_size": 16, "max_length": 32, "max_steps": 3,
            "finetune_learning_rate": 1e-3, "learning_rate": 1e-3, "name": "tiny run"})
        wait_for(lambda: (q.status(doomed)["progress"].get("step") or 0) >= 2, timeout=180)
        os.kill(q.pid(doomed), signal.SIGKILL)
        killed = q.wait(doomed, timeout=60)
        assert killed["state"] == "failed" and "killed by SIGKILL" in killed["error"]
        assert any("[prediction] step" in line or "prediction:" in line for line in killed["log_tail"])
        card = read_card(models_dir() / "doomed" / "student")
        assert card["status"] == "failed" and "SIGKILL" in card["error"]
        # the queue goes on (its worker picks the next job on its next poll: under load, not at once)
        wait_for(lambda: q.status(full)["state"] in ("running", "finished"), timeout=30)

        status = q.wait(full, timeout=300)
        assert status["state"] == "finished", (status["error"], status["log"][-10:])
        assert status["name"] == "tiny-run"
        assert [s for s, _ in status["plan"]] == ["finetune", "intermediate", "prediction"]
        assert set(status["losses"]) == {"ce", "embedding", "attention", "hidden", "prediction"}
        assert status["result"]["data"]["kind"] == "local" and status["data"]["kind"] == "local"
        assert status["result"]["benchmark"] == "quick"
        phases = status["result"]["phases"]  # what the next job's ETAs and estimate read
        assert {"evaluate-teacher", "teacher-logits", "evaluate", "benchmark"} <= set(phases)
        assert phases["teacher-logits"]["examples"] == 64 and phases["benchmark"]["seconds"] > 0
        assert Path(phases["teacher-logits"]["cache_file"]).is_file()  # the next job on these windows reads it
        assert any("cached the teacher's logits for 64 training examples" in line for line in status["log"])
        for role in ("teacher", "student"):
            assert read_card(models_dir() / "tiny-run" / role)["status"] == "finished"
        rows = LeaderboardStore().rows(task="sst2")
        assert sorted(r["name"] for r in rows) == ["tiny-run/student", "tiny-run/teacher"]
        assert all(r["status"] == "finished" and r["ranked"] == 1 and r["protocol"] == "quick" for r in rows)
        student = next(r for r in rows if r["role"] == "student")
        assert student["speedup_p50"] and student["retention"] is not None
    finally:
        q.close(cancel_running=True, timeout=60)


def test_real_job_stopped_keeps_its_checkpoint(hub_home, tiny_data_dir, tiny_teacher_dir):
    from hub.leaderboard import LeaderboardStore
    from hub.paths import models_dir
    from hub.runs import read_card

    q = JobQueue(poll_s=0.1)
    try:
        job_id = q.submit("distill", {
            "teacher": str(tiny_teacher_dir), "student": "teacher-layers:2", "data": {"data_dir": str(tiny_data_dir)},
            "train_samples": 100, "eval_samples": 16, "batch_size": 2, "max_length": 32, "epochs": 10,
            "stages": "prediction", "name": "stopped"})
        wait_for(lambda: (q.status(job_id)["progress"].get("step") or 0) >= 2, timeout=180)
        assert q.cancel(job_id) is True
        status = q.wait(job_id, timeout=120)
    finally:
        q.close(cancel_running=True, timeout=60)
    assert status["state"] == "stopped", (status["error"], status["log"][-10:])
    assert status["result"]["student"]["status"] == "stopped"
    student = models_dir() / "stopped" / "student"
    assert read_card(student)["status"] == "stopped"
    assert list((student / "stages" / "prediction").glob("checkpoint-*"))  # resumable
    rows = LeaderboardStore().rows()
    assert [(r["name"], r["status"], r["ranked"]) for r in rows] == [("stopped/student", "stopped", 0)]


# ---------------------------------------------------------------- phases without steps, stages, general students


def test_phases_without_steps_report_their_start_progress_and_eta(tmp_path, monkeypatch):
    """Evaluation, caching the teacher's logits and the benchmark are phases: each
    event carries its start; caching counts examples with a measured ETA, the
    benchmark takes an earlier job's time as its ETA, an evaluation shows its time
    so far. The seconds each took go to the result (``phases``)."""
    import threading

    from hub.jobs import runner
    from hub.jobs.events import EventView
    from hub.jobs.runner import JobContext
    from ui.run_status import running_detail

    monkeypatch.setattr(runner, "PROGRESS_EVERY_S", 0.0)  # every caching batch is written
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "x", "name": "phases", "params": {}}, threading.Event())
    ctx.expected_s = {"benchmark": 30.0}
    view = EventView(folder / "events.jsonl")
    ctx.set_plan([("finetune", 2), ("prediction", 2)])
    ctx.progress({"stage": "finetune", "step": 2, "total": 2, "eta_s": 0.0, "losses": {"ce": 0.5}})
    ctx.progress({"stage": "evaluate", "step": 0, "total": 1, "losses": {}})  # after fine-tuning: the teacher's
    view.update()
    p = view.progress(now=view.phase["started_at"] + 5)
    assert p["stage"] == "evaluate-teacher" and p["fraction"] == 0.5 and p["eta_s"] is None
    assert running_detail(p, now=p["phase_started_at"] + 5) == "Evaluating the teacher … · 5s so far"

    ctx.progress({"stage": "teacher-logits", "step": 0, "total": 100, "losses": {}})
    ctx.progress({"stage": "teacher-logits", "step": 40, "total": 100, "eta_s": 6.0, "losses": {}})
    view.update()
    t = view.phase["t"]
    p = view.progress(now=t)
    assert (p["phase_step"], p["phase_total"], p["eta_s"]) == (40, 100, 6.0) and p["fraction"] == 0.5
    assert running_detail(p) == "Caching the teacher's outputs … · 40/100 examples (40%) · ETA 6s"
    assert view.progress(now=t + 2)["eta_s"] == pytest.approx(4.0)  # counted down between events
    assert "so far" in running_detail(view.progress(now=t + 10), now=t + 10)  # spent: the time so far
    ctx.progress({"stage": "teacher-logits", "step": 100, "total": 100, "eta_s": 0.0, "losses": {}})
    ctx.progress({"stage": "prediction", "step": 1, "total": 2, "eta_s": 1.0, "losses": {"prediction": 0.3}})
    view.update()
    assert view.progress()["stage"] == "prediction" and "phase_started_at" not in view.progress()

    ctx.phase("benchmark")
    view.update()
    p = view.progress(now=view.phase["t"])
    assert p["eta_s"] == 30.0 and running_detail(p).endswith("· ETA 30s")
    ctx.end_phase()
    ctx.close()
    assert set(ctx.phases) == {"evaluate-teacher", "teacher-logits", "benchmark"}
    assert ctx.phases["teacher-logits"]["examples"] == 100 and all(v["seconds"] >= 0 for v in ctx.phases.values())
    log_text = (folder / "log.txt").read_text()
    assert "caching the teacher's logits for 100 training examples ..." in log_text
    assert "cache_file" not in ctx.phases["teacher-logits"]  # computed: the pipeline adds the file it wrote


def test_a_job_that_reads_cached_teacher_logits_says_so_and_marks_the_read(tmp_path):
    """Logits an earlier run cached are read, not computed: the log says so and the phase
    is marked (``read``, ``cache_file``) so that no estimate takes its seconds for a pass."""
    import threading

    from hub.jobs.runner import JobContext

    ctx = JobContext(tmp_path, {"id": "x", "name": "read", "params": {}}, threading.Event())
    ctx.progress({"stage": "teacher-logits", "step": 64, "total": 64, "losses": {},
                  "cache_file": "/cache/teacher-logits/abc.safetensors"})
    ctx.progress({"stage": "prediction", "step": 1, "total": 2, "eta_s": 1.0, "losses": {"prediction": 0.3}})
    ctx.close()
    took = ctx.phases["teacher-logits"]
    assert (took["examples"], took["cache_file"], took["read"]) == (64, "/cache/teacher-logits/abc.safetensors", True)
    log_text = (tmp_path / "log.txt").read_text()
    assert "read the teacher's logits for 64 training examples from the cache (abc.safetensors)" in log_text
    assert "caching the teacher's logits" not in log_text


def test_a_general_job_takes_the_stages_its_kind_has(hub_home, tiny_teacher_dir, tmp_path, monkeypatch):
    """A ``general`` job (TinyBERT general distillation: no task head) runs the
    intermediate stage whatever was ticked, says so in its log, and skips the
    benchmark; other kinds keep what was ticked."""
    import threading

    import hub.distill
    from hub.config import LOGIT_CACHING_KINDS
    from hub.jobs import pipeline
    from hub.jobs.runner import JobContext
    from hub.kinds import get_kind
    from hub.runs import write_card

    for ticked in (["intermediate", "prediction"], ["prediction"], "intermediate"):
        assert jobs.validate_params({"task": "general", "stages": ticked})["stages"] == ["intermediate"]
    assert jobs.validate_params({"stages": ["prediction"]})["stages"] == ["prediction"]
    for task in ("sst2", "general"):
        with pytest.raises(ValueError, match="stages must be a non-empty subset"):
            jobs.validate_params({"task": task, "stages": []})
    kinds = ("classification", "qa", "mlm", "general", "generation")
    assert {k for k in kinds if get_kind(k).cache_logits} == set(LOGIT_CACHING_KINDS)  # the torch-free copy

    seen = {}

    def fake_distill(task, teacher_ref, spec, data, output_dir, cfg, dcfg, progress=None, cancel=None,
                     teacher_cache=None, calibrate_null=False):
        seen["stages"] = dcfg.stages
        Path(output_dir).mkdir(parents=True)
        card = {"kind": "student", "task": "general", "status": "finished", "eval": {"student": {"hidden_mse": 0.1}}}
        write_card(output_dir, card)
        return card

    monkeypatch.setattr(hub.distill, "distill", fake_distill)
    params = jobs.validate_params({"task": "general", "teacher": str(tiny_teacher_dir), "student": "teacher-layers:1",
                                   "train_samples": 16, "eval_samples": 16, "max_length": 32})
    folder = tmp_path / "job"
    folder.mkdir()
    ctx = JobContext(folder, {"id": "x", "name": "general", "params": params}, threading.Event())
    result = pipeline.run_job(ctx)
    ctx.close()
    assert result["status"] == "finished" and seen["stages"] == ("intermediate",)
    assert result["benchmark"].startswith("skipped") and result["rows"] == []
    log_text = (folder / "log.txt").read_text()
    assert "task general runs only the intermediate stage: general distillation has no task head" in log_text
    assert "distilling into teacher-layers:1 (intermediate)" in log_text and "no benchmark" in log_text


def test_general_students_are_offered_to_the_tasks_that_start_from_them(hub_home, tiny_data_dir):
    from hub.paths import models_dir

    shape = {"spec": "tinybert-4l-312", "layers": 4, "hidden": 312, "heads": 12, "ffn": 1200}
    general = _fake_model(models_dir() / "general-tb4" / "student",
                          {"kind": "student", "task": "general", "student": shape})
    _fake_model(models_dir() / "half" / "student", {"kind": "student", "task": "general", "status": "stopped",
                                                   "student": shape})
    _fake_model(models_dir() / "run" / "student", {"kind": "student", "student": shape})  # an sst2 student
    for task in ("sst2", "classification", "squad", "mlm"):
        assert list(jobs.general_students(task)) == ["general-tb4/student"], task
    assert jobs.general_students("generation") == {} and jobs.general_students("general") == {}
    assert jobs.general_students("sst2")["general-tb4/student"]["label"] == \
        "general-tb4/student (general student, tinybert-4l-312 shape)"

    data = {"data_dir": str(tiny_data_dir)}
    p = jobs.validate_params({"student": "general-tb4/student", "data": data})
    assert p["student"] == str(general.resolve())
    assert jobs.validate_params(p)["student"] == p["student"]  # the child reads the folder back
    for bad in ("half/student", "run/student", str(models_dir() / "run" / "student"), "/tmp/evil"):
        with pytest.raises(ValueError, match="student must be .*a general student of this server"):
            jobs.validate_params({"student": bad, "data": data})
    with pytest.raises(ValueError, match="student must be"):
        jobs.validate_params({"task": "generation", "student": "general-tb4/student"})
    assert jobs.estimate({"teacher": "minilm-l6", "student": "general-tb4/student", "data": data})["seconds"] > 0


def test_bench_refuses_general_students_in_one_line(capsys):
    from hub.cli import main

    assert main(["bench", "--task", "general", "--model", "arch:tinybert-4l-312"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "benchmark it through the task it is distilled for" in err


def test_estimate_of_packed_text_counts_tokens(hub_home):
    """Generation (blocks of max_length tokens) is estimated in tokens: twice the block length costs twice as
    long, and the app's generation defaults are a few minutes at the default rate, not hours."""
    from hub.config import TASK_JOB_DEFAULTS
    from hub.jobs.estimate_rates import DEFAULT_TOKEN_RATES

    base = {"task": "generation", "teacher": "smollm2-135m", "student": "teacher-layers:10", "train_samples": 32,
            "eval_samples": 16, "stages": ["prediction"]}
    short = jobs.estimate({**base, "max_length": 64}, teacher_trained=True)
    long = jobs.estimate({**base, "max_length": 128}, teacher_trained=True)
    assert long["unit"] == "blocks of 128 tokens" and short["unit"] == "blocks of 64 tokens"
    assert long["phases"]["distill"]["seconds"] == pytest.approx(2 * short["phases"]["distill"]["seconds"], rel=0.02)
    assert long["phases"]["distill"]["seconds"] == pytest.approx(
        32 * 128 / DEFAULT_TOKEN_RATES["generation"]["distill"], rel=0.02)
    assert long["basis"] == jobs.DEFAULT_GUESS
    d = TASK_JOB_DEFAULTS["generation"]
    app_default = jobs.estimate({**base, **d, "stages": list(d["stages"])}, teacher_trained=True)
    assert 60 < app_default["seconds"] < 15 * 60
    classification = jobs.estimate({"task": "sst2", "teacher": "minilm-l6", "student": "teacher-layers:3"})
    assert classification["unit"] == "examples"


def test_task_job_defaults_are_valid_settings():
    from hub.config import TASK_JOB_DEFAULTS
    from ui.distill import SCHEMA_JOB_DEFAULTS, base_teacher, teacher_choices
    from ui.distill_form import _teacher_trained

    for task, d in TASK_JOB_DEFAULTS.items():
        assert set(d) <= set(SCHEMA_JOB_DEFAULTS)
        params = {"task": task, "teacher": base_teacher(task), "student": "teacher-layers:2", **d}
        if "stages" in d:
            params["stages"] = list(d["stages"])
        jobs.validate_params(params, need_data=False)
    # generation teaches with the causal LM as it is: no fine-tuning in the estimate or in the list's wording
    assert base_teacher("generation") == "smollm2-135m" and _teacher_trained("smollm2-135m", "generation") is True
    assert teacher_choices("generation")[0] == ("smollm2-135m (base model, teaches as it is)", "smollm2-135m")
    assert teacher_choices("sst2")[0] == ("minilm-l6 (base model, will be fine-tuned)", "minilm-l6")
    from ui.distill import task_defaults

    assert task_defaults("generation") == [128, 16, 128, ["prediction"]]
    assert task_defaults("squad")[2] == 384  # the CLI's QA window; the rest the schema's
    assert task_defaults("sst2") == [4000, 872, 128, ["intermediate", "prediction"]]


def test_estimate_scores_a_ready_base_teacher_and_reads_the_form(hub_home, tmp_path):
    """smollm2-135m teaches as it is but has no scores: its evaluation is counted even once the name resolves to
    its converted folder (a benchmarked teacher is listed by that name); the Distill tab's estimate uses the form's
    eval size and length."""
    from hub.leaderboard import LeaderboardStore
    from ui.distill import estimate_markdown

    folder = tmp_path / "cache" / "smollm2-135m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    LeaderboardStore().add_rows([{"task": "generation", "model": str(folder), "name": "smollm2-135m",
                                  "role": "teacher", "status": "finished", "hardware": "test-cpu | 2 cores",
                                  "runtime": "torch", "protocol": "full", "run_card": {}}])
    assert jobs.resolve_teacher("smollm2-135m", "generation") == str(folder.resolve())
    base = {"task": "generation", "teacher": "smollm2-135m", "student": "teacher-layers:3", "train_samples": 128,
            "eval_samples": 16, "max_length": 128, "stages": ["prediction"]}
    assert "evaluate-teacher" in jobs.estimate(base, teacher_trained=True)["phases"]
    form = {**base, "finetune_samples": 2000, "finetune_epochs": 1, "epochs": 1, "batch_size": 32}
    assert estimate_markdown(form) != estimate_markdown({**form, "eval_samples": 872})
    assert estimate_markdown(form) != estimate_markdown({**form, "max_length": 64})
    assert "distill 16,384 tokens (blocks of 128 tokens) at 88 tokens/s" in estimate_markdown(form)  # packed text


def test_estimate_shape_of_a_pruned_student(tiny_teacher_dir):
    from hub.jobs.estimate import student_shape

    p = {"student": "teacher-layers:2", "teacher": str(tiny_teacher_dir), "prune_ffn": None}
    assert student_shape(p) == (2, 32, 4, 64)
    assert student_shape({**p, "prune_ffn": 16}) == (2, 32, 4, 16)  # rates are looked up for the pruned shape


def test_an_augmented_job_distills_the_copies_with_soft_labels_only(monkeypatch, hub_home, tiny_data_dir,
                                                                     tiny_teacher_dir, tmp_path):
    """``augment: N``: the training examples and up to N copies each (words proposed by the
    teacher's input embeddings) are distilled with alpha 0; the run's data records it."""
    from conftest import run_job_without_training

    params = jobs.validate_params({"teacher": str(tiny_teacher_dir), "data": {"data_dir": str(tiny_data_dir)},
                                   "student": "teacher-layers:2", "train_samples": 32, "eval_samples": 16,
                                   "augment": 3, "alpha": 0.7, "benchmark": False})
    folder = tmp_path / "job"
    result, ctx, seen = run_job_without_training(monkeypatch, params, folder, "accuracy")
    seen.update(texts=list(seen["data"].train_texts), labels=list(seen["data"].train_labels),
                source=seen["data"].source)
    assert result["status"] == "finished" and seen["alpha"] == 0.0
    aug = seen["source"]["augmentation"]
    assert aug["originals"] == 32 and aug["proposer"] == "embeddings" and aug["model"] == str(tiny_teacher_dir)
    assert len(seen["texts"]) == 32 + aug["augmented"] == seen["source"]["train_size"] and aug["augmented"] > 32
    originals = dict(zip(seen["texts"][:32], seen["labels"][:32]))
    assert len(originals) <= 32 and all(t not in originals for t in seen["texts"][32:])
    assert ctx.phases["augment"]["examples"] == 32
    assert "augmenting 32 training examples" in (folder / "log.txt").read_text()


def test_estimate_of_an_augmented_job(hub_home, tiny_data_dir):
    base = {"task": "sst2", "teacher": "minilm-l6", "data": {"data_dir": str(tiny_data_dir)}, "train_samples": 100}
    plain = jobs.estimate(base, teacher_trained=True)
    more = jobs.estimate({**base, "augment": 4}, teacher_trained=True)
    assert "augment" not in plain["phases"] and more["phases"]["augment"]["seconds"] > 0
    assert more["distill_examples"] == pytest.approx(plain["distill_examples"] * (1 + 4 * 0.73), rel=0.02)
    from hub.config import AUGMENT_KINDS
    from hub.jobs.estimate_rates import AUGMENT_YIELD

    assert set(AUGMENT_YIELD) == set(AUGMENT_KINDS)  # each kind that can be augmented has its measured growth


def test_default_guess_for_the_fast_arithmetic_uses_the_measured_speed_up(hub_home, monkeypatch):
    """With no earlier run trained the same way, a bf16 job without attention dropout is guessed at the fp32 rate
    times the speed-up measured here, only where the CPU multiplies bf16 natively, only where it was measured."""
    import hub.hardware as H
    from hub.jobs import estimate_rates as R

    args = ("minilm-l6", "teacher-layers:3", (3, 384, 12, 1536))
    fast = ("bf16", 0.0)
    monkeypatch.setattr(H, "cpu_flags", lambda: {"avx512f", "amx_bf16", "amx_tile"})
    qa = R.measured_rates(*args, kind="qa", arithmetic=fast)
    assert qa["distill"]["examples_per_s"] == round(R.KIND_RATES["qa"]["distill"] * 2.16, 2)
    assert "x2.16" in qa["distill"]["source"]
    assert qa["finetune"]["examples_per_s"] == R.KIND_RATES["qa"]["finetune"]  # not measured: the fp32 guess
    assert "fp32" in qa["finetune"]["source"]
    sst2 = R.measured_rates(*args, kind="classification", arithmetic=fast)["distill"]
    assert sst2["examples_per_s"] == round(R.DEFAULT_RATES["distill"] * 1.27, 2)
    # bf16 with the model's own dropout was not measured as a whole; fp32 is the fp32 guess
    assert R.measured_rates(*args, kind="qa", arithmetic=("bf16", None))["distill"]["examples_per_s"] == 10.0
    assert R.measured_rates(*args, kind="qa")["distill"]["examples_per_s"] == 10.0
    monkeypatch.setattr(H, "cpu_flags", lambda: {"avx512f"})  # emulated bf16: no speed-up to expect
    emulated = R.measured_rates(*args, kind="qa", arithmetic=fast)["distill"]
    assert emulated["examples_per_s"] == 10.0 and "emulated" in emulated["source"]
    assert H.cpu_bf16() is False


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    """Every text file the hub keeps (run cards, job files, leaderboard exports, model cards) goes through
    paths.write_text_atomic: a write that fails midway leaves the old file whole and no temp file behind."""
    from hub.paths import write_text_atomic
    from hub.runs import read_card, write_card

    write_card(tmp_path, {"status": "running"})
    with pytest.raises(UnicodeEncodeError):
        write_text_atomic(tmp_path / "run.json", '{"status": "finished", "x": "\udc80"}')  # fails while encoding
    assert read_card(tmp_path) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    assert write_text_atomic(tmp_path / "a.csv", "a,b\r\n1,2\r\n").read_bytes() == b"a,b\r\n1,2\r\n"  # newlines kept
