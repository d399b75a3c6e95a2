"""Cloze questions from unlabelled text: a transfer set for extractive-QA distillation.

A student distilled on 1,090 questions about 240 contexts learns those contexts,
not reading: what it lacks is *new contexts* with the teacher's answers on them
(a transfer set, Hinton et al. 2015; Lewis et al. 2019 train QA from cloze
questions alone). Unlabelled text is plentiful, questions about it are not, so
we write them by rule, as Lewis et al.'s cloze baseline does:

* a paragraph is split into sentences;
* in a sentence, an *answer candidate* is a year, another number, or a run of
  capitalised words that does not open the sentence;
* the question is the sentence with the candidate replaced by a wh-word
  (``when`` for a year, ``how many`` for a number, ``what`` otherwise) and a
  question mark: ``"The castle was built in 1204 by John."`` becomes ``"The
  castle was built in when by John?"`` with the answer ``1204`` at its offset in
  the paragraph.

The questions are stilted and lexically close to the context, but they are
valid SQuAD questions with a correct answer span, and the teacher's start/end
distributions on them carry its reading of a new context: distill on them with
the default ``alpha`` (gold span and teacher both) or ``--alpha 0``.

>>> detokenize_wikitext("The 1 @,@ 200 @-@ tonne ship ( built in 1904 ) sank .")
'The 1,200-tonne ship (built in 1904) sank.'
>>> [q for q, _, _ in cloze_candidates("In 1904 the ship sailed to Cape Town with 12 guns.")]
['In when the ship sailed to Cape Town with 12 guns?', 'In 1904 the ship sailed to what with 12 guns?', \
'In 1904 the ship sailed to Cape Town with how many guns?']
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from .data import DataError

YEAR = re.compile(r"\b(?:1[0-9]{3}|20[0-9]{2})\b")
NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
NAME = re.compile(r"\b[A-Z][a-z][\w'\-]*(?:\s+(?:of\s+|the\s+|de\s+)?[A-Z][a-z][\w'\-]*)*")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
MIN_SENTENCE_WORDS = 6
MAX_SENTENCE_WORDS = 40  # SQuAD's questions are at most about 40 words; a longer one crowds out the context
MAX_ANSWER_WORDS = 6
LINE_BREAK = re.compile(r"(?:\s*<br\s*/?>\s*)+|\n+", re.IGNORECASE)
CLAUSE_MARK = re.compile(r"[;:()\"]|(?<!\d),(?!\d)")  # not the comma of "12,000"
NOISE_DROP = 0.1  # Lewis et al. 2019's noisy cloze: word dropout 0.1, local shuffle within 3 places
NOISE_WINDOW = 3
NOISE_MIN_WORDS = 4
OPENERS = frozenset("""a an the this that these those it its he his she her they their there we our my you your
in on at by for from with of to as after before during when while since until although though but and or so if
one two three some many most all both each""".split())  # a sentence's first word that is no name


def detokenize_wikitext(line: str) -> str:
    """WikiText's tokenised text back to ordinary prose (``@-@`` joins, no space before punctuation)."""
    s = line.strip()
    s = re.sub(r" @([-,.])@ ", r"\1", s)
    s = re.sub(r" ([.,;:!?)\]'])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    s = s.replace(" n't", "n't").replace("' s ", "'s ")
    return s


def paragraphs(texts: Iterable[str], min_words: int = 40, max_words: int = 250) -> list[str]:
    """The texts that read as prose paragraphs: ``min_words``..``max_words`` words,
    not WikiText headings (`` = Title = ``); WikiText's tokenisation undone (its
    ``<unk>`` placeholders stay: most WikiText-2 paragraphs hold several, and no
    answer candidate contains one). A text with line breaks (newlines, or HTML
    ``<br />`` as in IMDB reviews) is one paragraph a line.

    >>> paragraphs(["one two three<br /><br />four five"], min_words=2)
    ['one two three', 'four five']
    """
    out = []
    for text in (part for text in texts for part in LINE_BREAK.split(text)):
        t = text.strip()
        if not t or t.startswith("="):
            continue
        if "@-@" in t or "@,@" in t or " , " in t or " . " in t:
            t = detokenize_wikitext(t)
        if min_words <= len(t.split()) <= max_words:
            out.append(t)
    return out


def sentence_spans(paragraph: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of a paragraph (split after . ! ? before a capital)."""
    spans, start = [], 0
    for m in SENTENCE_END.finditer(paragraph):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(paragraph)))
    return [(a, b) for a, b in spans if paragraph[a:b].strip()]


def cloze_candidates(sentence: str) -> list[tuple[str, str, int]]:
    """``(question, answer, answer offset in the sentence)`` for each answer candidate
    of one sentence, in sentence order; none for sentences under 6 or over 40 words."""
    return [(verbatim_question(body, a, b, wh), sentence[a:b], a) for body, a, b, wh in _candidate_spans(sentence)]


def verbatim_question(body: str, start: int, end: int, wh: str) -> str:
    """The cloze question as the sentence itself: the answer's span replaced by the wh-word, a question mark."""
    return f"{body[:start]}{wh}{body[end:]}?"


def _candidate_spans(sentence: str) -> list[tuple[str, int, int, str]]:
    """``(body, start, end, wh-word)`` of each answer candidate of one sentence: the
    sentence without its final ``. ! ?`` and the candidate's character span in it."""
    if not MIN_SENTENCE_WORDS <= len(sentence.split()) <= MAX_SENTENCE_WORDS:
        return []
    found: dict[int, tuple[int, str]] = {}
    for m in YEAR.finditer(sentence):
        found[m.start()] = (m.end(), "when")
    for m in NUMBER.finditer(sentence):
        found.setdefault(m.start(), (m.end(), "how many"))
    for m in NAME.finditer(sentence):
        if m.start() > 0 and not any(a <= m.start() < b for a, (b, _) in found.items()):
            found[m.start()] = (m.end(), "what")
    body = sentence.rstrip()
    body = body[:-1].rstrip() if body.endswith((".", "!", "?")) else body
    return [(body, a, b, wh) for a, (b, wh) in sorted(found.items())
            if b <= len(body) and len(sentence[a:b].split()) <= MAX_ANSWER_WORDS]


def noisy_question(body: str, start: int, end: int, wh: str, rng: random.Random, drop: float = NOISE_DROP,
                   window: int = NOISE_WINDOW) -> str:
    """A cloze question in Lewis et al.'s (2019) *noisy* form, nearer SQuAD's short
    wh-first questions than the sentence itself: only the answer's clause (the words
    between the clause marks ``, ; : ( ) "`` around it, widened to the next clauses
    until it has ``NOISE_MIN_WORDS`` words besides the answer, or the whole
    sentence), the answer removed and the wh-word put first, each other word
    dropped with probability ``drop`` (at least ``NOISE_MIN_WORDS`` kept, in order)
    and the rest shuffled within ``window`` places.

    >>> body = "In 1904 the ship sailed to Cape Town with 12 guns"
    >>> noisy_question(body, 27, 36, "what", random.Random(0), drop=0, window=0)
    'What in 1904 the ship sailed to with 12 guns?'
    >>> body = "It rained, and the ship, built by John Brown in Clydebank, sank"
    >>> a = body.index("Clydebank")
    >>> noisy_question(body, a, a + 9, "what", random.Random(0), drop=0, window=0)
    'What built by John Brown in?'
    """
    cuts = [0, *(m.end() for m in CLAUSE_MARK.finditer(body)), len(body)]
    lo = max(i for i, c in enumerate(cuts) if c <= start)
    hi = min(i for i, c in enumerate(cuts) if c >= end)
    def words(a: int, b: int) -> list[str]:
        return [w for w in CLAUSE_MARK.sub(" ", body[a:b]).split() if w]
    while len(words(cuts[lo], start)) + len(words(end, cuts[hi])) < NOISE_MIN_WORDS and (lo > 0 or hi < len(cuts) - 1):
        lo, hi = max(lo - 1, 0), min(hi + 1, len(cuts) - 1)
    left, right = words(cuts[lo], start), words(end, cuts[hi])
    if cuts[lo] == 0 and left and left[0].lower() in OPENERS:
        left[0] = left[0].lower()  # the sentence's own capital ("The ship ...") is not a name mid-question
    kept = [w for w in left + right if rng.random() >= drop]
    if len(kept) < NOISE_MIN_WORDS:
        kept = left + right
    order = sorted(range(len(kept)), key=lambda i: i + rng.uniform(0, window))
    return " ".join([wh[0].upper() + wh[1:], *(kept[i] for i in order)]) + "?"


def cloze_examples(contexts: Sequence[str], per_context: int, seed: int = 42, id_prefix: str = "cloze",
                   title: str = "", noise: float = 0.0) -> list[dict]:
    """Up to ``per_context`` cloze questions about each context, from different
    sentences where it has enough, as flat SQuAD examples (``synthetic: "cloze"``;
    ids ``<id_prefix>-<context>-<k>``, 1-based). Each question, with probability
    ``noise``, in :func:`noisy_question`'s form instead (``synthetic:
    "cloze-noisy"``; the same paragraphs and answers as with ``noise`` 0, which
    draws nothing more). Which questions are noisy takes one draw each, and each
    noisy question's words its own generator (seeded by the seed and its id), so a
    change in how one is rewritten moves no other. Deterministic for a seed."""
    if per_context < 1:
        raise ValueError(f"questions per context must be at least 1, got {per_context}")
    check_noise(noise)
    rng, noise_rng = random.Random(seed), random.Random(f"{seed}-noise")
    out = []
    for c, context in enumerate(contexts, 1):
        by_sentence = []
        for a, b in sentence_spans(context):
            cands = [(verbatim_question(body, x, y, wh), body[x:y], a + x, (body, x, y, wh))
                     for body, x, y, wh in _candidate_spans(context[a:b])]
            if cands:
                by_sentence.append(cands)
        rng.shuffle(by_sentence)
        picked = [rng.choice(cands) for cands in by_sentence[:per_context]]
        while len(picked) < per_context:  # fewer sentences than asked: more candidates of the same ones
            rest = [x for cands in by_sentence for x in cands if x not in picked]
            if not rest:
                break
            picked.append(rng.choice(rest))
        for k, (question, answer, start, spans) in enumerate(picked, 1):
            assert context[start:start + len(answer)] == answer
            qid = f"{id_prefix}-{c}-{k}"
            noisy = noise > 0 and noise_rng.random() < noise  # one draw a question: which ones never shift
            out.append({"id": qid, "title": title, "context": context,  # a question's own words: its own draws
                        "question": noisy_question(*spans, random.Random(f"{seed}-noise-{qid}")) if noisy else question,
                        "answers": {"text": [answer], "answer_start": [start]}, "is_impossible": False,
                        "synthetic": "cloze-noisy" if noisy else "cloze"})
    return out


def check_noise(noise: float) -> None:
    """Refuse a ``--noise`` that is no probability."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"--noise is the share of cloze questions made noisy, 0 to 1; got {noise}")


def negative_examples(originals: Sequence[dict], per_question: int, seed: int = 42) -> list[dict]:
    """Each training question ``per_question`` times with a paragraph of another
    article, marked unanswerable (``synthetic: "negative"``, ids
    ``<id>#negative-<k>``): what a student learns from them is when its teacher
    declines — SQuAD 2.0's "no answer", which questions about their own paragraph
    never show it. The article is drawn at random (seeded), never the question's own
    and, with three articles or more, never the next one, whose paragraphs
    ``calibrate-null`` pairs the question with (so calibration pairs stay unseen);
    the copies of a question take different paragraphs (fewer copies when there are
    not enough). Articles are told apart by title: files with fewer than two titles
    are refused (another paragraph of the same article may hold the answer). Only
    the real questions are copied (not a transfer set's made ones: ``synthetic``
    cloze questions and negatives, ``augmented`` copies), so a job that augments
    first makes N negatives a question, not N a copy, and the articles are those
    ``calibrate-null`` orders.

    >>> ex = [{"id": str(i), "title": t, "context": f"{t}{i}", "question": f"q{i}"}
    ...       for i, t in enumerate("AABBCD")]
    >>> made = negative_examples(ex, 1)
    >>> [(m["id"], m["context"][0] != ex[i]["title"]) for i, m in enumerate(made)][:2]
    [('0#negative-1', True), ('1#negative-1', True)]
    >>> all(m["is_impossible"] and not m["answers"]["text"] for m in made)
    True
    """
    from .null_calibration import articles_of

    if per_question < 1:
        raise ValueError(f"negatives per question must be at least 1, got {per_question}")
    originals = negative_sources(originals)
    keys, articles, article = articles_of(originals)
    rng = random.Random(seed)
    position = {k: i for i, k in enumerate(keys)}
    pools: dict[int, list[str]] = {}  # per article: the paragraphs its questions may be paired with
    out = []
    for ex in originals:
        own = position[article(ex)]
        if own not in pools:
            banned = {own, (own + 1) % len(keys)} if len(keys) >= 3 else {own}
            pools[own] = [p for i, k in enumerate(keys) if i not in banned for p in articles[k]]
        pool = pools[own]
        picked = rng.sample(pool, min(per_question, len(pool)))  # no paragraph twice for one question
        for n, context in enumerate(picked, 1):
            out.append({"id": f"{ex['id']}#negative-{n}", "title": "negatives", "context": context,
                        "question": ex["question"], "answers": {"text": [], "answer_start": []},
                        "is_impossible": True, "synthetic": "negative"})
    return out


def negative_sources(originals: Sequence[dict]) -> list[dict]:
    """The questions :func:`negative_examples` copies: the real ones of ``originals``;
    refused (``DataError``) unless they come from two titled articles at least
    (another paragraph of the same article may hold the answer). A job checks this
    before any training."""
    from .null_calibration import real_questions

    originals = real_questions(originals)
    titles = {ex.get("title") or "" for ex in originals}
    if len(titles) < 2:
        which = (f"all {len(originals):,} come from one article ({next(iter(titles))!r}: take more training questions, "
                 "or a file of several)" if titles - {""} else "they have no titles")
        raise DataError("--negatives pairs a question with another article's paragraph: the training questions "
                        f"must come from two titled articles at least; {which}")
    return originals


def cloze_transfer_set(originals: Sequence[dict], contexts_files: Sequence[str], per_context: int = 2,
                       text_column: str | None = None, max_contexts: int | None = None,
                       seed: int = 42, negatives: int = 0, noise: float = 0.0) -> tuple[list[dict], dict]:
    """The cloze questions of a transfer set and their counts per source: about the
    contexts of ``originals`` (the training questions, flat SQuAD examples), then
    about the paragraphs of each of ``contexts_files`` (``.txt`` one a line,
    ``.jsonl``/``.csv`` with ``text_column``; at most ``max_contexts`` a file); then
    ``negatives`` unanswerable copies of each training question
    (:func:`negative_examples`, counted under ``"negatives"``). ``noise``: the share
    of cloze questions in :func:`noisy_question`'s form (counted as ``"noisy"``)."""
    from .textdata import read_texts

    if max_contexts is not None and max_contexts < 1:
        raise ValueError(f"--max-contexts must be at least 1, got {max_contexts}")
    if negatives < 0:
        raise ValueError(f"--negatives must be 0 or more, got {negatives}")
    check_noise(noise)
    if negatives and not originals:
        raise DataError("--negatives pairs the training questions with other articles: give training questions "
                        "(--data-dir, --train-file or --dataset)")
    made_all, counts = [], {}
    train_contexts = list(dict.fromkeys(ex["context"] for ex in originals))
    if train_contexts:
        made = cloze_examples(train_contexts, per_context, seed, "cloze-train", "training contexts", noise)
        made_all += made
        counts["training contexts"] = {"contexts": len(train_contexts), "questions": len(made), **_noisy(made)}
    for n, name in enumerate(contexts_files, 1):
        texts = paragraphs(read_texts(name, text_column))
        if max_contexts is not None:
            texts = texts[:max_contexts]
        if not texts:
            raise DataError(f"{Path(name).name}: no paragraphs of 40 to 250 words to ask about")
        made = cloze_examples(texts, per_context, seed + n, f"cloze-f{n}", Path(name).name, noise)
        made_all += made
        counts[str(name)] = {"contexts": len(texts), "questions": len(made), **_noisy(made)}
    if negatives:
        made = negative_examples(originals, negatives, seed)
        made_all += made
        counts["negatives"] = {"questions": len(made), "per_question": negatives}
    if not made_all:
        raise DataError("no cloze questions made: give --contexts files, or training data with contexts")
    return made_all, counts


def _noisy(made: list[dict]) -> dict:
    """``{"noisy": N}`` when N of ``made`` are noisy cloze questions, else nothing
    (older summaries stay as they were)."""
    n = sum(ex["synthetic"] == "cloze-noisy" for ex in made)
    return {"noisy": n} if n else {}


def describe_contexts(counts: dict) -> str:
    """``counts`` of :func:`cloze_transfer_set` in words: ``"373 about 215 paragraphs of
    training contexts; 2,588 about 1,419 paragraphs of valid.txt"``."""
    return "; ".join(f"{c.get('questions', 0):,} training questions paired with other articles' paragraphs "
                     "(unanswerable)" if name == "negatives" else
                     f"{c.get('questions', 0):,} about {c.get('contexts', 0):,} paragraphs of {Path(name).name}"
                     + (f" ({c['noisy']:,} noisy)" if c.get("noisy") else "")
                     for name, c in counts.items())


def _summary(originals: int, made: int, per_context: int, seed: int, max_contexts, text_column, counts: dict,
             t0: float, noise: float = 0.0) -> dict:
    import time

    from .hardware import hardware_info

    return {"proposer": "cloze", "originals": originals, "augmented": made, "per_context": per_context,
            "seed": seed, "max_contexts": max_contexts, "text_column": text_column, "contexts": counts,
            **({"noise": noise} if noise else {}), "time_s": round(time.perf_counter() - t0, 2),
            "hardware": hardware_info()}


def cloze_data(data, contexts_files: Sequence[str], per_context: int = 2, text_column: str | None = None,
               max_contexts: int | None = None, seed: int = 42, negatives: int = 0, noise: float = 0.0) -> dict:
    """Loaded QA data (``hub.kinds.qa_data.QAData``) made a cloze transfer set in place:
    its training questions, then :func:`cloze_transfer_set`'s; ``data.source``
    records it (``train_size``, ``augmentation``) as :func:`cloze_file`'s sidecar
    does, so run and model cards describe it. Returns the summary."""
    import time

    t0 = time.perf_counter()
    made, counts = cloze_transfer_set(data.train, contexts_files, per_context, text_column, max_contexts, seed,
                                      negatives, noise)
    summary = _summary(len(data.train), len(made), per_context, seed, max_contexts, text_column, counts, t0, noise)
    data.train = [*data.train, *made]
    data.source = {**data.source, "train_size": len(data.train), "augmentation": {**summary, "source": data.source}}
    return summary


def cloze_file(task, source, contexts_files: Sequence[str], output_file: str, per_context: int = 2,
               text_column: str | None = None, max_contexts: int | None = None, seed: int = 42,
               max_train_samples: int | None = None, overwrite: bool = False, negatives: int = 0,
               noise: float = 0.0) -> dict:
    """Write a SQuAD 2.0 file: the task's training questions when ``source`` names
    any (``None``: none), then cloze questions about their contexts and about the
    paragraphs of ``contexts_files`` (``.txt`` one a line, ``.jsonl``/``.csv`` with
    ``text_column``), then ``negatives`` unanswerable copies of each training
    question; ``noise``: the share of cloze questions made noisy (:func:`noisy_question`).
    Returns a summary, also written beside the file as its
    ``.augment.json`` sidecar (the run card records it)."""
    import json
    import time

    from .augment import training_questions
    from .data import augmentation_sidecar
    from .paths import write_text_atomic
    from .squad import squad_document

    if task.kind != "qa":
        raise ValueError(f"cloze questions are for extractive-QA tasks; task {task.name!r} is {task.kind}")
    out = Path(output_file)
    if out.suffix.lower() != ".json":
        raise ValueError(f"{out.name}: write cloze questions as SQuAD JSON (.json)")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    t0 = time.perf_counter()
    originals, described = ([], None) if source is None else training_questions(task, source, max_train_samples)
    made, counts = cloze_transfer_set(originals, contexts_files, per_context, text_column, max_contexts, seed,
                                      negatives, noise)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = json.dumps(squad_document([*originals, *made], extra=("synthetic",)), ensure_ascii=False)
    summary = {**_summary(len(originals), len(made), per_context, seed, max_contexts, text_column, counts, t0, noise),
               "source": described, "output_file": str(out)}
    augmentation_sidecar(out).write_text(json.dumps(summary, indent=2) + "\n")
    write_text_atomic(out, document)
    return summary
