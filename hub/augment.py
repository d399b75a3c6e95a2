"""TinyBERT's data augmentation: more task examples from word replacements a masked LM proposes.

Each alphabetic word of an example that is not a stop word is a position. The
masked LM reads the example with that word replaced by one mask token (the
whole word, however many word pieces it has) and proposes its top-K whole-word
tokens. An augmented copy replaces each position, with probability ``p``, by one
of its candidates at random; ``N`` copies are drawn and the distinct ones that
differ from the original are kept (TinyBERT, Jiao et al. 2020, §3.1: N = 20,
p = 0.4, K = 15). TinyBERT proposes single-piece words with BERT and multi-piece
words with GloVe neighbours; there is no GloVe offline, and one mask for the
whole word lets the masked LM propose for both.

An augmented example keeps its original's label, but a replacement can change
the meaning (one sentiment word for its opposite): TinyBERT learns augmented data
from the teacher's soft labels only, i.e. ``distill --alpha 0``.

Extractive QA augments the *question* the same way (wh-words are stop words and
stay); the context and the answer spans are the original's, so a copy is a valid
SQuAD question whose gold span may no longer answer it: the teacher's start/end
distributions are what the student learns from it (``--alpha 0`` again).
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

WORD = re.compile(r"[A-Za-z]+")
# NLTK's English stop-word list (the words TinyBERT's augmentation leaves alone), apostrophe forms dropped
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers herself it
its itself they them their theirs themselves what which who whom this that these those am is are was were be been
being have has had having do does did doing a an the and but if or because as until while of at by for with about
against between into through during before after above below to from up down in out on off over under again further
then once here there when where why how all any both each few more most other some such no nor not only own same so
than too very s t can will just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma
mightn mustn needn shan shouldn wasn weren won wouldn
""".split())


@dataclass(frozen=True)
class AugmentConfig:
    per_example: int = 20  # N: augmented copies drawn per example (duplicates dropped)
    replace_prob: float = 0.4  # p: chance that a position is replaced in a copy
    candidates: int = 15  # K: masked-LM proposals kept per position
    max_length: int = 128  # tokens the masked LM reads around each masked word
    batch_size: int = 32
    seed: int = 42

    def check(self) -> None:
        if not 1 <= self.per_example <= 200:
            raise ValueError(f"--per-example must be between 1 and 200, got {self.per_example}")
        if not 0.0 < self.replace_prob <= 1.0:
            raise ValueError(f"--replace-prob must be in (0, 1], got {self.replace_prob}")
        if not 1 <= self.candidates <= 100:
            raise ValueError(f"--candidates must be between 1 and 100, got {self.candidates}")
        if not 8 <= self.max_length <= 512:
            raise ValueError(f"--max-length must be between 8 and 512, got {self.max_length}")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be positive, got {self.batch_size}")


def positions(text: str) -> list[tuple[int, int]]:
    """Character spans of the words that may be replaced: alphabetic, not stop words."""
    return [m.span() for m in WORD.finditer(text) if m.group().lower() not in STOP_WORDS]


def _masked_ids(tokenizer, text: str, span: tuple[int, int], max_length: int,
                specials: tuple[list[int], list[int]] | None = None) -> list[int] | None:
    """Token ids of ``text`` with the word at ``span`` replaced by one mask token, cut to a
    window of ``max_length`` tokens around the mask (None when the mask did not survive).
    ``specials``: :func:`_specials` of the tokenizer, computed once by the caller."""
    masked = text[: span[0]] + tokenizer.mask_token + text[span[1]:]
    ids = tokenizer(masked, add_special_tokens=False)["input_ids"]
    if tokenizer.mask_token_id not in ids:
        return None
    head, tail = specials or _specials(tokenizer)
    at = ids.index(tokenizer.mask_token_id)
    room = max_length - len(head) - len(tail)
    lo = max(0, min(at - room // 2, len(ids) - room))
    return head + ids[lo: lo + room] + tail


def _specials(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS] / [SEP] for BERT)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i: i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    return [], []


def _whole_words(tokenizer) -> list[str | None]:
    """Each vocabulary entry as the whole alphabetic word it stands for, else None (word-piece
    continuations, special tokens, punctuation). WordPiece marks continuations (``##ing``);
    byte-level BPE and SentencePiece mark word starts (``Ġgood``, ``▁good``) instead."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    special = set(tokenizer.all_special_ids)
    starts = sum(1 for tok in vocab if tok and tok[0] in "Ġ▁") > len(vocab) // 10
    words: list[str | None] = []
    for i, tok in enumerate(vocab):
        if starts:
            word = tok[1:] if tok and tok[0] in "Ġ▁" else ""
        else:
            word = tok or ""
        words.append(word if i not in special and word.isascii() and word.isalpha() else None)
    return words


def _cased(word: str, like: str) -> str:
    """``word`` in the case pattern of ``like`` (an uncased model proposes lower case)."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[0].isupper():
        return word[:1].upper() + word[1:]
    return word


@torch.no_grad()
def candidate_words(model, tokenizer, texts: list[str], cfg: AugmentConfig,
                    progress: Callable[[int, int], None] | None = None) -> list[dict[tuple[int, int], list[str]]]:
    """For each text, ``{span: [up to K replacement words]}`` proposed by the masked LM."""
    if tokenizer.mask_token is None:
        raise ValueError("the masked LM's tokenizer has no mask token")
    words_of = _whole_words(tokenizer)
    allowed = torch.tensor([w is not None for w in words_of])
    jobs = []  # (text index, span, token ids)
    specials = _specials(tokenizer)
    for t, text in enumerate(texts):
        for span in positions(text):
            ids = _masked_ids(tokenizer, text, span, cfg.max_length, specials)
            if ids is not None:
                jobs.append((t, span, ids))
    jobs.sort(key=lambda j: len(j[2]))  # similar lengths share a batch: little padding
    out: list[dict] = [{} for _ in texts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.eval()
    for b in range(0, len(jobs), cfg.batch_size):
        batch = jobs[b: b + cfg.batch_size]
        width = max(len(ids) for _, _, ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, (_, _, ids) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        logits = model(input_ids=input_ids, attention_mask=attention).logits  # (B, L, V)
        at = (input_ids == tokenizer.mask_token_id).int().argmax(dim=1)
        scores = logits[torch.arange(len(batch)), at].float()  # (B, V)
        scores[:, ~allowed[: scores.shape[1]]] = float("-inf")
        top = scores.topk(cfg.candidates + 1, dim=1).indices  # +1: the word itself may be among them
        for (t, span, _), row in zip(batch, top.tolist()):
            word = texts[t][span[0]: span[1]]
            words = [words_of[i] for i in row if words_of[i].lower() != word.lower()]
            if words:
                out[t][span] = [_cased(w, word) for w in words[: cfg.candidates]]
        if progress:
            progress(min(b + cfg.batch_size, len(jobs)), len(jobs))
    return out


def augment_text(text: str, candidates: dict[tuple[int, int], list[str]], cfg: AugmentConfig,
                 rng: random.Random) -> list[str]:
    """Up to ``cfg.per_example`` distinct copies of ``text``, none equal to it."""
    spans = sorted(candidates)
    seen, copies = {text}, []
    for _ in range(cfg.per_example):
        pieces, last = [], 0
        for span in spans:
            if rng.random() < cfg.replace_prob:
                pieces += [text[last: span[0]], rng.choice(candidates[span])]
                last = span[1]
        new = "".join(pieces) + text[last:]
        if new not in seen:
            seen.add(new)
            copies.append(new)
    return copies


@torch.no_grad()
def neighbour_words(embeddings: torch.Tensor, tokenizer, texts: list[str], cfg: AugmentConfig,
                    progress: Callable[[int, int], None] | None = None) -> list[dict[tuple[int, int], list[str]]]:
    """For each text, ``{span: [up to K words]}``: the nearest whole words to the word in the
    input-embedding space of a model (cosine), TinyBERT's GloVe proposals with the model's own
    vectors. Only words that are one vocabulary entry have a vector; the others are left alone."""
    words_of = _whole_words(tokenizer)[: embeddings.shape[0]]
    words_of += [None] * (embeddings.shape[0] - len(words_of))  # padded embedding rows
    allowed = torch.tensor([w is not None for w in words_of])
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)  # (V, H)
    found: dict[str, list[str]] = {}
    out: list[dict] = [{} for _ in texts]
    for t, text in enumerate(texts):
        for span in positions(text):
            word = text[span[0]: span[1]]
            if word not in found:
                ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
                if len(ids) != 1 or ids[0] >= unit.shape[0] or words_of[ids[0]] is None:
                    found[word] = []  # several pieces: no vector of its own
                else:
                    scores = unit @ unit[ids[0]]  # (V,)
                    scores[~allowed] = float("-inf")
                    scores[ids[0]] = float("-inf")
                    found[word] = [words_of[i] for i in scores.topk(cfg.candidates + 1).indices.tolist()
                                   if words_of[i].lower() != word.lower()][: cfg.candidates]
            if found[word]:
                out[t][span] = [_cased(w, word) for w in found[word]]
        if progress and ((t + 1) % 1000 == 0 or t + 1 == len(texts)):
            progress(t + 1, len(texts))
    return out


PROPOSERS = ("mlm", "embeddings")


def load_proposer(kind: str, ref: str) -> Callable:
    """``propose(texts, cfg, progress)`` of a proposer kind: ``mlm`` (a masked LM with a
    trained head, contextual) or ``embeddings`` (nearest words in any model's input
    embeddings, e.g. the teacher's)."""
    from .models import UntrainedHeadError, load_model, load_tokenizer
    from .tasks import get_task

    if kind == "mlm":
        model, trained = load_model(ref, get_task("mlm"))
        if not trained:
            raise UntrainedHeadError(
                f"{ref} has no trained masked-LM head, so its proposals would be random words: train one with "
                "`python -m hub finetune --task mlm --model ...`, pass a *ForMaskedLM checkpoint, or propose "
                "words from input embeddings (--embeddings)")
        tokenizer = load_tokenizer(ref)
        return lambda texts, cfg, progress=None: candidate_words(model, tokenizer, texts, cfg, progress)
    if kind == "embeddings":
        from transformers import AutoModel

        from .models import resolve_model_ref

        embeddings = AutoModel.from_pretrained(resolve_model_ref(ref), use_safetensors=True) \
            .get_input_embeddings().weight.detach()
        tokenizer = load_tokenizer(ref)
        return lambda texts, cfg, progress=None: neighbour_words(embeddings, tokenizer, texts, cfg, progress)
    raise ValueError(f"unknown proposer {kind!r}; one of {', '.join(PROPOSERS)}")


def _training_frame(task, source, max_train_samples: int | None):
    """The task's training table (all its columns, labels as written) and a description of it."""
    from .data import DataError, _hub_frames, read_table

    source.check()
    if source.dataset:
        df, _, described = _hub_frames(task, source.dataset, source.dataset_config, True)
    else:
        path, _ = source.files(task, need_eval=False)
        df = read_table(path)
        described = {"kind": "files", "train_file": path}
    if max_train_samples is not None:
        df = df.iloc[: max(int(max_train_samples), 0)]
    if len(df) == 0:
        raise DataError("no training examples left (check --max-train-samples)")
    return df, described


def training_questions(task, source, max_train_samples: int | None) -> tuple[list[dict], dict]:
    """The task's training questions (flat SQuAD examples) and a description of them."""
    from .data import DataError
    from .kinds.qa_data import _hub_examples, check_source, read_examples

    check_source(source)
    if source.dataset:
        examples, _, described = _hub_examples(task, source.dataset, source.dataset_config, True)
    else:
        path, _ = source.files(task, need_eval=False)
        examples, described = read_examples(path), {"kind": "files", "train_file": path}
    if max_train_samples is not None:
        examples = examples[: max(int(max_train_samples), 0)]
    if not examples:
        raise DataError("no training questions left (check --max-train-samples)")
    return examples, described


def check_task(task) -> None:
    """Augmentation rewrites one text per example and keeps its target: the sentence of a
    text-classification example, the question of an extractive-QA one."""
    from .config import AUGMENT_KINDS

    if task.kind not in AUGMENT_KINDS:
        raise ValueError(f"augmentation is built for {' and '.join(AUGMENT_KINDS)} tasks; "
                         f"task {task.name!r} is {task.kind}")


def propose_copies(texts: list[str], proposer: tuple[str, str], cfg: AugmentConfig,
                   progress: Callable[[str], None] | None = None) -> tuple[list[list[str]], dict]:
    """Up to ``cfg.per_example`` distinct copies of each text (words replaced by the
    proposer's candidates) and a summary of the run."""
    from .hardware import hardware_info

    propose = load_proposer(*proposer)
    t0 = time.perf_counter()
    last = [0.0]

    def tick(done: int, total: int) -> None:
        if progress and (time.perf_counter() - last[0] > 10 or done == total):
            last[0] = time.perf_counter()
            progress(f"[augment] {proposer[0]} proposals {done}/{total} {done / max(last[0] - t0, 1e-9):.0f}/s")

    cands = propose(texts, cfg, tick)
    rng = random.Random(cfg.seed)
    copies = [augment_text(text, c, cfg, rng) for text, c in zip(texts, cands)]
    return copies, {
        "proposer": proposer[0],
        "model": proposer[1],
        "config": asdict(cfg),
        "originals": len(texts),
        "augmented": sum(len(c) for c in copies),
        "positions": sum(len(c) for c in cands),
        "time_s": round(time.perf_counter() - t0, 2),
        "hardware": hardware_info(),
    }


def augment_examples(texts: list[str], labels: list, proposer: tuple[str, str], cfg: AugmentConfig,
                     progress: Callable[[str], None] | None = None) -> tuple[list[tuple], dict]:
    """Classification: the examples, then their copies: rows ``(text, label, source_row,
    augmented)`` (``source_row`` 1-based, ``augmented`` 0 or 1), and a summary of the run."""
    copies, summary = propose_copies(texts, proposer, cfg, progress)
    rows = [(text, label, i + 1, 0) for i, (text, label) in enumerate(zip(texts, labels))]
    for i, (label, new) in enumerate(zip(labels, copies)):
        rows += [(text, label, i + 1, 1) for text in new]
    return rows, summary


def augment_questions(examples: list[dict], proposer: tuple[str, str], cfg: AugmentConfig,
                      progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Extractive QA: each question (flat SQuAD example) followed by its copies, in which
    words *of the question* are replaced; context and answer spans are the original's
    (a copy's id is ``<id>-aug<k>``, with ``source_id`` and ``augmented: True``). A
    replaced word can change what is asked, so the copies are for soft labels (alpha 0)."""
    copies, summary = propose_copies([ex["question"] for ex in examples], proposer, cfg, progress)
    out = []
    for ex, new in zip(examples, copies):
        out.append(ex)
        out += [{**ex, "id": f"{ex['id']}-aug{k}", "question": q, "source_id": ex["id"], "augmented": True}
                for k, q in enumerate(new, 1)]
    return out, summary


def augment_data(task, data, proposer: tuple[str, str], cfg: AugmentConfig,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Augment loaded training data in place (a ``ClassificationData`` or a ``QAData``):
    the originals, then their copies; ``data.source`` records the run (train_size,
    augmentation). Returns the summary."""
    check_task(task)
    if task.kind == "qa":
        data.train, summary = augment_questions(data.train, proposer, cfg, progress)
        size = len(data.train)
    else:
        rows, summary = augment_examples(data.train_texts, data.train_labels, proposer, cfg, progress)
        data.train_texts, data.train_labels = [r[0] for r in rows], [r[1] for r in rows]
        size = len(rows)
    data.source = {**data.source, "train_size": size, "augmentation": {**summary, "source": data.source}}
    return summary


def augment_file(task, source, proposer: tuple[str, str], output_file: str, cfg: AugmentConfig = AugmentConfig(),
                 max_train_samples: int | None = None, overwrite: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict:
    """Write the task's training examples followed by their augmented copies to
    ``output_file`` and return the summary also written beside it
    (:func:`hub.data.augmentation_sidecar`). Classification: TSV, CSV or JSON lines (by
    extension) with a ``source_row`` column (1-based row of the original) and
    ``augmented`` (0 or 1). Extractive QA: a SQuAD 2.0 JSON file, each question followed
    by its copies (``source_id``, ``augmented`` on each copy)."""
    from .data import DataError, _columns, augmentation_sidecar

    cfg.check()
    check_task(task)
    out = Path(output_file)
    suffixes = (".json",) if task.kind == "qa" else (".tsv", ".csv", ".jsonl")
    if out.suffix.lower() not in suffixes:
        allowed = ", ".join(suffixes[:-1]) + " or " * (len(suffixes) > 1) + suffixes[-1]
        raise ValueError(f"{out.name}: write augmented {task.kind} data as {allowed}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".partial")  # a run killed while writing leaves no half file under the name
    if task.kind == "qa":
        from .squad import squad_document

        examples, described = training_questions(task, source, max_train_samples)
        augmented, summary = augment_questions(examples, proposer, cfg, progress)
        part.write_text(json.dumps(squad_document(augmented, extra=("source_id", "augmented")), ensure_ascii=False))
    else:
        text_column = source.text_column or task.text_column
        label_column = source.label_column or task.label_column
        df, described = _training_frame(task, source, max_train_samples)
        texts, labels = _columns(df, described.get("train_file", "train"), text_column, label_column)
        rows, summary = augment_examples(texts, labels, proposer, cfg, progress)
        import pandas as pd

        frame = pd.DataFrame(rows, columns=[text_column, label_column, "source_row", "augmented"])
        if out.suffix.lower() == ".tsv":
            if frame[text_column].str.contains("[\t\n\r]").any():
                raise DataError(f"{out.name}: a text holds a tab or line break, which TSV cannot keep; write .jsonl")
            frame.to_csv(part, sep="\t", index=False, quoting=csv.QUOTE_NONE)
        elif out.suffix.lower() == ".csv":
            frame.to_csv(part, index=False)
        else:
            frame.to_json(part, orient="records", lines=True, force_ascii=False)
    summary.update(source=described, output_file=str(out))
    augmentation_sidecar(out).write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(part, out)
    return summary
