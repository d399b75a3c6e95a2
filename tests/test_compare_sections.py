"""The Compare sections for question answering, fill-mask and generation
(``ui/compare_qa.py``, ``ui/compare_fill_mask.py``, ``ui/compare_generation.py``):
their API functions called directly on tiny models saved under ``HUB_HOME/models``
the way a job saves them, their limits, views, links and the generation stream.
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
                 "generation": register(home, "generation", models["gen_a"], models["gen_b"])}
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
    from ui import compare_qa

    a, b = home["squad"]
    with pytest.raises(gr.Error, match=message) as err:
        compare_qa.api_compare_qa("squad", a, b, question, context)
    assert "xxxx" not in err.value.message


def test_qa_refuses_unknown_models_and_other_kinds(home):
    from ui import compare_qa

    a, _ = home["squad"]
    with pytest.raises(gr.Error, match="Model B is not one of") as err:
        compare_qa.api_compare_qa("squad", a, "../../etc/passwd", QUESTION, CONTEXT)
    assert "passwd" not in err.value.message
    with pytest.raises(gr.Error, match="not qa"):
        compare_qa.api_compare_qa("sst2", a, a, QUESTION, CONTEXT)


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
