"""The app served for real on a free port: the public API through gradio_client,
bad inputs answered with clean errors (and the server still serving), and the
file routes refusing the data folder, the repository and system files."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {"/compare", "/compare_batch", "/models", "/leaderboard", "/run_card", "/estimate", "/job_status"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_models(home: Path, teacher: Path, student: Path) -> tuple[Path, Path]:
    """Copy a trained pair into models_dir() the way a job saves it: <job>/{teacher,student}."""
    root = home / "models" / "tiny"
    t, s = root / "teacher", root / "student"
    shutil.copytree(teacher, t)
    shutil.copytree(student, s)
    card = json.loads((s / "run.json").read_text())
    card["teacher"] = str(t)
    (s / "run.json").write_text(json.dumps(card))
    return t, s


def seed_leaderboard(t: Path, s: Path) -> list[int]:
    from hub.leaderboard import LeaderboardStore

    store = LeaderboardStore()
    common = {"task": "sst2", "hardware": "test-cpu | 2 cores", "status": "finished", "run_card": {"kind": "x"}}
    return [
        store.add({**common, "model": str(t), "name": "tiny/teacher", "role": "teacher", "accuracy": 0.8,
                   "latency_p50_ms": 2.0, "speedup_p50": 1.0}),
        store.add({**common, "model": str(s), "name": "tiny/student", "role": "student", "teacher": str(t),
                   "accuracy": 0.78, "retention": 0.975, "latency_p50_ms": 1.0, "speedup_p50": 2.0}),
    ]


@contextlib.contextmanager
def seeded_app(tmp_path_factory, trained_pair, name: str):
    """A live app on a free port whose HUB_HOME holds the tiny pair and two leaderboard
    rows; yields (url, hub home, teacher folder, student folder, row ids)."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_HOME", str(home))
        mp.setenv("HUB_DATA_DIR", str(tmp_path_factory.mktemp("nodata")))
        t, s = seed_models(home, *trained_pair)
        ids = seed_leaderboard(t, s)
        import app

        demo = app.build_demo()
        kwargs = {**app.launch_kwargs(), "server_port": free_port(), "prevent_thread_lock": True, "quiet": True}
        _, url, _ = demo.launch(**kwargs)
        try:
            yield url.rstrip("/"), home, t, s, ids
        finally:
            demo.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_pair):
    """(url, hub home, teacher folder, student folder, row ids) of a live app."""
    with seeded_app(tmp_path_factory, trained_pair, "apphome") as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def test_launch_kwargs_are_safe():
    import app
    from hub.paths import hub_home

    kw = app.launch_kwargs()
    assert kw["share"] is False and kw["enable_monitoring"] is False and kw["allowed_paths"] == []
    assert str(hub_home()) in kw["blocked_paths"] and kw["max_file_size"]
    assert kw["server_name"] == "127.0.0.1" or kw["server_name"] == __import__("os").environ.get("GRADIO_SERVER_NAME")


def test_api_lists_only_the_public_endpoints(client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert named == PUBLIC


def test_compare_returns_both_predictions(client):
    models = client.predict("sst2", api_name="/models")
    assert {m["name"] for m in models["models"]} == {"tiny/teacher", "tiny/student"}
    assert models["default"] == {"model_a": "tiny/teacher", "model_b": "tiny/student"}
    r = client.predict("sst2", "tiny/teacher", "tiny/student", "a good and lovely film", api_name="/compare")
    for side in ("a", "b"):
        probs = r[side]["probabilities"]
        assert set(probs) == {"negative", "positive"}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert r[side]["label"] in probs and r[side]["latency_ms"] > 0
    assert r["agree"] == (r["a"]["label"] == r["b"]["label"])
    assert r["kl"] >= 0
    same = client.predict("sst2", "tiny/student", "tiny/student", "dull", api_name="/compare")
    assert same["agree"] is True and same["kl"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (("sst2", "tiny/teacher", "tiny/student", "   "), "Type a text"),
    (("sst2", "tiny/teacher", "tiny/student", "x" * 1_000_000), "too long"),
    (("sst2", "no-such-model", "tiny/student", "good"), "Model A is not one of"),
    (("sst2", "tiny/teacher", "../../../etc/passwd", "good"), "Model B is not one of"),
    (("sst2", "tiny/teacher", str(REPO), "good"), "Model B is not one of"),
    (("squad", "tiny/teacher", "tiny/student", "good"), "Unknown task"),
])
def test_bad_compare_inputs_give_clean_errors(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message) as err:
        client.predict(*args, api_name="/compare")
    assert "<script" not in str(err.value) and "Traceback" not in str(err.value)


def test_batch_limits_and_disagreements(client):
    from gradio_client.exceptions import AppError

    lines = "good film\n\nboring plot\nfun"
    r = client.predict("sst2", "tiny/teacher", "tiny/student", lines, api_name="/compare_batch")
    assert r["n"] == 3 and 0 <= r["agreement"] <= 1 and r["throughput_a"] > 0 and r["throughput_b"] > 0
    assert all(set(d) == {"line", "text", "a", "b"} for d in r["disagreements"])
    with pytest.raises(AppError, match="Too many lines"):
        client.predict("sst2", "tiny/teacher", "tiny/student", "ok\n" * 201, api_name="/compare_batch")
    with pytest.raises(AppError, match="longer than"):
        client.predict("sst2", "tiny/teacher", "tiny/student", "ok\n" + "y" * 3000, api_name="/compare_batch")


@pytest.mark.parametrize("numbers, message", [
    ((2000, 10**9, 1, 1), "train_samples must be between"),
    ((2000, 4000, -1, 1), "finetune_epochs must be between"),
    ((2000, 4000, 1, 1e9), "epochs must be between"),
    ((0, 4000, 1, 1), "finetune_samples must be between"),
])
def test_out_of_range_numbers_give_clean_errors(client, numbers, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        client.predict("sst2", "minilm-l6", "teacher-layers:3", *numbers, ["intermediate", "prediction"],
                       api_name="/estimate")


def test_estimate_and_unknown_job(client):
    from gradio_client.exceptions import AppError

    e = client.predict("sst2", "minilm-l6", "teacher-layers:3", 2000, 4000, 1, 1, ["prediction"], api_name="/estimate")
    assert e["finetune_examples"] == 2000 and e["distill_examples"] == 4000 and e["seconds"] > 0
    with pytest.raises(AppError, match="Unknown job"):
        client.predict("../../etc/passwd", api_name="/job_status")


def test_server_keeps_serving_after_errors(client):
    from gradio_client.exceptions import AppError

    for _ in range(3):
        with pytest.raises(AppError):
            client.predict("sst2", "tiny/teacher", "tiny/student", "", api_name="/compare")
    r = client.predict("sst2", "tiny/teacher", "tiny/student", "great fun", api_name="/compare")
    assert r["a"]["label"] in ("negative", "positive")


def test_leaderboard_endpoint_and_run_card(client, server):
    from gradio_client.exceptions import AppError

    ids = server[4]
    lb = client.predict("sst2", "All", api_name="/leaderboard")
    assert [r["name"] for r in lb["rows"]] == ["tiny/teacher", "tiny/student"]
    assert {"retention", "speedup_p50", "latency_p50_ms", "accuracy"} <= set(lb["columns"])
    assert client.predict("All", "test-cpu | 2 cores", api_name="/leaderboard")["rows"]
    assert client.predict("classification", "All", api_name="/leaderboard")["rows"] == []
    with pytest.raises(AppError, match="Unknown hardware"):
        client.predict("sst2", "<img src=x onerror=alert(1)>", api_name="/leaderboard")
    card = client.predict(ids[1], api_name="/run_card")
    assert card["name"] == "tiny/student" and card["run_card"] == {"kind": "x"}
    # server paths never leave the server
    assert card["model"].startswith("$HUB_HOME/models/") and str(server[1]) not in json.dumps(card)
    assert str(server[1]) not in json.dumps(lb)
    with pytest.raises(AppError, match="No leaderboard row"):
        client.predict(10**12, api_name="/run_card")


def file_urls(url: str, path: Path | str) -> list[str]:
    p = str(path)
    return [f"{url}/gradio_api/file={p}", f"{url}/gradio_api/file/{p.lstrip('/')}", f"{url}/file={p}"]


def test_file_routes_refuse_private_files(server):
    import httpx

    url, home, t, s, _ = server
    secrets = {
        home / "leaderboard.sqlite": b"SQLite format",
        s / "model.safetensors": (s / "model.safetensors").read_bytes()[:64],
        s / "run.json": b'"kind"',
        REPO / "app.py": b"def build_demo",
        Path("/etc/passwd"): b"root:",
    }
    assert (home / "leaderboard.sqlite").is_file()
    targets = [(p, marker) for p, marker in secrets.items() if p.is_file()]
    relative = ["../app.py", "app.py", "../../../../../../etc/passwd", "%2e%2e/app.py", "hub/jobs.py"]
    with httpx.Client(timeout=10) as http:
        for path, marker in targets:
            for u in file_urls(url, path):
                r = http.get(u)
                assert r.status_code in (403, 404), (u, r.status_code)
                assert marker not in r.content
        for rel in relative:
            for u in (f"{url}/gradio_api/file={rel}", f"{url}/static/{rel}", f"{url}/assets/{rel}"):
                r = http.get(u)
                assert r.status_code in (403, 404), (u, r.status_code)
                assert b"def build_demo" not in r.content and b"root:x" not in r.content
        assert http.get(url + "/").status_code == 200  # and the app still serves its page
        assert http.get(url + "/monitoring").status_code in (403, 404)  # monitoring is off
        assert http.get(url + "/monitoring/summary").status_code in (403, 404)


# ---------------------------------------------------------------- handlers without a server


@pytest.fixture
def fake_queue(hub_home, monkeypatch):
    """The app's queue replaced by one whose jobs finish at once (no training)."""
    import app
    from hub import jobs

    q = jobs.JobQueue(runner=lambda ctx: {"status": "finished"}, root=hub_home / "jobs")
    monkeypatch.setattr(app.jobs, "default_queue", lambda: q)
    yield q
    q.close()


def start_args(tmp_path, **overrides):
    table = tmp_path / "mine.csv"
    table.write_text("text,label\n" + "".join(f"text number {i},{'yes' if i % 3 else 'no'}\n" for i in range(60)))
    args = dict(task="classification", teacher="minilm-l6", student="teacher-layers:2", layers=None, hidden=None,
                heads=None, ffn=None, source="Upload a file", local_name=None, hub_id="", hub_config="",
                up_train=str(table), up_eval=None, text_col="text", label_col="label", ft_samples=100,
                train_samples=100, eval_samples=16, ft_epochs=1, epochs=1, ft_lr=1e-4, lr=1e-4, batch=8,
                max_len=32, temperature=1, alpha=0.5, stages=["prediction"], name="", owned={})
    return {**args, **overrides}


def test_start_job_stages_the_upload_and_submits(tmp_path, hub_home, fake_queue):
    import app

    job_id, owned, _ = app.start_job(**start_args(tmp_path))
    status = fake_queue.wait(job_id, timeout=10)
    assert status["state"] == "finished"
    data = status["params"]["data"]
    assert data["train_file"].startswith(str(hub_home / "uploads")) and data["eval_file"].endswith(".jsonl")
    assert owned["job"] == job_id and fake_queue.is_owner(job_id, owned["token"])
    assert status["params"]["stages"] == ["prediction"] and status["name"] == "classification-teacher-layers2"
    public = app.public_status(fake_queue.status(job_id))
    assert "outputs" not in public and public["params"]["data"] == "files"
    assert str(hub_home) not in str(public)


@pytest.mark.parametrize("overrides, message", [
    ({"batch": 1000}, "batch_size must be between"),
    ({"epochs": float("inf")}, "finite"),
    ({"stages": []}, "stages must be"),
    ({"student": "custom", "layers": 2, "hidden": 30, "heads": 4}, "divisible"),
    ({"text_col": "nope"}, "missing column"),
    ({"teacher": "/etc"}, "listed models or a Hugging Face Hub id"),
    ({"teacher": "../../models"}, "listed models or a Hugging Face Hub id"),
    ({"teacher": "someone/not-cached-model"}, "cannot be reached"),
    ({"source": "Local data set", "local_name": "../../etc"}, "Choose one of the local data sets"),
    ({"task": "squad"}, "Unknown task"),
])
def test_start_job_rejects_bad_settings(tmp_path, hub_home, fake_queue, overrides, message):
    import gradio as gr

    import app

    with pytest.raises(gr.Error, match=message) as err:
        app.start_job(**start_args(tmp_path, **overrides))
    assert str(tmp_path) not in err.value.message  # no server paths in messages
    assert fake_queue.jobs() == []
    uploads = hub_home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # a refused upload is not kept


def test_upload_type_is_checked_on_the_server(tmp_path, fake_queue):
    import gradio as gr

    import app

    exe = tmp_path / "data.exe"
    exe.write_text("text,label\nhi,1\n")
    with pytest.raises(gr.Error, match="Only .csv"):
        app.start_job(**start_args(tmp_path, up_train=str(exe)))


def test_poll_shows_progress_and_stop_only_for_the_owner(tmp_path, fake_queue):
    import app

    job_id, owned, _ = app.start_job(**start_args(tmp_path))
    fake_queue.wait(job_id, timeout=10)
    out = app.poll(job_id, owned, ["x", "running"])
    bar, stop_button, timer = out[0], out[5], out[6]
    assert "finished" in bar and "Finished in" in bar
    assert timer.active is False and stop_button.interactive is False
    assert len(out) == 13
    assert app.progress_html(None).startswith("<div class='hub-status'>No run yet.")


def test_loss_frame_always_holds_every_term():
    import app
    from hub import jobs

    assert app.loss_frame(None) is None and app.loss_frame({"losses": {}}) is None
    df = app.loss_frame({"losses": {"ce": [[1, 0.7], [2, 0.6]], "hidden": [[3, 0.5], [4, 0.4]]}})
    assert list(dict.fromkeys(df["term"])) == list(jobs.LOSS_CURVES)  # fixed order: stable colours
    # a term without points gets one point on an existing one: nothing is drawn for it
    assert df[df.term == "prediction"][["step", "loss"]].values.tolist() == [[1, 0.7]]
    assert len(df[df.term == "hidden"]) == 2


def test_leaderboard_csv_download_redacts_paths(server, monkeypatch):
    """The CSV the Leaderboard tab offers has every column, and no server path."""
    import csv

    import app

    url, home, t, s, ids = server
    monkeypatch.setenv("HUB_HOME", str(home))
    out = app.leaderboard_view("All", "All", None, False)
    text = open(out[2], encoding="utf-8").read()
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == len(ids) and rows[0]["model"].startswith("$HUB_HOME/")
    assert str(home) not in text
