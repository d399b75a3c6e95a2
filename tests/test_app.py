"""The app served for real on a free port: the public API through gradio_client,
bad inputs answered with clean errors (and the server still serving), the file
routes refusing the data folder, the repository and system files; then the
handlers of each tab without a server (a queue whose jobs run a fake pipeline
in a child process, so nothing trains), and the views of ``hub.views``."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PUBLIC = {"/compare", "/compare_batch", "/models", "/leaderboard", "/run_card", "/estimate", "/job_status"}
README_TEXT = "A gorgeous, witty, seductive movie."
NEAR_CHANCE = "the teacher's accuracy on the eval set (0.5100) is near chance (0.5000)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def card(kind: str, **extra) -> dict:
    """A run card like ``hub.distill`` writes (what the app reads of it)."""
    return {"kind": kind, "task": "sst2", "status": "finished", "created_at": "2025-06-01T12:00:00+00:00",
            "train": {"max_length": 64}, **extra}


def make_pair(root: Path) -> tuple[Path, Path]:
    """A tiny BERT teacher (4 layers) and student (2 layers) with classification heads in
    their checkpoints and run cards: what the app lists and loads. The app is tested, not
    training, so nothing is trained (``trained_pair`` costs tens of seconds)."""
    from conftest import make_tiny_bert

    from hub.runs import write_card

    t = make_tiny_bert(root / "teacher", layers=4, seed=0)
    s = make_tiny_bert(root / "student", layers=2, seed=1)
    write_card(t, card("teacher", base_model="minilm-l6"))
    write_card(s, card("student", teacher=str(t)))
    return t, s


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


def seed_cli_models(runs: Path, teacher: Path, student: Path) -> tuple[Path, Path]:
    """The README's CLI layout: runs/teacher and runs/student-tl3 outside HUB_HOME, the
    student's card naming its teacher as the CLI was given it (relative)."""
    t, s = runs / "teacher", runs / "student-tl3"
    shutil.copytree(teacher, t)
    shutil.copytree(student, s)
    card = json.loads((s / "run.json").read_text())
    card["teacher"] = "runs/teacher"
    (s / "run.json").write_text(json.dumps(card))
    return t, s


def seed_leaderboard(t: Path, s: Path, cli_t: Path, cli_s: Path) -> list[int]:
    """Rows as a job's quick benchmark and ``python -m hub bench`` store them (``add_rows``:
    absolute folders, names by folder for the CLI)."""
    from hub.leaderboard import LeaderboardStore

    store = LeaderboardStore()
    common = {"task": "sst2", "hardware": "test-cpu | 2 cores", "status": "finished", "run_card": {"kind": "x"},
              "runtime": "torch"}
    cli = {**common, "protocol": "full", "created_at": "2000-01-01T00:00:00+00:00"}  # older than the job's pair
    rows = [
        {**common, "model": str(t), "name": "tiny/teacher", "role": "teacher", "accuracy": 0.8,
         "latency_p50_ms": 2.0, "speedup_p50": 1.0, "protocol": "quick"},
        {**common, "model": str(s), "name": "tiny/student", "role": "student", "teacher": str(t),
         "accuracy": 0.78, "retention": 0.975, "latency_p50_ms": 1.0, "speedup_p50": 2.0, "protocol": "quick"},
        {**cli, "model": str(cli_t), "name": "teacher", "role": "teacher", "accuracy": 0.75, "latency_p50_ms": 3.0},
        {**cli, "model": str(cli_s), "name": "student-tl3", "role": "student", "teacher": "runs/teacher",
         "accuracy": 0.7, "retention": 0.9333, "latency_p50_ms": 1.5},
    ]
    return store.add_rows(rows)


@contextlib.contextmanager
def seeded_app(tmp_path_factory, pair, name: str):
    """A live app on a free port whose HUB_HOME holds the tiny pair of a job, whose
    leaderboard also has a CLI-trained pair (``runs/teacher``, ``runs/student-tl3``);
    yields (url, hub home, teacher folder, student folder, row ids)."""
    home = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_HOME", str(home))
        mp.setenv("HUB_DATA_DIR", str(tmp_path_factory.mktemp("nodata")))
        t, s = seed_models(home, *pair)
        cli_t, cli_s = seed_cli_models(tmp_path_factory.mktemp("cli") / "runs", *pair)
        ids = seed_leaderboard(t, s, cli_t, cli_s)
        import app

        demo = app.build_demo()
        kwargs = {**app.launch_kwargs(), "server_port": free_port(), "prevent_thread_lock": True, "quiet": True}
        _, url, _ = demo.launch(**kwargs)
        try:
            yield url.rstrip("/"), home, t, s, ids
        finally:
            demo.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_pair):
    """(url, hub home, teacher folder, student folder, row ids) of a live app."""
    with seeded_app(tmp_path_factory, tiny_pair, "apphome") as live:
        yield live


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def test_launch_kwargs_are_safe(monkeypatch):
    import app
    from hub.paths import hub_home

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    kw = app.launch_kwargs()
    assert kw["share"] is False and kw["enable_monitoring"] is False and kw["allowed_paths"] == []
    assert kw["mcp_server"] is False and str(hub_home()) in kw["blocked_paths"] and kw["max_file_size"] == "5mb"
    assert (kw["server_name"], kw["server_port"]) == ("127.0.0.1", 7860)  # local by default
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8000")
    assert (app.launch_kwargs()["server_name"], app.launch_kwargs()["server_port"]) == ("0.0.0.0", 8000)


def test_api_lists_only_the_public_endpoints(client):
    from ui import compare

    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert named == PUBLIC | {f"/{n}" for n in compare.section_apis()}


def test_compare_returns_both_predictions(client):
    models = client.predict("sst2", api_name="/models")
    assert {m["name"] for m in models["models"]} == {"tiny/teacher", "tiny/student", "teacher", "student-tl3"}
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


def test_readme_compare_example_works_for_cli_trained_models(client, server):
    """Issue 8 item 3: models trained with the CLI and stored by ``hub bench`` are picked by
    their folder's name, as in the README, and their paths stay on the server."""
    r = client.predict("sst2", "teacher", "student-tl3", README_TEXT, api_name="/compare")
    assert r["model_a"] == "teacher" and r["model_b"] == "student-tl3"
    assert r["a"]["label"] in ("negative", "positive") and r["b"]["label"] in ("negative", "positive")
    lb = client.predict("sst2", "All", api_name="/leaderboard")
    cli_rows = {row["name"]: row["row_id"] for row in lb["rows"] if row["name"] in ("teacher", "student-tl3")}
    assert len(cli_rows) == 2 and "/tmp" not in json.dumps(lb)
    card = client.predict(cli_rows["student-tl3"], api_name="/run_card")
    assert card["model"] == "…/runs/student-tl3" and "/tmp" not in json.dumps(card)


@pytest.mark.parametrize("args, message", [
    (("sst2", "tiny/teacher", "tiny/student", "   "), "Type a text"),
    (("sst2", "tiny/teacher", "tiny/student", "x" * 1_000_000), "too long"),
    (("sst2", "no-such-model", "tiny/student", "good"), "Model A is not one of this server's"),
    (("sst2", "tiny/teacher", "../../../etc/passwd", "good"), "Model B is not one of"),
    (("sst2", "tiny/teacher", str(REPO), "good"), "Model B is not one of"),
    (("no-such-task", "tiny/teacher", "tiny/student", "good"), "Unknown task"),
])
def test_bad_compare_inputs_give_clean_errors(client, args, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message) as err:
        client.predict(*args, api_name="/compare")
    text = str(err.value)
    assert "<script" not in text and "Traceback" not in text
    assert "&#x27;" not in text and "&amp;" not in text  # plain text, not HTML-escaped


def test_too_long_text_says_so_instead_of_cutting(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="2,001 characters; the limit is 2,000"):
        client.predict("sst2", "tiny/teacher", "tiny/student", "y" * 2001, api_name="/compare")


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


def test_estimate_checks_the_teacher_and_says_what_it_rests_on(client):
    """Issue 8 items 7 and 8: /estimate refuses a teacher /compare would refuse, accepts a
    plain Hub id as the CLI does, and says whether its rates were measured or guessed."""
    from gradio_client.exceptions import AppError

    args = ("teacher-layers:3", 2000, 4000, 1, 1, ["prediction"])
    for bad in ("/etc", "../../models", str(REPO)):
        with pytest.raises(AppError, match="Hugging Face Hub id") as err:
            client.predict("sst2", bad, *args, api_name="/estimate")
        assert bad not in str(err.value)
    e = client.predict("sst2", "bert-base-uncased", *args, api_name="/estimate")
    assert e["basis"] in ("measured", "default guess") and e["seconds"] > 0
    assert client.predict("sst2", "tiny/teacher", *args, api_name="/estimate")["finetune_s"] == 0


def test_estimate_and_unknown_job(client):
    from gradio_client.exceptions import AppError

    e = client.predict("sst2", "minilm-l6", "teacher-layers:3", 2000, 4000, 1, 1, ["prediction"], api_name="/estimate")
    assert e["finetune_examples"] == 2000 and e["distill_examples"] == 4000 and e["seconds"] > 0
    with pytest.raises(AppError, match="Unknown job"):
        client.predict("../../etc/passwd", api_name="/job_status")


def test_user_errors_log_one_line_and_the_server_keeps_serving(client, caplog, capfd):
    from gradio_client.exceptions import AppError

    with caplog.at_level(logging.INFO, logger="hub.app"):
        for _ in range(3):
            with pytest.raises(AppError):
                client.predict("sst2", "tiny/teacher", "tiny/student", "", api_name="/compare")
    refusals = [r for r in caplog.records if r.name == "hub.app" and "refused" in r.getMessage()]
    assert len(refusals) == 3 and all(r.exc_info is None for r in refusals)
    assert "Traceback" not in capfd.readouterr().err  # no traceback printed for a user's mistake
    r = client.predict("sst2", "tiny/teacher", "tiny/student", "great fun", api_name="/compare")
    assert r["a"]["label"] in ("negative", "positive")


def test_leaderboard_endpoint_and_run_card(client, server):
    from gradio_client.exceptions import AppError

    ids = server[4]
    lb = client.predict("sst2", "All", api_name="/leaderboard")
    # ranked by the headline metric (accuracy), best first
    assert [r["name"] for r in lb["rows"]] == ["tiny/teacher", "tiny/student", "teacher", "student-tl3"]
    assert {"retention", "speedup_p50", "latency_p50_ms", "accuracy", "runtime", "protocol"} <= set(lb["columns"])
    assert client.predict("All", "test-cpu | 2 cores", api_name="/leaderboard")["rows"]
    assert client.predict("classification", "All", api_name="/leaderboard")["rows"] == []
    full = client.predict("sst2", "All", "torch", "full", api_name="/leaderboard")["rows"]
    assert [r["name"] for r in full] == ["teacher", "student-tl3"]
    with pytest.raises(AppError, match="Unknown hardware"):
        client.predict("sst2", "<img src=x onerror=alert(1)>", api_name="/leaderboard")
    with pytest.raises(AppError, match="Unknown protocol"):
        client.predict("sst2", "All", "All", "nope", api_name="/leaderboard")
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
    relative = ["../app.py", "app.py", "../../../../../../etc/passwd", "%2e%2e/app.py", "hub/jobs/queue.py"]
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


def test_leaderboard_csv_download_redacts_paths(server, monkeypatch):
    """The CSV the Leaderboard tab offers has every column, and no server path."""
    import csv

    from ui import leaderboard

    url, home, t, s, ids = server
    monkeypatch.setenv("HUB_HOME", str(home))
    out = leaderboard.view("All", "All", "All", "All", None, False)
    text = open(out["download"], encoding="utf-8").read()
    rows = list(csv.DictReader(text.splitlines()))
    assert len(rows) == len(ids) and rows[0]["model"].startswith("$HUB_HOME/")
    assert str(home) not in text and "/tmp/" not in text


def test_leaderboard_view_follows_the_task(server, monkeypatch):
    """Default columns from the task, ratios as percentages, filters offered from the store,
    the Pareto plot padded and marked by protocol."""
    from hub.leaderboard import default_columns
    from hub.tasks import TASKS
    from ui import leaderboard

    monkeypatch.setenv("HUB_HOME", str(server[1]))
    out = leaderboard.task_view("sst2", "All", "All", "All", False)
    assert out["columns"] == list(default_columns(TASKS["sst2"]))
    table = out["table"].value
    assert "Retention %" in table["headers"] and "Accuracy" in table["headers"]
    col = table["headers"].index("Retention %")
    assert sorted(row[col] for row in table["data"] if row[col] == row[col]) == [93.3, 97.5]  # NaN: no value
    assert out["protocol"].choices == [("All", "All"), ("full", "full"), ("quick", "quick")]
    plot = out["plot"]
    kinds = set(plot.value["data"][i][plot.value["columns"].index("kind")] for i in range(len(plot.value["data"])))
    assert kinds == {"teacher (quick)", "Pareto-optimal (quick)", "teacher (full)", "Pareto-optimal (full)"}
    assert plot.x_lim[0] < 1.0 and plot.x_lim[1] > 3.0 and plot.y_lim[0] < 0.7 and plot.y_lim[1] > 0.8
    ranked = leaderboard.view("sst2", "All", "All", "quick", None, True)
    assert [r[1] for r in ranked["table"].value["data"]] == ["tiny/teacher", "tiny/student"]


def test_leaderboard_shows_the_newest_run_of_each_variant(tmp_path, monkeypatch):
    """A re-run benchmark replaces its model's row in the view (table, plot, API) unless
    "Earlier runs too" is on; the store keeps every row, and the link carries the choice."""
    from hub.leaderboard import LeaderboardStore
    from ui import leaderboard, links

    monkeypatch.setenv("HUB_HOME", str(tmp_path))
    base = {"model": "/m/student", "name": "student", "task": "sst2", "role": "student", "quantization": "fp32",
            "runtime": "torch", "protocol": "full", "hardware": "cpu | 2", "latency_p50_ms": 2.0, "status": "finished"}
    store = LeaderboardStore()
    store.add({**base, "accuracy": 0.80, "created_at": "2026-01-01T00:00:00+00:00"})
    store.add({**base, "accuracy": 0.82, "created_at": "2026-01-02T00:00:00+00:00"})
    store.add({**base, "accuracy": 0.81, "runtime": "onnx", "created_at": "2026-01-01T00:00:00+00:00"})
    latest = leaderboard.api_leaderboard("sst2")["rows"]
    assert sorted((r["runtime"], r["accuracy"]) for r in latest) == [("onnx", 0.81), ("torch", 0.82)]
    assert len(leaderboard.api_leaderboard("sst2", history=True)["rows"]) == 3 and len(store.rows()) == 3
    out = leaderboard.view("sst2", "All", "All", "All", None, False)
    assert len(out["table"].value["data"]) == 2 and len(out["plot"].value["data"]) == 2
    assert len(leaderboard.view("sst2", "All", "All", "All", None, False, True)["table"].value["data"]) == 3
    assert links.parse({"tab": "leaderboard", "all": "1"}, set(), {})["leaderboard"]["history"] is True
    assert links.parse({"tab": "leaderboard"}, set(), {})["leaderboard"]["history"] is False
    assert links.parse({}, set(), {})["tab"] == "compare"  # the page opens on side-by-side querying
    assert "'all', '1'" in links.leaderboard_link_js()


def test_a_qa_row_scored_at_a_threshold_its_model_no_longer_has_is_marked(tmp_path, monkeypatch, capsys):
    """After ``calibrate-null --apply`` a QA model's benchmarked EM/F1 were made at its
    old "no answer" threshold: the table (app and CLI), the API and the run card view
    say so next to its name. Left as they are: a row whose model kept its threshold
    (also one benchmarked with ``--null-threshold``), a row whose folder is gone, a row
    without quality and a classification row."""
    from hub.cli import main
    from hub.kinds.qa import QAKind
    from hub.leaderboard import LeaderboardStore
    from hub.config import QA_NULL_THRESHOLD
    from ui import leaderboard

    assert QA_NULL_THRESHOLD == QAKind.null_threshold == 0.0
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    folders = {"calibrated": -2.5, "fresh": 1.25, "override": None}
    for name, threshold in folders.items():
        (tmp_path / name).mkdir()
        options = {} if threshold is None else {"null_threshold": threshold}
        (tmp_path / name / "run.json").write_text(json.dumps({"task": "squad", "eval_options": options}))
    base = {"task": "squad", "role": "student", "quantization": "fp32", "runtime": "torch", "protocol": "full",
            "hardware": "cpu | 2", "latency_p50_ms": 2.0, "status": "finished", "f1": 27.0,
            "run_card": {"task": "squad", "eval_options": {}}}  # the card as it was when benchmarked: threshold 0
    store = LeaderboardStore()
    store.add({**base, "model": str(tmp_path / "calibrated"), "name": "calibrated"})
    store.add({**base, "model": str(tmp_path / "fresh"), "name": "fresh",
               "run_card": {"eval_options": {"null_threshold": 1.25}}})
    store.add({**base, "model": str(tmp_path / "override"), "name": "override",  # bench --null-threshold 3
               "bench_json": {"eval_options": {"null_threshold": 3.0}}})
    store.add({**base, "model": str(tmp_path / "gone"), "name": "gone"})
    store.add({**base, "model": str(tmp_path / "calibrated"), "name": "no-quality", "f1": None,
               "quantization": "int8 unavailable: no engine"})
    store.add({**base, "task": "sst2", "model": str(tmp_path / "calibrated"), "name": "sst2-row", "accuracy": 0.9})
    rows = {r["name"]: r for r in leaderboard.api_leaderboard("All")["rows"]}
    assert rows["calibrated"]["note"] == ("scored at null threshold 0; the model's is -2.5 now (calibrated since): "
                                          "benchmark it again for its EM/F1")
    assert not any("note" in rows[n] for n in ("fresh", "override", "gone", "no-quality", "sst2-row"))
    table = leaderboard.view("squad", "All", "All", "All", None, False)["table"]
    assert sorted(r[1] for r in table.value["data"]) == ["calibrated ⚠ old threshold", "fresh", "gone",
                                                          "no-quality", "override"]
    assert "⚠ old threshold: EM/F1 made at a \"no answer\" threshold the model no longer has" in table.label
    row_id = rows["calibrated"]["row_id"]
    assert "benchmark it again" in leaderboard.api_run_card(row_id)["note"]
    assert leaderboard.run_card(row_id)["note"] == rows["calibrated"]["note"]  # the card shown on a click
    assert "note" not in leaderboard.run_card(rows["fresh"]["row_id"])
    # the override row's model calibrated later: scored at the benchmark's own threshold, which the note names
    (tmp_path / "override" / "run.json").write_text(json.dumps({"eval_options": {"null_threshold": -1.0}}))
    assert leaderboard.api_run_card(rows["override"]["row_id"])["note"].startswith("scored at null threshold 3;")
    assert main(["leaderboard", "--task", "squad"]) == 0
    out = capsys.readouterr().out
    assert "| calibrated ⚠ old threshold |" in out and "fresh ⚠" not in out
    assert "⚠ calibrated: scored at null threshold 0; the model's is -2.5 now (calibrated since)" in out
    # the exports carry the note too: the tab's CSV download, and the CLI's --csv and --json
    import csv
    download = leaderboard.view("squad", "All", "All", "All", None, False)["download"]
    notes = {r["name"]: r["note"] for r in csv.DictReader(open(download, encoding="utf-8"))}
    assert notes["calibrated"] == rows["calibrated"]["note"] and notes["fresh"] == ""
    assert main(["leaderboard", "--task", "squad", "--csv"]) == 0
    notes = {r["name"]: r["note"] for r in csv.DictReader(capsys.readouterr().out.splitlines())}
    assert notes["calibrated"].startswith("scored at null threshold 0;") and notes["gone"] == ""
    assert main(["leaderboard", "--task", "squad", "--json"]) == 0
    notes = {r["name"]: r.get("note") for r in json.loads(capsys.readouterr().out)}
    assert notes["calibrated"].startswith("scored at null threshold 0;") and notes["fresh"] is None


# ---------------------------------------------------------------- handlers without a server


def fake_pipeline(ctx) -> dict:
    """Stands in for training (runs in the job's child process): two model folders with
    run cards, a few progress events, a near-chance warning."""
    import time

    from hub.paths import models_dir
    from hub.runs import write_card

    while ctx.name.startswith("slow") and not ctx.cancel.is_set():  # a run that lasts until it is stopped
        time.sleep(0.05)
    if ctx.cancel.is_set():  # as the real pipeline: a stop that reached the run ends it as stopped
        return {"status": "stopped"}
    ctx.set_plan([("finetune", 2), ("prediction", 2)])
    for role, accuracy in (("teacher", 0.51), ("student", 0.5)):
        folder = models_dir() / ctx.name / role
        folder.mkdir(parents=True, exist_ok=True)
        ctx.output(role, folder)
        rc = {"kind": role, "task": ctx.params["task"], "status": "finished", "created_at": "2025-01-01",
              "eval": {"student" if role == "student" else "model": {"accuracy": accuracy}}}
        if role == "student":
            rc["eval"].update(teacher={"accuracy": 0.51}, retention=0.5 / 0.51)
            rc["warnings"] = [NEAR_CHANCE]
        write_card(folder, rc)
    for stage in ("finetune", "prediction"):
        for step in (1, 2):
            ctx.progress({"stage": stage, "step": step, "total": 2, "losses": {"ce" if stage == "finetune"
                                                                              else "prediction": 1.0 / step}})
    return {"status": "finished"}


@pytest.fixture
def fake_queue(hub_home, monkeypatch):
    """The app's queue replaced by one whose jobs run ``fake_pipeline`` (no training)."""
    from hub import jobs

    q = jobs.JobQueue(root=hub_home / "jobs", pipeline="test_app:fake_pipeline", pythonpath=[str(TESTS)])
    monkeypatch.setattr(jobs, "default_queue", lambda: q)
    yield q
    q.close(cancel_running=True)


def start_form(tmp_path, **overrides):
    table = tmp_path / "mine.csv"
    table.write_text("text,label\n" + "".join(f"text number {i},{'yes' if i % 3 else 'no'}\n" for i in range(60)))
    form = dict(task="classification", teacher="minilm-l6", student="teacher-layers:2", layers=None, hidden=None,
                heads=None, ffn=None, source="Upload a file", local_name=None, hub_id="", hub_config="",
                upload_train=str(table), upload_eval=None, text_column="text", label_column="label",
                finetune_samples=100, train_samples=100, eval_samples=16, finetune_epochs=1, epochs=1,
                finetune_learning_rate=1e-4, learning_rate=1e-4, batch_size=8, max_length=32, temperature=1,
                alpha=0.5, stages=["prediction"], name="")
    return {**form, **overrides}


def test_job_params_prune_only_students_with_trained_weights(tmp_path):
    from ui import distill

    assert distill.prunable("teacher-layers:2") and distill.prunable("general-tb4/student")
    assert not any(distill.prunable(s) for s in ("custom", "tinybert-4l-312", "", None))
    params = distill.job_params(start_form(tmp_path, prune_ffn=768), None)
    assert params["prune_ffn"] == 768 and params["name"] == "classification-teacher-layers2-ffn768"
    # the field is hidden for a preset: a value left in it does not reach the job
    params = distill.job_params(start_form(tmp_path, student="tinybert-4l-312", prune_ffn=768), None)
    assert "prune_ffn" not in params and params["name"] == "classification-tinybert-4l-312"
    assert "prune_ffn" not in distill.job_params(start_form(tmp_path, prune_ffn=None), None)


def test_job_params_augment_classification_and_qa(tmp_path):
    from ui import distill

    assert all(distill.augmentable(t) for t in ("sst2", "classification", "squad"))
    assert not any(distill.augmentable(t) for t in ("mlm", "general", "generation", None))
    assert distill.job_params(start_form(tmp_path, augment=4), None)["augment"] == 4
    assert "augment" not in distill.job_params(start_form(tmp_path, augment=0), None)
    # hidden for masked-LM text: a value left in the field does not reach the job
    assert "augment" not in distill.job_params(start_form(tmp_path, task="mlm", augment=4), None)
    # cloze questions: extractive QA only
    assert distill.job_params(start_form(tmp_path, task="squad", cloze=2), None)["cloze"] == 2
    assert "cloze" not in distill.job_params(start_form(tmp_path, cloze=2), None)
    noisy = distill.job_params(start_form(tmp_path, task="squad", cloze=2, cloze_noise=0.5), None)
    assert noisy["cloze"] == 2 and noisy["cloze_noise"] == 0.5
    assert "cloze_noise" not in distill.job_params(start_form(tmp_path, task="squad", cloze=0, cloze_noise=0.5), None)
    assert "cloze_noise" not in distill.job_params(start_form(tmp_path, task="squad", cloze=2, cloze_noise=0), None)
    negatives = distill.job_params(start_form(tmp_path, task="squad", cloze=2, negatives=1), None)
    assert negatives["cloze"] == 2 and negatives["negatives"] == 1
    assert "negatives" not in distill.job_params(start_form(tmp_path, task="squad", cloze=0, negatives=1), None)
    assert "negatives" not in distill.job_params(start_form(tmp_path, task="squad", cloze=2, negatives=0), None)


def test_start_job_stages_the_upload_and_submits(tmp_path, hub_home, fake_queue):
    from hub import views
    from ui import distill

    out = distill.start_job(start_form(tmp_path), {})
    job_id, owned = out["watch"], out["owned"]
    status = fake_queue.wait(job_id, timeout=60)
    assert status["state"] == "finished", status["log"]
    data = status["params"]["data"]
    assert data["train_file"].startswith(str(hub_home / "uploads")) and data["eval_file"].endswith(".jsonl")
    assert owned["job"] == job_id and fake_queue.is_owner(job_id, owned["token"])
    assert status["params"]["stages"] == ["prediction"] and status["name"] == "classification-teacher-layers2"
    public = views.public_status(status)
    assert "outputs" not in public and public["params"]["data"] == "files"
    assert str(hub_home) not in json.dumps(public)


def test_a_qa_job_takes_a_squad_json_upload(tmp_path, hub_home, fake_queue):
    """Extractive QA uploads SQuAD JSON (the tables of other tasks are refused); the
    hidden column fields do not reach the job; QA's window is the CLI's 384 tokens."""
    from test_jobs import _squad_upload

    from hub.squad import read_squad
    from ui import distill

    squad = _squad_upload(tmp_path / "mine.json", contexts=30, per_context=4)
    form = start_form(tmp_path, task="squad", upload_train=str(squad), text_column="text", label_column="label",
                      student="teacher-layers:2", stages=["prediction"])
    assert distill.job_params(form, None)["text_column"] is None
    status = fake_queue.wait(distill.start_job(form, {})["watch"], timeout=60)
    assert status["state"] == "finished", status["log"]
    data = status["params"]["data"]
    assert data["train_file"].endswith("train.json") and len(read_squad(data["eval_file"])) == 12
    import gradio as gr

    with pytest.raises(gr.Error, match="Only .json, .jsonl, .parquet files are accepted"):
        distill.start_job(start_form(tmp_path, task="squad"), {})  # the CSV table of classification
    with pytest.raises(gr.Error, match="question 'q0-1'"):
        distill.start_job(start_form(tmp_path, task="squad", upload_train=str(
            _squad_upload(tmp_path / "bad.json", 30, 4, bad="q0-1"))), {})
    assert "SQuAD JSON" in distill.upload_hint("squad") and "CSV" in distill.upload_hint("sst2")
    assert distill.task_defaults("squad")[distill.TASK_DEFAULT_FIELDS.index("max_length")] == 384
    assert distill.learning_rate_for("teacher-layers:3", "squad") == 5e-4  # the kind's rate (hub.config)
    assert distill.learning_rate_for("teacher-layers:3", "sst2") == 1e-4


def test_a_general_student_is_offered_and_passed_as_the_students_folder(tmp_path, hub_home, fake_queue):
    """A finished general-distillation run is in the Student dropdown of the tasks that
    can start from it, by name and shape; the job gets its folder as the student."""
    from conftest import make_tiny_bert

    from hub.paths import models_dir
    from hub.runs import write_card
    from ui import distill

    folder = models_dir() / "general-tb4" / "student"
    make_tiny_bert(folder, layers=2)
    write_card(folder, card("student", task="general", student={"spec": "tinybert-4l-312", "layers": 4,
                                                                "hidden": 312, "heads": 12, "ffn": 1200}))
    label = ("general-tb4/student (general student, tinybert-4l-312 shape)", "general-tb4/student")
    assert label in distill.student_choices("classification") and label in distill.student_choices("squad")
    assert label not in distill.student_choices("generation")
    assert ("teacher-layers:3", "teacher-layers:3") in distill.student_choices("classification")
    out = distill.start_job(start_form(tmp_path, student="general-tb4/student"), {})
    status = fake_queue.wait(out["watch"], timeout=60)
    assert status["params"]["student"] == str(folder.resolve())
    md = distill.estimate_markdown(start_form(tmp_path, student="general-tb4/student"))
    assert "**Estimated time: ~" in md and "benchmark both" in md


@pytest.mark.parametrize("overrides, message", [
    ({"batch_size": 1000}, "“batch size” must be between"),
    ({"epochs": float("inf")}, "“epochs per stage” must be a finite number"),
    ({"stages": []}, "“stages” must be a non-empty subset"),
    ({"student": "custom", "layers": 2, "hidden": 30, "heads": 4}, "divisible"),
    ({"text_column": "nope"}, "the evaluation file: missing column"),
    ({"text_column": "nope"}, "Choose the right names in the “text column” and “label column” fields"),
    ({"teacher": "/etc"}, "Hugging Face Hub id"),
    ({"teacher": "../../models"}, "Hugging Face Hub id"),
    ({"teacher": "someone/not-cached-model"}, "cannot be reached"),
    ({"teacher": "bert-base-uncased"}, "cannot be reached"),  # a Hub id the CLI accepts: refused only offline
    ({"source": "Local data set", "local_name": "../../etc"}, "Choose one of the local data sets"),
    ({"task": "no-such-task"}, "Unknown task"),
])
def test_start_job_rejects_bad_settings_in_the_pages_words(tmp_path, hub_home, fake_queue, overrides, message):
    import gradio as gr

    from ui import distill

    with pytest.raises(gr.Error, match=message) as err:
        distill.start_job(start_form(tmp_path, **overrides), {})
    text = err.value.message
    assert str(tmp_path) not in text and "--" not in text and "train.jsonl" not in text  # no flags, no server files
    assert fake_queue.jobs() == []
    uploads = hub_home / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())  # a refused upload is not kept


def test_upload_type_is_checked_on_the_server(tmp_path, fake_queue):
    import gradio as gr

    from ui import distill

    exe = tmp_path / "data.exe"
    exe.write_text("text,label\nhi,1\n")
    with pytest.raises(gr.Error, match="Only .csv"):
        distill.start_job(start_form(tmp_path, upload_train=str(exe)), {})


def test_poll_shows_the_outcome_from_the_run_cards_and_stop_only_for_the_owner(tmp_path, fake_queue):
    from ui import compare, distill, run_status

    out = distill.start_job(start_form(tmp_path), {})
    job_id, owned = out["watch"], out["owned"]
    seen = {"watch": None, "mine": [job_id, "running"]}
    fake_queue.wait(job_id, timeout=60)
    updates, mine, ended = run_status.poll(job_id, owned, seen)
    assert "finished" in updates["progress"] and "Done: finished in" in updates["progress"]
    assert updates["timer"].active is False and updates["stop"].interactive is False
    assert updates["delete"].visible is True  # the owner may delete an ended run
    result = updates["result"]
    assert "**student** `classification-teacher-layers2/student` — finished" in result
    assert "retention 98.0% of the teacher" in result  # one format: a percentage
    assert "near chance" in result  # issue 8 item 9: the run card's warning is shown
    assert ended is True and mine["state"] == "finished"
    header = compare.job_updates(mine, ended)
    assert header["quick"].interactive is True and "Done:" in header["qs_status"].value
    # another browser sees the run but may not stop or delete it
    other, _, _ = run_status.poll(job_id, {"token": "someone else"}, None)
    assert other["delete"].visible is False and other["stop"].interactive is False
    assert run_status.progress_html(None).startswith("<div class='hub-status'>No run yet.")


def test_quick_start_is_disabled_while_this_browsers_run_is_active(tmp_path, fake_queue, monkeypatch):
    """Issue 8 item 5: the button is off while the browser's own run is queued or running,
    and the server refuses a second run of the same browser."""
    import gradio as gr

    from hub import jobs
    from ui import compare, distill

    queued = {"id": "x", "name": "quickstart", "state": jobs.QUEUED, "progress": {}, "position": 1}
    assert compare.job_updates(queued, False)["quick"].interactive is False
    assert compare.job_updates({**queued, "state": jobs.RUNNING}, False)["quick"].interactive is False
    assert compare.job_updates(None, False)["quick"].interactive is True
    out = distill.start_job(start_form(tmp_path, name="slow"), {})
    assert fake_queue.status(out["watch"])["state"] in jobs.ACTIVE_STATES
    with pytest.raises(gr.Error, match="already have a run"):
        distill.quick_start(out["owned"])
    fake_queue.cancel(out["watch"], owner=out["owned"]["token"])
    assert fake_queue.wait(out["watch"], timeout=60)["state"] == "stopped"


def test_delete_run_is_for_the_browser_that_owns_it(tmp_path, hub_home, fake_queue):
    """Issue 8 item 6."""
    import gradio as gr

    from ui import distill, run_status

    out = distill.start_job(start_form(tmp_path), {})
    job_id, owned = out["watch"], out["owned"]
    fake_queue.wait(job_id, timeout=60)
    folder = hub_home / "models" / "classification-teacher-layers2"
    assert (folder / "student" / "run.json").is_file()
    assert run_status.delete_job(None, owned) == {}  # declined in the confirmation
    with pytest.raises(gr.Error, match="Only the browser that started"):
        run_status.delete_job(job_id, {"token": "someone else"})
    assert (folder / "student").is_dir()
    run_status.delete_job(job_id, owned)
    assert not (folder / "student").exists() and not (folder / "teacher").exists()
    updates, _, _ = run_status.poll(job_id, owned, None)
    assert updates["delete"].visible is False and "were deleted" in updates["result"]


def test_models_are_listed_with_the_status_of_their_run_card(hub_home, tiny_pair):
    """Issue 8 item 4: the Compare lists show run.json's status, and a run whose card says
    running (its weights are not final) is not offered."""
    from ui import compare

    t, s = seed_models(hub_home, *tiny_pair)
    student = json.loads((s / "run.json").read_text())
    (s / "run.json").write_text(json.dumps({**student, "status": "stopped"}))
    labels = dict((v, k) for k, v in compare.model_updates("sst2")["model_a"].choices)
    assert labels == {"tiny/teacher": "tiny/teacher (teacher)", "tiny/student": "tiny/student (student, stopped)"}
    (s / "run.json").write_text(json.dumps({**student, "status": "running"}))
    labels = [label for label, _ in compare.model_updates("sst2")["model_a"].choices]
    assert labels == ["tiny/teacher (teacher)"] and not any("running" in label for label in labels)


def test_compare_shows_the_section_of_the_tasks_kind(hub_home):
    """Every implemented task is offered; the section of its kind shows, or a line saying
    there is none yet; /compare refuses a task of another kind by name."""
    import gradio as gr

    from hub.tasks import TASKS
    from ui import compare, compare_classification, implemented_tasks

    assert implemented_tasks()[0] == "sst2" and set(implemented_tasks()) == {n for n, t in TASKS.items()
                                                                             if t.implemented}
    other = next((n for n in implemented_tasks() if TASKS[n].kind != "classification"), None)
    if other is None:
        pytest.skip("no implemented task of another kind")
    up = compare.task_updates(other)
    assert up["section:classification"].visible is False
    assert up["no_section"].visible is (TASKS[other].kind not in compare.sections())
    with pytest.raises(gr.Error, match=f"Task {other} is a {TASKS[other].kind} task"):
        compare_classification.api_compare(other, "a", "b", "text")
    assert compare.task_updates("sst2")["section:classification"].visible is True


def test_progress_names_every_phase():
    """Caching the teacher's outputs is its own phase; the benchmark shows an ETA or its elapsed time."""
    from ui import run_status

    caching = run_status.running_detail({"stage": "caching the teacher's logits"})
    assert caching.startswith("Caching the teacher's outputs")
    bench = run_status.running_detail({"stage": "benchmark", "phase_started_at": 100.0, "eta_s": 20}, now=110.0)
    assert bench.startswith("Benchmarking for the leaderboard") and "ETA 20s" in bench
    assert "10s so far" in run_status.running_detail({"stage": "benchmark", "phase_started_at": 100.0}, now=110.0)
    cached = run_status.running_detail({"stage": "teacher-logits", "phase_started_at": 100.0, "phase_step": 1000,
                                        "phase_total": 4000, "eta_s": 30}, now=110.0)
    assert cached == "Caching the teacher's outputs … · 1,000/4,000 examples (25%) · ETA 30s"
    train = run_status.running_detail({"stage": "prediction", "stage_index": 2, "n_stages": 3, "step": 5,
                                       "total": 10, "examples_per_s": 50, "eta_s": 75})
    assert train == "Stage 2/3: distilling the prediction layer · step 5/10 · 50 examples/s · ETA 1m 15s"
    first = run_status.running_detail({"stage": "finetune", "stage_index": 1, "n_stages": 3, "step": 1,
                                       "total": 63, "examples_per_s": 9, "eta_s": 1053})
    assert first.endswith("ETA after a few steps")  # not the 17 min that step 1's pace projects


def test_loss_frame_is_smoothed_and_always_holds_every_term():
    from hub import jobs
    from ui import run_status

    assert run_status.loss_frame(None) is None and run_status.loss_frame({"losses": {}}) is None
    df = run_status.loss_frame({"losses": {"ce": [[1, 0.7], [2, 0.6]], "hidden": [[3, 0.5], [4, 0.4]]}})
    assert list(dict.fromkeys(df["term"])) == list(jobs.LOSS_CURVES)  # fixed order: stable colours
    # a term without points gets one point on an existing one: nothing is drawn for it
    assert df[df.term == "prediction"][["step", "loss"]].values.tolist() == [[1, 0.7]]
    hidden = df[df.term == "hidden"]["loss"].tolist()
    assert hidden[0] == 0.5 and hidden[1] == pytest.approx(0.9 * 0.5 + 0.1 * 0.4)  # EMA, alpha 0.1


def test_estimate_markdown_shows_its_basis(hub_home):
    from ui import distill

    form = {"task": "sst2", "teacher": "minilm-l6", "student": "teacher-layers:3", "finetune_samples": 2000,
            "train_samples": 4000, "finetune_epochs": 1, "epochs": 1, "stages": ["intermediate", "prediction"],
            "batch_size": 32, "source": "Hub data set", "hub_id": "glue", "hub_config": "sst2"}
    md = distill.estimate_markdown(form)
    assert "**Estimated time: ~" in md and "basis: default guess" in md
    assert "about " in distill.quick_start_estimate() and "default guess" in distill.quick_start_estimate()


# ---------------------------------------------------------------- views and links


def test_pareto_follows_the_headline_direction_and_compares_one_protocol():
    from hub import views
    from hub.tasks import TASKS

    def row(name, q, ms, protocol="full", role="student", metric="accuracy", task="sst2"):
        return {"name": name, "task": task, metric: q, "latency_p50_ms": ms, "ranked": 1, "role": role,
                "protocol": protocol}

    rows = [row("t", 0.9, 10, role="teacher"), row("fast", 0.85, 2), row("worse", 0.8, 3),
            row("quick-one", 0.7, 2.5, protocol="quick")]
    kinds = {p["model"]: p["kind"] for p in views.pareto_points(rows, TASKS["sst2"])}
    # "worse" is dominated by "fast"; the quick row is not compared with the full ones
    assert kinds == {"t": "teacher", "fast": "Pareto-optimal", "worse": "other", "quick-one": "Pareto-optimal"}
    t_int8 = {**row("t (int8)", 0.89, 4, role="teacher"), "quantization": "int8"}
    t_onnx = {**row("t (onnx)", 0.9, 12, role="teacher"), "runtime": "onnx"}
    kinds = {p["model"]: p["kind"] for p in views.pareto_points(rows + [t_int8, t_onnx], TASKS["sst2"])}
    assert kinds["t"] == "teacher" and kinds["t (int8)"] == "Pareto-optimal" and kinds["t (onnx)"] == "other"
    gen = [row(n, q, ms, metric="perplexity", task="generation") for n, q, ms in (("a", 20.0, 1), ("b", 25.0, 2))]
    kinds = {p["model"]: p["kind"] for p in views.pareto_points(gen, TASKS["generation"])}
    assert kinds == {"a": "Pareto-optimal", "b": "other"}  # lower perplexity is better
    assert [r["name"] for r in views.sort_rows(gen[::-1])] == ["a", "b"]


def test_page_messages_name_the_fields():
    from hub import views
    from ui import distill

    msg = views.page_message("no training examples left (check --max-train-samples)", distill.MESSAGE_LABELS)
    assert msg == "no training examples left (check the “distillation samples” field)"
    assert views.page_message("could not read /srv/x/data/train.tsv", {}) == "could not read …/data/train.tsv"
    assert views.format_percent(0.97531) == "97.5%" and views.axis_limits([2.0, 2.0]) == (1.8, 2.2)


def test_links_fall_back_with_notes_and_keep_ranked_only():
    from ui import links

    known = {"task": ["sst2"], "hardware": ["cpu | 2"], "runtime": ["torch"], "protocol": ["full", "quick"]}
    state = links.parse({"tab": "leaderboard", "task": "sst2", "hw": "cpu | 2", "protocol": "quick",
                         "ranked": "1", "runtime": "<b>"}, set(), known)
    assert state["tab"] == "leaderboard" and state["leaderboard"] == {
        "task": "sst2", "hardware": "cpu | 2", "runtime": "All", "protocol": "quick", "ranked": True,
        "history": False}
    assert state["notes"] == ["unknown runtime in the link"]
    state = links.parse({"a": "tiny/teacher", "b": "<img>", "text": "x" * 2001}, {"tiny/teacher"}, known)
    assert state["tab"] == "compare" and state["compare"]["a"] == "tiny/teacher" and state["compare"]["b"] is None
    assert state["compare"]["text"] == "" and len(state["notes"]) == 2
    assert "<img>" not in links.notice(state["notes"])
    assert "ranked" in links.leaderboard_link_js()


def test_views_doctests():
    import doctest

    from hub import views

    assert doctest.testmod(views).failed == 0


def test_job_params_carry_the_arithmetic_fields():
    from ui.distill_form import OWN_DROPOUT, job_params

    form = {"task": "sst2", "student": "teacher-layers:3", "stages": ["intermediate", "prediction"], "precision": "bf16",
            "attention_dropout": "0"}
    p = job_params(form, None)
    assert (p["precision"], p["attention_dropout"]) == ("bf16", "0")
    p = job_params({**form, "precision": "fp32", "attention_dropout": OWN_DROPOUT}, None)
    assert (p["precision"], p["attention_dropout"]) == ("fp32", None)
    from hub import jobs

    params = {k: v for k, v in job_params(form, None).items() if v is not None and k != "data"}
    assert jobs.validate_params(params)["attention_dropout"] == 0.0
