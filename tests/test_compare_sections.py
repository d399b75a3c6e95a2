"""The Compare sections for question answering, fill-mask and generation
(``ui/compare_qa.py``, ``ui/compare_fill_mask.py``, ``ui/compare_generation.py``):
their API functions called directly on tiny models saved under ``HUB_HOME/models``
the way a job saves them, their limits, views, links and the generation stream;
QA's batch mode; the published Hub pairs (reachability and loader mocked); ONNX
Runtime variants of a classifier and of the QA oracle in both sections.
No server, no training: a hand-built QA oracle (answers the colour word), a
random tiny BertForMaskedLM and a random tiny GPT-2."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import pytest
import torch

from hub.runs import write_card

CARD = {"status": "finished", "created_at": "2025-06-01T12:00:00+00:00", "train": {"max_length": 48}}


def register(home: Path, task: str, teacher: Path, student: Path) -> tuple[str, str]:
    """A job's pair under models_dir(): <task-job>/{teacher,student} with run cards; their model names."""
    import shutil

    root = home / "models" / f"{task}-job"
    shutil.copytree(teacher, root / "teacher")
    shutil.copytree(student, root / "student")
    write_card(root / "teacher", {**CARD, "kind": "teacher", "task": task})
    write_card(root / "student", {**CARD, "kind": "student", "task": task, "teacher": str(root / "teacher")})
    return f"{task}-job/teacher", f"{task}-job/student"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny saved models: a QA oracle, two fill-mask BERTs, two GPT-2s."""
    from conftest import VOCAB, make_tokenizer
    from test_generation_kind import save_lm
    from test_qa_kind import make_oracle
    from transformers import BertConfig, BertForMaskedLM

    root = tmp_path_factory.mktemp("section-models")
    out = {"qa": make_oracle(root / "qa")}
    for i, name in enumerate(("mlm_a", "mlm_b")):
        torch.manual_seed(i)
        BertForMaskedLM(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2 - i,
                                   num_attention_heads=4, intermediate_size=64,
                                   max_position_embeddings=64)).save_pretrained(str(root / name))
        make_tokenizer(root / name)
        out[name] = root / name
    out["gen_a"] = save_lm(root / "gen_a", "gpt2", layers=2, seed=0)
    out["gen_b"] = save_lm(root / "gen_b", "gpt2", layers=1, seed=1)
    from conftest import make_tiny_bert

    out["cls_a"] = make_tiny_bert(root / "cls_a", layers=2, seed=0)
    out["cls_b"] = make_tiny_bert(root / "cls_b", layers=1, seed=1)
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory, models):
    """HUB_HOME with a pair of each kind and no local data (no eval-set examples)."""
    home = tmp_path_factory.mktemp("sections-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUB_HOME", str(home))
        mp.setenv("HUB_DATA_DIR", str(tmp_path_factory.mktemp("nodata")))
        names = {"squad": register(home, "squad", models["qa"], models["qa"]),
                 "mlm": register(home, "mlm", models["mlm_a"], models["mlm_b"]),
                 "generation": register(home, "generation", models["gen_a"], models["gen_b"]),
                 "sst2": register(home, "sst2", models["cls_a"], models["cls_b"])}
        torch.set_num_threads(1)
        yield names


def test_sections_are_found_and_declare_their_endpoints():
    from ui import compare

    found = compare.sections()
    assert {"qa", "mlm", "generation"} <= set(found)
    assert {"compare_qa", "compare_fill_mask", "compare_generate"} <= set(compare.section_apis())
    assert compare.link_inputs()["qa"] == "qa:link_text" and compare.link_inputs()["mlm"] == "mlm:text"


# ---------------------------------------------------------------- question answering

QUESTION = "what color is it?"
CONTEXT = "the dog ran to the park then a big blue bird sat on the tree ."


def test_qa_answers_side_by_side_highlighted(home):
    from ui import compare_qa

    a, b = home["squad"]
    r = compare_qa.api_compare_qa("squad", a, b, QUESTION, CONTEXT)
    assert set(r) >= {"task", "model_a", "model_b", "a", "b", "agree", "f1_between"}
    assert set(r["a"]) >= {"answer", "score", "start_char", "end_char", "no_answer", "latency_ms"}
    assert r["a"]["answer"] == "blue" and r["agree"] and r["f1_between"] == 1.0 and r["b"]["latency_ms"] > 0
    assert CONTEXT[r["a"]["start_char"]:r["a"]["end_char"]] == "blue"
    view = compare_qa.compare_view("squad", a, b, QUESTION, CONTEXT)
    assert "<mark" in view["out_a"] and ">blue</mark>" in view["out_a"] and "agree" in view["stats"]
    none = compare_qa.compare_view("squad", a, b, QUESTION, "the dog ran to the park .")
    assert "no answer" in none["out_b"] and "<mark" not in none["out_b"]


def test_qa_long_context_is_read_in_windows_and_markup_is_escaped(home):
    from ui import compare_qa

    a, b = home["squad"]
    long = " ".join(["the dog ran to the park"] * 300) + " then a red bird sat <b>on</b> the mat ."
    r = compare_qa.api_compare_qa("squad", a, b, QUESTION, long)
    assert r["a"]["answer"] == "red" and long[r["a"]["start_char"]:r["a"]["end_char"]] == "red"
    html = compare_qa.highlight(long, r["a"]["start_char"], r["a"]["end_char"])
    assert "&lt;b&gt;on&lt;/b&gt;" in html and "<b>on" not in html and len(html) < 2_000 and html.count("…") == 1


@pytest.mark.parametrize("question, context, message", [
    ("", CONTEXT, "Type a question"),
    (QUESTION, "   ", "Paste a context"),
    ("why " * 126, CONTEXT, "question is too long"),
    (QUESTION, "x" * 20_001, "context is too long"),
])
def test_qa_limits_are_refused_in_the_handler(home, question, context, message):
    from ui import compare_qa_api

    a, b = home["squad"]
    with pytest.raises(gr.Error, match=message) as err:
        compare_qa_api.api_compare_qa("squad", a, b, question, context)
    assert "xxxx" not in err.value.message


def test_qa_refuses_unknown_models_and_other_kinds(home):
    from ui import compare_qa_api

    a, _ = home["squad"]
    with pytest.raises(gr.Error, match="Model B is not one of") as err:
        compare_qa_api.api_compare_qa("squad", a, "../../etc/passwd", QUESTION, CONTEXT)
    assert "passwd" not in err.value.message
    with pytest.raises(gr.Error, match="not qa"):
        compare_qa_api.api_compare_qa("sst2", a, a, QUESTION, CONTEXT)


def test_qa_examples_link_and_gold(home, tmp_path, monkeypatch):
    from test_qa_kind import make_examples, write_squad

    from ui import compare_qa

    text = compare_qa.link_text(QUESTION, CONTEXT)
    assert compare_qa.parse_link_text(text) == (QUESTION, CONTEXT) and compare_qa.parse_link_text("plain") is None
    a, b = home["squad"]
    shown = compare_qa.from_link("squad", a, b, text)
    assert shown["question"] == QUESTION and ">blue</mark>" in shown["out_a"]
    assert len(compare_qa.examples("squad")) == 4  # no local data: the task's examples only
    write_squad(tmp_path / "squad" / "dev-subset-v2.0.json", make_examples(12, seed=3, prefix="d", unanswerable=0.5))
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    items = compare_qa.examples("squad")
    gold = [e for e in items if e["source"] == "eval set"]
    assert gold and any(e["gold"] == [] for e in gold) and any(e["gold"] for e in gold)
    i = items.index(next(e for e in gold if e["gold"]))
    picked = compare_qa.pick_example("squad", i)
    assert picked["question"] == items[i]["question"] and "Gold answer" in picked["gold"]
    assert "no answer" in compare_qa.gold_text([]) and compare_qa.pick_example("squad", 999) == {}


# ---------------------------------------------------------------- question answering: batch mode


def _squad_json(examples: list[dict]) -> str:
    from test_qa_kind import write_squad

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_squad(Path(tmp) / "x.json", examples).read_text()


def test_qa_batch_of_eval_questions(home, tmp_path, monkeypatch):
    from test_qa_kind import make_examples, write_squad

    from ui import compare_qa

    a, b = home["squad"]
    dev = make_examples(12, seed=3, prefix="d", unanswerable=0.5)
    write_squad(tmp_path / "squad" / "dev-subset-v2.0.json", dev)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    r = compare_qa.api_compare_qa_batch("squad", a, b, n=5)
    assert r["n"] == 5 and r["n_gold"] == 5 and str(tmp_path) in r["source"]
    assert r["agreement"] == 1.0 and r["disagreements"] == []  # the same oracle on both sides
    assert r["exact_match_a"] == r["f1_b"] == 100.0  # the oracle answers the colour, or "no answer"
    assert r["throughput_a"] > 0 and r["throughput_b"] > 0 and r["runtime"] == {"a": "PyTorch", "b": "PyTorch"}
    items, _ = compare_qa.eval_items("squad", 5)  # spread over the set: questions 0, 2, 4, 7, 9
    assert [i["question"] for i in items] == [dev[k]["question"] for k in (0, 2, 4, 7, 9)]
    assert [i["answers"] for i in items] == [dev[k]["answers"]["text"] for k in (0, 2, 4, 7, 9)]
    assert len(compare_qa.eval_items("squad", 100)[0]) == 12  # never more than the set holds
    view = compare_qa.batch_view("squad", a, b, 3)
    assert "Agreement 100.0%" in view["batch_stats"] and "questions/s" in view["batch_stats"]
    assert "EM 100.0" in view["batch_stats"] and list(view["disagreements"].columns) == compare_qa.BATCH_COLUMNS


def test_qa_batch_of_pasted_json_scores_against_gold(home):
    from ui import compare_qa

    a, b = home["squad"]
    wrong = [{"id": "w1", "title": "t", "question": QUESTION, "context": "a red bird .", "is_impossible": False,
              "answers": {"text": ["bird"], "answer_start": [6]}},
             {"id": "w2", "title": "t", "question": QUESTION, "context": "a dog .", "is_impossible": True,
              "answers": {"text": [], "answer_start": []}}]
    r = compare_qa.api_compare_qa_batch("squad", a, b, squad_json=_squad_json(wrong))
    assert r["source"] == "pasted JSON" and r["n"] == r["n_gold"] == 2
    assert r["exact_match_a"] == 50.0 and r["f1_a"] == 50.0  # "red" against gold "bird"; "no answer" is right
    view = compare_qa.pasted_view("squad", a, b, _squad_json(wrong))
    assert "EM 50.0 / F1 50.0" in view["batch_stats"]


@pytest.mark.parametrize("n, squad_json, message", [
    (0, "", "from 1 to 100"),
    (101, "", "from 1 to 100"),
    (2.5, "", "from 1 to 100"),
    ("many", "", "from 1 to 100"),
    (5, "{not json", "not valid JSON"),
    (5, '{"data": [{"paragraphs": [{"context": "x", "qas": [{"id": "q", "question": "?", "answers": '
        '[{"text": "y", "answer_start": 0}]}]}]}]}', "is not at answer_start 0"),
    (5, "x" * 500_001, "too long"),
])
def test_qa_batch_limits_are_refused(home, n, squad_json, message):
    from ui import compare_qa_api

    a, b = home["squad"]
    with pytest.raises(gr.Error, match=message):
        compare_qa_api.api_compare_qa_batch("squad", a, b, n, squad_json)


def test_qa_batch_refuses_too_many_pasted_questions_and_empty_paste(home):
    from test_qa_kind import make_examples

    from ui import compare_qa

    a, b = home["squad"]
    with pytest.raises(gr.Error, match="has 101 questions; the limit is 100"):
        compare_qa.api_compare_qa_batch("squad", a, b, squad_json=_squad_json(make_examples(101, seed=1, prefix="m")))
    with pytest.raises(gr.Error, match="Paste SQuAD JSON first"):
        compare_qa.pasted_view("squad", a, b, "  ")
    assert "compare_qa_batch" in __import__("ui.compare", fromlist=["x"]).section_apis()


# ---------------------------------------------------------------- published pairs (online)


@pytest.fixture
def online(monkeypatch):
    """The Hub "reachable": the probe mocked to answer, decided afresh for this test."""
    from hub import published

    calls = []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(published, "_probe", lambda timeout=published.REACH_TIMEOUT_S: calls.append(timeout) or True)
    published.hub_reachable.cache_clear()
    yield calls
    published.hub_reachable.cache_clear()


def test_published_pairs_are_hidden_offline(home, monkeypatch):
    from hub import published
    from ui import compare

    monkeypatch.setattr(published, "_probe", lambda timeout=0: pytest.fail("offline: no request"))
    published.hub_reachable.cache_clear()
    try:
        assert not published.hub_reachable() and published.pairs("squad") == ()
        assert not any(k.startswith("hub:") for k in compare.compare_models("squad"))
        updates = compare.model_updates("squad")
        assert updates["pairs"].visible is False and compare.pair_choices("squad") == []
        assert compare.api_models("squad")["published_pairs"] == []
    finally:
        published.hub_reachable.cache_clear()


def test_published_pairs_are_listed_online_and_a_choice_selects_both(home, online, monkeypatch):
    import hub.inference as inference
    from hub import published
    from ui import compare, compare_qa

    assert published.hub_reachable() and published.hub_reachable() and len(online) == 1  # decided once
    models = compare.compare_models("squad")
    teacher, student = "hub:deepset/bert-base-cased-squad2", "hub:distilbert/distilbert-base-cased-distilled-squad"
    assert models[teacher]["role"] == "teacher" and models[student]["role"] == "student"
    assert list(models)[:2] == list(home["squad"])  # this server's models first
    updates = compare.model_updates("squad")
    assert updates["pairs"].visible is True and updates["notice"].visible is False
    assert "deepset/bert-base-cased-squad2 (Hub teacher)" in [label for label, _ in updates["model_a"].choices]
    picked = compare.pick_pair("squad", 0)
    assert picked["model_a"].value == teacher and picked["model_b"].value == student
    assert "vocabulary" in picked["pair_note"].value and compare.pick_pair("squad", 9) == {}
    assert compare.api_models("squad")["published_pairs"][0] == {"model_a": teacher, "model_b": student,
                                                                  "why": published.PAIRS["squad"][0].why}
    # the models load through the usual loader (load_model: safetensors only), here mocked to the oracle
    loaded = []
    oracle = compare.model_path(home["squad"][0], "squad", "A")
    real_load, real_tok = inference.load_model, inference.load_tokenizer
    monkeypatch.setattr(inference, "load_model", lambda ref, task, id2label=None: loaded.append((ref, id2label))
                        or real_load(oracle, task))
    monkeypatch.setattr(inference, "load_tokenizer", lambda ref: real_tok(oracle))
    r = compare_qa.api_compare_qa("squad", teacher, student, QUESTION, CONTEXT)
    assert r["a"]["answer"] == "blue" and r["agree"]
    assert sorted(loaded) == [("deepset/bert-base-cased-squad2", None),
                              ("distilbert/distilbert-base-cased-distilled-squad", None)]
    sst2 = compare.compare_models("sst2")["hub:textattack/bert-base-uncased-SST-2"]
    assert sst2["id2label"] == {0: "negative", 1: "positive"}  # LABEL_1 and POSITIVE read as one label


def test_published_default_pair_on_an_empty_server(online, tmp_path, monkeypatch):
    from ui import compare

    monkeypatch.setenv("HUB_HOME", str(tmp_path))  # no trained models
    a, b = compare.default_pair("squad", compare.compare_models("squad"))
    assert (a, b) == ("hub:deepset/bert-base-cased-squad2", "hub:distilbert/distilbert-base-cased-distilled-squad")
    assert compare.model_updates("squad")["notice"].visible is True  # still says how to train a pair


# ---------------------------------------------------------------- ONNX Runtime variants


@pytest.fixture(scope="module")
def onnx_variants(home):
    """Exports where ``bench --runtime onnx`` caches them: the sst2 student in fp32, the QA
    student in int8 (each export takes seconds)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from hub.export import export_onnx
    from hub.paths import onnx_cache_dir
    from ui import compare

    out = {}
    for task, quant in (("sst2", "fp32"), ("squad", "int8")):
        student = compare.model_path(home[task][1], task, "B")
        head = "QuestionAnswering" if task == "squad" else "SequenceClassification"
        folder = onnx_cache_dir(student, quant)
        export_onnx(student, str(folder), quantize="int8" if quant == "int8" else None, head=head,
                    sample_texts=[(QUESTION, CONTEXT)] if task == "squad" else None)
        out[task] = f"{home[task][1]}@onnx-{quant}"
    return out


def test_onnx_variants_are_listed_and_labelled(home, onnx_variants):
    from hub import views
    from ui import compare

    models = compare.compare_models("sst2")
    key = onnx_variants["sst2"]
    assert list(models) == [*home["sst2"], key]  # teacher, student, then the student's variant
    assert models[key]["runtime"] == "onnx" and models[key]["base"] == home["sst2"][1]
    assert views.model_label(key, models[key]) == "sst2-job/student · onnx fp32 (student)"
    assert compare.default_pair("sst2", models) == tuple(home["sst2"])  # a variant is picked, never the default
    assert onnx_variants["squad"] in compare.compare_models("squad") and key not in compare.compare_models("squad")
    from hub import jobs

    assert key not in jobs.allowed_models("sst2")  # never a teacher for a job


def test_classification_section_runs_an_onnx_variant_and_says_so(home, onnx_variants):
    from ui import compare_classification

    a, b = home["sst2"]
    onnx = onnx_variants["sst2"]
    r = compare_classification.api_compare("sst2", b, onnx, "the movie was good")
    assert r["runtime"] == {"a": "PyTorch", "b": "ONNX Runtime fp32"}
    assert r["agree"] and r["kl"] == pytest.approx(0.0, abs=1e-6)  # the fp32 export is the same model
    view = compare_classification.compare_view("sst2", a, onnx, "the movie was good")
    assert view["out_b"].label.endswith("ms · ONNX Runtime fp32") and "(ONNX Runtime fp32)" in view["stats"]
    batch = compare_classification.api_compare_batch("sst2", b, onnx, "the movie was good\nbad and dull")
    assert batch["agreement"] == 1.0 and batch["runtime"]["b"] == "ONNX Runtime fp32"


def test_qa_section_runs_an_onnx_int8_variant_and_says_so(home, onnx_variants):
    from ui import compare_qa

    a, _ = home["squad"]
    onnx = onnx_variants["squad"]
    r = compare_qa.api_compare_qa("squad", a, onnx, QUESTION, CONTEXT)
    assert r["runtime"] == {"a": "PyTorch", "b": "ONNX Runtime int8"} and r["b"]["answer"] == "blue"
    view = compare_qa.compare_view("squad", a, onnx, QUESTION, CONTEXT)
    assert "ONNX Runtime int8" in view["out_b"] and "PyTorch" in view["out_a"]
    batch = compare_qa.api_compare_qa_batch("squad", a, onnx, squad_json=_squad_json([
        {"id": "x", "title": "t", "question": QUESTION, "context": CONTEXT, "is_impossible": False,
         "answers": {"text": ["blue"], "answer_start": [CONTEXT.index("blue")]}}]))
    assert batch["f1_b"] == 100.0 and batch["runtime"]["b"] == "ONNX Runtime int8"


def test_an_export_folder_under_the_models_folder_is_offered(home, onnx_variants, tmp_path):
    """``python -m hub export --model <a model> --output-dir <under HUB_HOME/models>``: found by its export.json."""
    import json
    import shutil

    from hub.paths import models_dir
    from ui import compare

    student = compare.model_path(home["sst2"][1], "sst2", "B")
    folder = models_dir() / "sst2-job" / "student-onnx-int8"
    shutil.copytree(compare.compare_models("sst2")[onnx_variants["sst2"]]["path"], folder)
    card = json.loads((folder / "export.json").read_text())
    (folder / "export.json").write_text(json.dumps({**card, "source": student, "quantization": {"weight_type": "QInt8"}}))
    try:
        models = compare.compare_models("sst2")
        key = f"{home['sst2'][1]}@onnx-int8"
        assert models[key]["path"] == str(folder.resolve()) and models[key]["quantization"] == "int8"
        assert onnx_variants["sst2"] in models  # the cached fp32 export is still there
    finally:
        shutil.rmtree(folder)


def test_a_stale_export_is_not_offered(home, onnx_variants):
    import os

    from ui import compare

    student = Path(compare.model_path(home["sst2"][1], "sst2", "B"))
    weights = next(student.glob("*.safetensors"))
    graph = Path(compare.compare_models("sst2")[onnx_variants["sst2"]]["path"]) / "model.onnx"
    before = weights.stat().st_mtime
    os.utime(weights, (graph.stat().st_mtime + 10, graph.stat().st_mtime + 10))  # retrained after the export
    try:
        assert onnx_variants["sst2"] not in compare.compare_models("sst2")
    finally:
        os.utime(weights, (before, before))


# ---------------------------------------------------------------- fill-mask


def test_fill_mask_top5_per_mask_side_by_side(home):
    from ui import compare_fill_mask

    a, b = home["mlm"]
    r = compare_fill_mask.api_compare_fill_mask("mlm", a, b, "the [MASK] was [MASK] and fun")
    assert r["n_masks"] == 2 and [m["mask"] for m in r["masks"]] == [1, 2]
    for m in r["masks"]:
        assert len(m["a"]) == len(m["b"]) == 5 and 0 <= m["overlap"] <= 1 and m["kl"] >= 0
        probs = [t["probability"] for t in m["a"]]
        assert probs == sorted(probs, reverse=True) and set(m["a"][0]) == {"token", "id", "probability"}
    assert r["a"]["latency_ms"] > 0 and r["b"]["latency_ms"] > 0 and "mean_kl" in r
    same = compare_fill_mask.api_compare_fill_mask("mlm", a, a, "the movie was [MASK]")
    assert same["agree"] and same["mean_overlap"] == 1.0 and abs(same["mean_kl"]) < 1e-5
    view = compare_fill_mask.compare_view("mlm", a, b, "the movie was [MASK]")
    assert "Mask 1" in view["out_a"] and "KL" in view["stats"] and view["out_a"].count("<tr ") == 5


@pytest.mark.parametrize("text, message", [
    ("", "Type a sentence"),
    ("the movie was good", "has no \\[MASK\\]"),
    (" ".join(["[MASK]"] * 6), "6 masks; at most 5"),
    ("[MASK] " + "x" * 2_001, "too long"),
])
def test_fill_mask_limits(home, text, message):
    from ui import compare_fill_mask

    a, b = home["mlm"]
    with pytest.raises(gr.Error, match=message):
        compare_fill_mask.api_compare_fill_mask("mlm", a, b, text)


def test_fill_mask_link_shows_the_comparison(home):
    from ui import compare_fill_mask

    a, b = home["mlm"]
    assert "Mask 1" in compare_fill_mask.from_link("mlm", a, b, "the [MASK] was great")["out_b"]
    assert compare_fill_mask.from_link("mlm", a, b, "no mask here") == {}


# ---------------------------------------------------------------- generation


def test_generation_stream_yields_both_sides_alternately(home):
    from hub.lm_eval import DecodeSettings
    from ui import compare_generation

    a, b = home["generation"]
    states = list(compare_generation.stream("generation", a, b, "the cat sat", DecodeSettings(max_new_tokens=5)))
    assert states[-1]["done"] and states[-1]["a_tokens"] <= 5 and states[-1]["b_tokens"] <= 5
    grew = [(s["a_tokens"], s["b_tokens"]) for s in states]
    assert grew[0] == (1, 0) and (1, 1) in grew  # A's first token, then B's
    assert states[-1]["a_ttft_ms"] > 0 and states[-1]["b_ttft_ms"] > 0
    updates = list(compare_generation.generate_view("generation", a, b, "the cat sat", 4, False, 1.0, 1.0, 0, False))
    assert "Greedy" in updates[0]["settings_view"] and "Done" in updates[-1]["status"]
    assert updates[-1]["out_a"].startswith("the cat sat") and "TTFT" in updates[-1]["speed_b"]


def test_generation_api_payload_and_cap(home):
    from ui import compare_generation

    a, b = home["generation"]
    r = compare_generation.api_compare_generate("generation", a, b, "the dog ran", 6)
    assert {"a", "b", "a_tokens", "b_tokens", "a_ttft_ms", "b_tokens_per_s", "same_text",
            "common_prefix_chars", "settings"} <= set(r)
    assert r["settings"] == {"greedy": True, "max_new_tokens": 6} and r["a_tokens"] <= 6
    same = compare_generation.api_compare_generate("generation", a, a, "the dog ran", 4)
    assert same["same_text"] and same["common_prefix_chars"] == len(same["a"])
    for n in (0, 129, 2.5, "many"):
        with pytest.raises(gr.Error, match="max_new_tokens must be"):
            compare_generation.api_compare_generate("generation", a, b, "the dog ran", n)
    with pytest.raises(gr.Error, match="Type a prompt"):
        compare_generation.api_compare_generate("generation", a, b, " ", 4)


def test_generation_sampling_settings_link_and_chat_template(home):
    from ui import compare_generation

    a, b = home["generation"]
    s = compare_generation.settings_from(8, True, 0.7, 0.9, 3)
    assert not s.greedy and "temperature 0.7" in compare_generation.settings_text(s)
    with pytest.raises(gr.Error, match="top_p must be"):
        compare_generation.settings_from(8, True, 0.7, 1.5, 3)
    text = compare_generation.link_text("the cat", 8, True, 0.7, 0.9, 3, False)
    fields = compare_generation.parse_link_text(text)
    assert fields["prompt"] == "the cat" and fields["sampling"] and fields["top_p"] == 0.9
    assert compare_generation.parse_link_text('{"prompt": "x", "max_new_tokens": 999}') == {"prompt": "x"}
    assert compare_generation.parse_link_text("not json") == {}
    assert compare_generation.chat_update("generation", a)["chat"].interactive is False
    updates = list(compare_generation.generate_view("generation", a, b, "the cat", 4, False, 1.0, 1.0, 0, True))
    assert updates[-1] == {"status": ""}  # refused: one warning, nothing else changes
    folder = Path(compare_generation.model_path(a, "generation", "A"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": "{{ messages }}"}))
    try:
        assert compare_generation.has_chat_template(str(folder))
    finally:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
