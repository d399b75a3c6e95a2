"""Cloze questions from unlabelled text (hub/cloze.py): the pure steps, on hand-checked
sentences; the CLI end to end is in test_qa_kind.py (it needs the QA fixtures)."""

from __future__ import annotations

import pytest

from hub.cloze import cloze_candidates, cloze_examples, detokenize_wikitext, paragraphs, sentence_spans

PARAGRAPH = ("The bridge over the river was opened in 1932 by Queen Mary. It carried 40 trains a day. "
             "Its engineer, Ralph Freeman, later designed the Sydney Harbour Bridge. It was painted grey.")


def test_wikitext_is_detokenised_and_headings_and_short_lines_skipped():
    assert detokenize_wikitext("a 3 @.@ 5 @-@ metre wall , built ( c. 1200 ) .") == "a 3.5-metre wall, built (c. 1200)."
    long = "word " * 50
    assert paragraphs([" = Heading = ", "too short .", long + "end @-@ line .", "x " * 300]) == [
        long.strip() + " end-line."]


def test_sentences_split_before_capitals_only():
    spans = sentence_spans(PARAGRAPH)
    assert [PARAGRAPH[a:b] for a, b in spans] == [
        "The bridge over the river was opened in 1932 by Queen Mary.", "It carried 40 trains a day.",
        "Its engineer, Ralph Freeman, later designed the Sydney Harbour Bridge.", "It was painted grey."]


def test_candidates_are_years_numbers_and_names_not_opening_the_sentence():
    assert cloze_candidates("The bridge over the river was opened in 1932 by Queen Mary.") == [
        ("The bridge over the river was opened in when by Queen Mary?", "1932", 40),
        ("The bridge over the river was opened in 1932 by what?", "Queen Mary", 48)]
    assert cloze_candidates("It carried 40 trains a day.") == [("It carried how many trains a day?", "40", 11)]
    assert cloze_candidates("It was painted grey today.") == []  # nothing to ask about
    assert cloze_candidates("Opened in 1932.") == []  # under 6 words


def test_examples_point_at_their_answers_use_different_sentences_and_follow_the_seed():
    examples = cloze_examples([PARAGRAPH, PARAGRAPH.replace("1932", "1933")], per_context=2, seed=3)
    assert [ex["id"] for ex in examples] == ["cloze-1-1", "cloze-1-2", "cloze-2-1", "cloze-2-2"]
    for ex in examples:
        start, text = ex["answers"]["answer_start"][0], ex["answers"]["text"][0]
        assert ex["context"][start:start + len(text)] == text and ex["synthetic"] == "cloze"
        assert not ex["is_impossible"] and ex["question"].endswith("?") and text not in ex["question"]
    first = [ex["question"] for ex in examples[:2]]
    sentences = [next(i for i, (a, b) in enumerate(sentence_spans(PARAGRAPH))
                      if a <= ex["answers"]["answer_start"][0] < b) for ex in examples[:2]]
    assert len(set(sentences)) == 2, first  # two questions from two different sentences
    assert cloze_examples([PARAGRAPH], 2, seed=3) == examples[:2]
    several = {tuple(ex["question"] for ex in cloze_examples([PARAGRAPH], 1, seed=s)) for s in range(20)}
    assert len(several) > 1  # the seed picks among the candidates
    assert len(cloze_examples([PARAGRAPH], per_context=9)) == 5  # every candidate once, no more
    with pytest.raises(ValueError, match="at least 1"):
        cloze_examples([PARAGRAPH], per_context=0)


def test_long_sentences_are_not_asked_about():
    """A question is its sentence: one of 41+ words would crowd the context out of a window."""
    long = "In 1932 " + "the bridge " * 20 + "was opened."
    assert len(long.split()) > 40 and cloze_candidates(long) == []


def test_reviews_with_html_line_breaks_become_paragraphs_and_the_card_repeats_the_command(tmp_path):
    """A ``.jsonl`` of IMDB-style reviews: ``<br />`` breaks split a review into
    paragraphs; ``--max-contexts`` and ``--text-column`` are recorded so the model
    card's command makes the same file."""
    import json

    from hub.cloze import cloze_file
    from hub.reproduce import augmentation_line
    from hub.tasks import TASKS

    part = "The film was made in 1931 by a small studio near the coast. " * 5
    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text("\n".join(json.dumps({"review": r}) for r in [
        f"{part}<br /><br />{part.replace('1931', '1932')}", part.replace("1931", "1933")]) + "\n")
    out = tmp_path / "c.json"
    summary = cloze_file(TASKS["squad"], None, [str(reviews)], str(out), per_context=1, text_column="review",
                         max_contexts=2)
    assert summary["contexts"][str(reviews)] == {"contexts": 2, "questions": 2}  # the review's two paragraphs
    made = json.loads(out.read_text())["data"]
    contexts = [p["context"] for a in made for p in a["paragraphs"]]
    assert all("<br" not in c for c in contexts) and any("1932" in c for c in contexts)
    assert not any("1933" in c for c in contexts)  # the third paragraph is over --max-contexts
    line = augmentation_line(summary, "squad")
    assert ("python -m hub cloze --task squad --contexts reviews.jsonl --per-context 1 --max-contexts 2 "
            "--text-column review --seed 42 --output-file c.json") in line


def _questions(titles: str) -> list[dict]:
    """Two questions a paragraph, two paragraphs an article, one article per letter."""
    return [{"id": f"{t}{p}{q}", "title": t, "context": f"{t} paragraph {p}.", "question": f"Question {t}{p}{q}?",
             "answers": {"text": [t], "answer_start": [0]}, "is_impossible": False}
            for t in titles for p in (1, 2) for q in (1, 2)]


def test_negatives_take_other_articles_never_the_calibration_pairs_and_follow_the_seed():
    """Each question paired with paragraphs of other articles, never its own article nor the
    next one (``calibrate-null``'s pairs); copies of a question take different paragraphs;
    the same seed gives the same file."""
    from hub.cloze import negative_examples
    from hub.null_calibration import unanswerable_pairs

    questions = _questions("ABCDE")
    made = negative_examples(questions, 3, seed=7)
    assert len(made) == 3 * len(questions)
    calibration = {(p["question"], p["context"]) for p in unanswerable_pairs(questions)}
    following = dict(zip("ABCDE", "BCDEA"))
    by_question: dict[str, list[str]] = {}
    for neg in made:
        qid, copy = neg["id"].split("#negative-")
        own = qid[0]
        by_question.setdefault(qid, []).append(neg["context"])
        assert neg["context"][0] not in (own, following[own])
        assert (neg["question"], neg["context"]) not in calibration
        assert neg["is_impossible"] and neg["answers"] == {"text": [], "answer_start": []}
        assert neg["synthetic"] == "negative" and copy in {"1", "2", "3"}
    assert all(len(set(contexts)) == 3 for contexts in by_question.values())
    assert negative_examples(questions, 3, seed=7) == made
    assert negative_examples(questions, 3, seed=8) != made
    # two articles: the other one is the only choice (and the calibration's too)
    two = negative_examples(_questions("AB"), 1)
    assert all(n["context"][0] != n["id"][0] for n in two)
    with pytest.raises(ValueError, match="at least 1"):
        negative_examples(questions, 0)
    from hub.data import DataError
    # more copies asked than paragraphs to draw from: each paragraph once (two here: B's for A's questions)
    few = negative_examples(_questions("AB"), 5)
    assert len(few) == 2 * 8 and all(n["context"][0] != n["id"][0] for n in few)
    assert len({(n["id"].split("#")[0], n["context"]) for n in few}) == len(few)
    # one title: another paragraph of the same article may hold the answer, so no negatives
    with pytest.raises(DataError, match="two titled articles at least; all 4 come from one article .'A': take more"):
        negative_examples(_questions("A"), 1)
    with pytest.raises(DataError, match="two titled articles at least; they have no titles"):
        negative_examples([{**q, "title": ""} for q in _questions("AB")], 1)
    # a transfer set's made questions (cloze, negatives, augmented copies) are not copied: N a real question
    made = [{**q, "id": f"{q['id']}-m", "synthetic": "cloze"} for q in _questions("ABC")] + \
        [{**q, "id": f"{q['id']}-aug0", "augmented": True} for q in _questions("ABC")]
    assert negative_examples(_questions("ABC") + made, 1, seed=3) == negative_examples(_questions("ABC"), 1, seed=3)
    with pytest.raises(DataError, match="two titled articles"):
        negative_examples(_questions("A") + [{**q, "augmented": True} for q in _questions("B")], 1)


def test_a_transfer_set_with_negatives_is_written_read_back_and_its_command_repeated(tmp_path):
    """``cloze --negatives N``: the training questions, the cloze questions, then N
    unanswerable copies of each training question — a SQuAD 2.0 file the QA reader takes,
    counted in the summary, and the model card's command makes it again."""
    import json

    from hub.cloze import cloze_file, cloze_transfer_set
    from hub.data import DataError, DataSource
    from hub.kinds.qa_data import read_examples
    from hub.reproduce import augmentation_line
    from hub.squad import squad_document
    from hub.tasks import TASKS

    train = tmp_path / "train.json"
    train.write_text(json.dumps(squad_document(_questions("ABC"))))
    out = tmp_path / "neg.json"
    summary = cloze_file(TASKS["squad"], DataSource(train_file=str(train)), [], str(out), per_context=1,
                         negatives=2)
    assert summary["contexts"]["negatives"] == {"questions": 24, "per_question": 2}
    back = read_examples(str(out))
    negatives = [ex for ex in back if ex["is_impossible"]]
    assert len(back) == 12 + summary["augmented"] and len(negatives) == 24
    assert [ex["id"] for ex in back[:12]] == [q["id"] for q in _questions("ABC")]
    assert all(not ex["answers"]["text"] for ex in negatives)
    line = augmentation_line(summary, "squad")
    assert "--negatives 2" in line and "24 training questions paired with other articles' paragraphs" in line
    with pytest.raises(DataError, match="give training questions"):
        cloze_transfer_set([], [str(train)], negatives=1)
    with pytest.raises(ValueError, match="0 or more"):
        cloze_transfer_set(_questions("AB"), [], negatives=-1)


def test_noisy_questions_keep_the_answers_clause_wh_first_without_the_answer():
    """Lewis et al.'s noisy cloze: the answer's clause only (widened while it is too
    short), the wh-word first, the answer gone, the sentence's own capital lowered;
    with dropout and shuffling the words are the clause's, fewer, in another order."""
    import random

    from hub.cloze import NOISE_MIN_WORDS, noisy_question

    body = "Its engineer, Ralph Freeman, later designed the Sydney Harbour Bridge in 1932"
    a = body.index("1932")
    clean = noisy_question(body, a, a + 4, "when", random.Random(0), drop=0, window=0)
    assert clean == "When later designed the Sydney Harbour Bridge in?"  # one clause: the commas cut it
    a = body.index("Ralph Freeman")
    # "Ralph Freeman" alone is its clause: widened to the neighbours until 4 words besides it
    assert noisy_question(body, a, a + 13, "what", random.Random(0), drop=0, window=0) == \
        "What its engineer later designed the Sydney Harbour Bridge in 1932?"
    a = body.index("Sydney Harbour Bridge")
    words = "later designed the in 1932".split()
    for seed in range(30):
        q = noisy_question(body, a, a + 21, "what", random.Random(seed))
        assert q.startswith("What ") and q.endswith("?") and "Sydney" not in q
        got = q[5:-1].split()
        assert set(got) <= set(words) and len(got) >= NOISE_MIN_WORDS
    shuffled = {noisy_question(body, a, a + 21, "what", random.Random(s), drop=0) for s in range(30)}
    assert len(shuffled) > 1 and all(sorted(q[5:-1].split()) == sorted(words) for q in shuffled)
    dropped = [noisy_question(body, a, a + 21, "what", random.Random(s), drop=0.5, window=0) for s in range(30)]
    assert any(len(q.split()) < 6 for q in dropped)
    # the comma of a number is no clause mark; "I" opening the sentence stays a capital
    body = "In 1904 the city had 12,000 people and a new harbour"
    assert noisy_question(body, 3, 7, "when", random.Random(0), drop=0, window=0) == \
        "When in the city had 12,000 people and a new harbour?"
    body = "I saw it in 1999 with Anna"
    a = body.index("Anna")
    assert noisy_question(body, a, a + 4, "what", random.Random(0), drop=0, window=0) == "What I saw it in 1999 with?"


def test_which_questions_are_noisy_does_not_follow_how_they_are_rewritten(monkeypatch):
    """One draw a question decides; the rewriting draws from a generator of its own, so
    a rewrite that draws more or fewer numbers changes no other question."""
    import hub.cloze

    contexts = [PARAGRAPH.replace("1932", str(1900 + i)) for i in range(50)]
    before = hub.cloze.cloze_examples(contexts, 2, seed=5, noise=0.5)

    def greedy(body, start, end, wh, rng):
        return f"{wh} {rng.random()} {rng.random()}?"
    monkeypatch.setattr(hub.cloze, "noisy_question", greedy)
    after = hub.cloze.cloze_examples(contexts, 2, seed=5, noise=0.5)
    assert [e["synthetic"] for e in after] == [e["synthetic"] for e in before]
    assert [e["question"] for e in after if e["synthetic"] == "cloze"] == [
        e["question"] for e in before if e["synthetic"] == "cloze"]


def test_noise_rewrites_a_share_of_the_questions_and_nothing_else(tmp_path):
    """``--noise P``: the same paragraphs, answers and ids as without it, about P of the
    questions in the noisy form (``synthetic: "cloze-noisy"``), counted in the summary and
    repeated by the model card's command; 0 writes exactly the old questions; P outside
    0..1 is refused."""
    from hub.cloze import cloze_examples, cloze_file, cloze_transfer_set
    from hub.reproduce import augmentation_line
    from hub.tasks import TASKS

    # the questions as they were before --noise existed (the file of an older command is made again)
    assert [e["question"] for e in cloze_examples([PARAGRAPH, PARAGRAPH.replace("1932", "1933")], 2, seed=3)] == [
        "It carried how many trains a day?", "Its engineer, Ralph Freeman, later designed the what?",
        "It carried how many trains a day?", "The bridge over the river was opened in 1933 by what?"]
    contexts = [PARAGRAPH.replace("1932", str(1900 + i)) for i in range(200)]
    plain = cloze_examples(contexts, 2, seed=5)
    assert cloze_examples(contexts, 2, seed=5, noise=0.0) == plain
    noisy = cloze_examples(contexts, 2, seed=5, noise=0.5)
    assert [(e["id"], e["context"], e["answers"]) for e in noisy] == [
        (e["id"], e["context"], e["answers"]) for e in plain]
    changed = [n for n, e in zip(noisy, plain) if n["question"] != e["question"]]
    assert all(n["synthetic"] == "cloze-noisy" for n in changed)
    assert all(n == e for n, e in zip(noisy, plain) if n["synthetic"] == "cloze")
    assert 150 < len(changed) < 250  # about half of 400
    assert all(e["synthetic"] == "cloze-noisy" for e in cloze_examples(contexts[:5], 2, seed=5, noise=1.0))
    text = tmp_path / "paras.txt"
    text.write_text("\n".join(f"{c} {c}" for c in contexts[:20]) + "\n")  # 40 words at least
    summary = cloze_file(TASKS["squad"], None, [str(text)], str(tmp_path / "c.json"), per_context=2, noise=0.5)
    counts = summary["contexts"][str(text)]
    assert summary["noise"] == 0.5 and 0 < counts["noisy"] < counts["questions"] == 40
    line = augmentation_line(summary, "squad")
    assert "--noise 0.5" in line and f"({counts['noisy']} noisy)" in line
    assert "noise" not in cloze_file(TASKS["squad"], None, [str(text)], str(tmp_path / "d.json"))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="0 to 1"):
            cloze_transfer_set([], [str(text)], noise=bad)


def test_doctests():
    import doctest

    import hub.cloze

    result = doctest.testmod(hub.cloze)
    assert result.failed == 0 and result.attempted >= 7
