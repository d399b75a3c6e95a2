"""The training queue: one job at a time, positions, size limit, cancelling,
persistence across restarts (fast fake runners), and one real tiny job."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hub import jobs
from hub.jobs import JobQueue, QueueFull

# name -> Event: a fake job holds until its gate opens (or it is cancelled)
GATES: dict[str, threading.Event] = {}


def fake_runner(ctx: jobs.JobContext) -> dict:
    """Reports progress like hub.distill, holds on its gate, honours the cancel flag."""
    p = ctx.params
    if p.get("fail"):
        raise RuntimeError("boom")
    steps = p.get("steps", 4)
    ctx.set_plan([("intermediate", steps), ("prediction", steps)])
    ctx.output("student", p.get("folder", "/nonexistent"))
    for stage in ("intermediate", "prediction"):
        for step in range(1, steps + 1):
            ctx.progress({"stage": stage, "step": step, "total": steps, "epoch": step / steps,
                          "examples_per_s": 100.0, "eta_s": 0.01 * (steps - step),
                          "losses": {"hidden" if stage == "intermediate" else "prediction": 1.0 / step,
                                     "total": 1.0 / step}})
    gate = GATES.get(p.get("gate"))
    while gate is not None and not gate.is_set():
        if ctx.cancel.is_set():
            return {"status": "stopped"}
        time.sleep(0.01)
    return {"status": "finished", "answer": 42}


@pytest.fixture
def queue(tmp_path):
    q = JobQueue(max_size=3, runner=fake_runner, root=tmp_path / "jobs")
    yield q
    for gate in GATES.values():
        gate.set()
    q.close(cancel_running=True, timeout=10)
    GATES.clear()


def gate(name: str) -> str:
    GATES[name] = threading.Event()
    return name


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


def test_one_job_runs_at_a_time_and_others_wait_in_order(queue):
    a = queue.submit("fake", {"gate": gate("a")})
    b = queue.submit("fake", {"gate": gate("b")})
    c = queue.submit("fake", {})
    wait_for(lambda: queue.status(a)["state"] == "running")
    assert [queue.position(j) for j in (a, b, c)] == [0, 1, 2]
    assert queue.status(b)["state"] == "queued"
    assert queue.current()["id"] == a

    GATES["a"].set()
    wait_for(lambda: queue.status(b)["state"] == "running")
    assert queue.status(a)["state"] == "finished"
    assert queue.status(a)["result"] == {"status": "finished", "answer": 42}
    assert [queue.position(j) for j in (a, b, c)] == [-1, 0, 1]
    GATES["b"].set()
    assert queue.wait(c, timeout=10)["state"] == "finished"
    assert [j["id"] for j in queue.jobs()] == [c, b, a]  # newest first


def test_full_queue_raises(queue):
    queue.submit("fake", {"gate": gate("a")})
    queue.submit("fake", {})
    queue.submit("fake", {})
    with pytest.raises(QueueFull):
        queue.submit("fake", {})


def test_cancel_waiting_job_removes_it(queue):
    a = queue.submit("fake", {"gate": gate("a")})
    b = queue.submit("fake", {})
    c = queue.submit("fake", {})
    wait_for(lambda: queue.position(a) == 0)
    assert queue.cancel(b) is True
    assert queue.status(b)["state"] == "stopped"
    assert queue.position(b) == -1 and queue.position(c) == 1
    GATES["a"].set()
    assert queue.wait(c, timeout=10)["state"] == "finished"
    assert queue.status(b)["started_at"] is None  # it never ran


def test_cancel_running_job_stops_it_with_progress_kept(queue):
    a = queue.submit("fake", {"gate": gate("a"), "steps": 5})
    wait_for(lambda: queue.status(a)["progress"].get("fraction") == 1.0)
    status = queue.status(a)
    assert status["progress"]["stage"] == "prediction"
    assert status["losses"]["hidden"][0] == [1, 1.0]
    assert [x for x, _ in status["losses"]["prediction"]] == [6, 7, 8, 9, 10]  # steps continue across stages
    assert "total" not in status["losses"]
    assert queue.cancel(a) is True
    final = queue.wait(a, timeout=10)
    assert final["state"] == "stopped"
    assert any("stop requested" in line for line in final["log"])
    assert queue.cancel(a) is False  # already over


def test_owner_token_guards_cancel(queue):
    a = queue.submit("fake", {"gate": gate("a")}, owner="secret-1")
    wait_for(lambda: queue.position(a) == 0)
    with pytest.raises(PermissionError):
        queue.cancel(a, owner="someone-else")
    assert queue.is_owner(a, "secret-1") and not queue.is_owner(a, "x")
    assert queue.cancel(a, owner="secret-1") is True
    assert "owner_hash" not in queue.status(a)


def test_failing_job_is_marked_and_the_worker_goes_on(queue):
    bad = queue.submit("fake", {"fail": True})
    good = queue.submit("fake", {})
    assert queue.wait(bad, timeout=10)["state"] == "failed"
    assert queue.status(bad)["error"] == "RuntimeError: boom"
    assert queue.wait(good, timeout=10)["state"] == "finished"


def test_unknown_job_id(queue):
    with pytest.raises(KeyError):
        queue.status("../../etc/passwd")


def test_state_is_persisted_and_a_restart_marks_running_jobs_failed(tmp_path):
    root = tmp_path / "jobs"
    folder = tmp_path / "models" / "run-1" / "student"
    folder.mkdir(parents=True)
    (folder / "checkpoint-2").mkdir()
    q = JobQueue(runner=fake_runner, root=root)
    done = q.submit("fake", {"folder": str(folder)})
    q.wait(done, timeout=10)
    q.close()
    files = sorted(p.name for p in root.iterdir())
    assert files == [f"{done}.json"]  # no temp files left behind
    saved = json.loads((root / f"{done}.json").read_text())
    assert saved["state"] == "finished" and saved["losses"]["prediction"]

    # a server that died mid-run left this file behind: same job, still "running"
    dead = subprocess.Popen(["true"])
    dead.wait()
    crashed = dict(saved, id="20250101-000000-000000-abcd", state="running", finished_at=None,
                   process=f"{dead.pid}:12345")
    (root / f"{crashed['id']}.json").write_text(json.dumps(crashed))
    waiting = dict(crashed, id="20250101-000001-000000-abcd", state="queued")
    (root / f"{waiting['id']}.json").write_text(json.dumps(waiting))
    (root / "not-a-job.json").write_text("{broken")

    q2 = JobQueue(runner=fake_runner, root=root)
    after = q2.status(crashed["id"])
    assert after["state"] == "failed" and after["error"] == "server restarted"
    assert after["outputs"] == {"student": str(folder)}  # the checkpoint folder is kept and named
    assert any("checkpoints kept in student" in line for line in after["log"])
    assert (folder / "checkpoint-2").is_dir()
    assert q2.status(waiting["id"])["error"].startswith("server restarted")
    assert q2.status(done)["state"] == "finished"
    assert json.loads((root / f"{crashed['id']}.json").read_text())["state"] == "failed"
    assert {j["id"] for j in q2.jobs()} == {done, crashed["id"], waiting["id"]}
    q2.close()


def test_validate_params_ranges_and_unknown_keys(tiny_data_dir):
    data = {"data_dir": str(tiny_data_dir)}
    p = jobs.validate_params({"data": data})
    assert p["teacher"] == "minilm-l6" and p["stages"] == ["intermediate", "prediction"]
    with pytest.raises(ValueError, match="batch_size must be between 1 and 128"):
        jobs.validate_params({"data": data, "batch_size": 10_000})
    with pytest.raises(ValueError, match="unknown job parameter"):
        jobs.validate_params({"data": data, "epohcs": 3})
    with pytest.raises(ValueError, match="finite"):
        jobs.validate_params({"data": data, "learning_rate": float("nan")})
    with pytest.raises(ValueError, match="divisible"):
        jobs.validate_params({"data": data, "student": "custom", "layers": 2, "hidden": 100, "heads": 3})
    with pytest.raises(ValueError, match="task must be one of"):
        jobs.validate_params({"data": data, "task": "squad"})
    with pytest.raises(ValueError, match="data source"):
        jobs.validate_params({})
    assert jobs.safe_name("../../etc/passwd") == "etc-passwd"


def test_estimate_counts_stages_and_fine_tuning():
    base = {"train_samples": 1000, "finetune_samples": 800, "epochs": 2, "finetune_epochs": 1}
    e = jobs.estimate(base, teacher_trained=False, root="/nonexistent")
    assert e["distill_examples"] == 1000 * 2 * 2 and e["finetune_examples"] == 800
    rates = jobs.DEFAULT_RATES
    expected = 800 / rates["finetune"] + 4000 / rates["distill"] + jobs.OVERHEAD_S
    assert e["seconds"] == pytest.approx(expected, abs=0.2)
    assert jobs.estimate(base, teacher_trained=True, root="/nonexistent")["finetune_s"] == 0


def test_stage_upload_splits_and_rejects(tmp_path):
    from hub.data import DataError

    src = tmp_path / "mine.csv"
    src.write_text("text,label\n" + "".join(f"row {i},{'pos' if i % 2 else 'neg'}\n" for i in range(100)))
    out = jobs.stage_upload(src, None, tmp_path / "staged")
    import pandas as pd

    train = pd.read_json(out["train_file"], lines=True)
    evals = pd.read_json(out["eval_file"], lines=True)
    assert len(train) == 90 and len(evals) == 10
    with pytest.raises(DataError, match="limit"):
        jobs.stage_upload(src, None, tmp_path / "s2", max_rows=50)
    bad = tmp_path / "x.txt"
    bad.write_text("hello")
    with pytest.raises(DataError, match="must be one of"):
        jobs.stage_upload(bad, None, tmp_path / "s3")


# ---------------------------------------------------------------- real jobs (tiny models)


def headless_tiny_bert(folder: Path) -> Path:
    """A tiny BertModel without a classification head: the job must fine-tune it first."""
    from conftest import VOCAB, make_tokenizer
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


def test_real_job_fine_tunes_distills_and_benchmarks(hub_home, tiny_data_dir, tmp_path):
    from hub.leaderboard import LeaderboardStore
    from hub.paths import models_dir

    base = headless_tiny_bert(tmp_path / "base")
    q = JobQueue()
    params = jobs.validate_params({
        "teacher": str(base), "student": "teacher-layers:2", "data": {"data_dir": str(tiny_data_dir)},
        "finetune_samples": 64, "train_samples": 64, "eval_samples": 32, "batch_size": 16, "max_length": 32,
        "max_steps": 3, "finetune_learning_rate": 1e-3, "learning_rate": 1e-3, "name": "tiny run",
    })
    job_id = q.submit("distill", params)
    status = q.wait(job_id, timeout=240)
    q.close()
    assert status["state"] == "finished", status["error"] or status["log"][-5:]
    assert status["name"] == "tiny-run"
    assert [s for s, _ in status["plan"]] == ["finetune", "intermediate", "prediction"]
    assert set(status["losses"]) >= {"ce", "embedding", "attention", "hidden", "prediction"}
    for role in ("teacher", "student"):
        card = json.loads((models_dir() / "tiny-run" / role / "run.json").read_text())
        assert card["status"] == "finished"
    assert status["result"]["student"]["key"] == "tiny-run/student"
    assert [m.key for m in jobs.trained_models("sst2")][:2] in (
        ["tiny-run/student", "tiny-run/teacher"], ["tiny-run/teacher", "tiny-run/student"])
    try:
        import hub.benchmark  # noqa: F401
    except ImportError:
        pytest.skip("hub.benchmark is not there yet: no leaderboard rows expected")
    rows = LeaderboardStore().rows(task="sst2")
    assert sorted(r["name"] for r in rows) == ["tiny-run/student", "tiny-run/teacher"]
    assert all(r["status"] == "finished" and r["ranked"] == 1 and r["latency_p50_ms"] for r in rows)
    student = next(r for r in rows if r["role"] == "student")
    assert student["speedup_p50"] and student["retention"] is not None


def test_real_job_stopped_is_stored_unranked(hub_home, tiny_data_dir, tiny_teacher_dir):
    from hub.leaderboard import LeaderboardStore

    q = JobQueue()
    params = jobs.validate_params({
        "teacher": str(tiny_teacher_dir), "student": "teacher-layers:2", "data": {"data_dir": str(tiny_data_dir)},
        "train_samples": 400, "eval_samples": 16, "batch_size": 4, "max_length": 32, "epochs": 10,
        "stages": "prediction", "name": "stopped",
    })
    job_id = q.submit("distill", params)
    wait_for(lambda: (q.status(job_id)["progress"].get("step") or 0) >= 2, timeout=120)
    q.cancel(job_id)
    status = q.wait(job_id, timeout=120)
    q.close()
    assert status["state"] == "stopped"
    assert status["result"]["student"]["status"] == "stopped"
    rows = LeaderboardStore().rows()
    assert [(r["name"], r["status"], r["ranked"]) for r in rows] == [("stopped/student", "stopped", 0)]


def test_torch_free_copies_match_their_sources():
    """jobs keeps torch-free copies of a few names; they must not drift."""
    from hub import distill, jobs, models

    assert tuple(models.STUDENT_PRESETS) == jobs.STUDENT_PRESET_NAMES
    assert distill.STAGES == jobs.STAGE_NAMES


def test_app_learning_rate_follows_the_student_kind():
    import app

    assert app.student_learning_rate("tinybert-4l-312") == 5e-4
    assert app.student_learning_rate("custom") == 5e-4
    assert app.student_learning_rate("teacher-layers:3") == 1e-4
