"""Plain-text corpora for language modelling, shared by masked-LM and causal-LM tasks.

Three steps, each a pure function:

* :func:`read_texts` — documents from a ``.txt`` (one a line), ``.jsonl``/``.json``
  or ``.csv`` file, with :class:`hub.data.DataError` naming the file, column and
  rows at fault;
* :func:`pack_blocks` — tokenize, join documents with an end-of-text token and
  cut the stream into full blocks (GPT-2's / nanoGPT's packing; no padding);
* :func:`mask_tokens` — BERT's masking of a batch of blocks for masked-LM,
  reproducible from a seed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import DataError

TEXT_SUFFIXES = (".txt", ".jsonl", ".json", ".csv")
DEFAULT_TEXT_COLUMN = "text"
TOKENIZE_CHUNK = 1000  # documents per call of the (Rust, batched) fast tokenizer


def read_texts(path: str | Path, text_column: str | None = None) -> list[str]:
    """The documents of a corpus file, in file order, blank ones skipped.

    * ``.txt``: one document (paragraph) a line, stripped; ``text_column`` is
      not used (a text file has no columns).
    * ``.jsonl``/``.json``: one JSON object a line (a ``.json`` holding one array
      of objects is read too); the text is in ``text_column`` (default ``"text"``).
    * ``.csv``: a header row; the text is in ``text_column`` (default ``"text"``).

    Texts are stripped; empty or whitespace-only ones are skipped (WikiText and
    many dumps separate paragraphs with blank rows). Rows in messages are file
    line numbers (JSON lines, CSV) or item numbers (JSON array). Raises DataError for a
    missing file, an unsupported type, an empty file, a missing column, rows
    whose text is not a string, or a file with no text at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DataError(f"{path.name}: unsupported file type {suffix!r}; use one of {', '.join(TEXT_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name} is not UTF-8 text (byte {exc.start})") from exc
    if suffix == ".txt":
        texts = [line.strip() for line in content.split("\n")]
    else:
        column = text_column or DEFAULT_TEXT_COLUMN
        rows = _csv_rows(path.name, content) if suffix == ".csv" else _json_rows(path.name, content)
        texts = _column(path.name, rows, column)
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"{path.name} holds no text (every row is blank)")
    return texts


def _json_rows(name: str, content: str) -> list[tuple[int, object]]:
    """(line or item number, parsed object) pairs; blank lines skipped."""
    if content.lstrip().startswith("["):  # a .json array of objects
        try:
            items = json.loads(content)
        except ValueError as exc:
            raise DataError(f"{name}: invalid JSON: {exc}") from exc
        return list(enumerate(items, start=1))
    rows = []
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except ValueError as exc:
            raise DataError(f"{name}: line {number} is not valid JSON ({exc})") from exc
    return rows


def _csv_rows(name: str, content: str) -> list[tuple[int, object]]:
    """(line where the record starts, dict) pairs; line 1 is the header. Quoted
    fields may span lines."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents exceed the 128 kB default
    reader = csv.DictReader(io.StringIO(content, newline=""))
    rows, start = [], 2
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{name}: could not read CSV near line {reader.line_num}: {exc}") from exc
    if reader.fieldnames is None:
        raise DataError(f"{name} has no header row")
    return rows


def _column(name: str, rows: list[tuple[int, object]], column: str) -> list[str]:
    if not rows:
        raise DataError(f"{name} has no rows")
    not_objects = [n for n, row in rows if not isinstance(row, dict)]
    if not_objects:
        raise DataError(f"{name}: rows {not_objects[:10]} are not objects with a {column!r} field")
    missing = [n for n, row in rows if column not in row]
    if missing:
        found = sorted({k for _, row in rows for k in row if k is not None})
        raise DataError(
            f"{name}: no column {column!r} in {len(missing)} row(s) {missing[:10]}; found {found}. "
            "Set the text column to the right name."
        )
    not_strings = [n for n, row in rows if not isinstance(row[column], str)]
    if not_strings:
        raise DataError(f"{name}: column {column!r} is not text in {len(not_strings)} row(s) {not_strings[:10]}")
    return [row[column].strip() for _, row in rows]


@dataclass
class Packed:
    """Token blocks for language modelling.

    blocks: full blocks of ``block_size`` token ids (the stream's tail that fills
    no block is dropped); n_tokens: tokens in the stream, separators included (the
    corpus size when ``complete``); n_documents: documents tokenized; complete:
    False when ``max_blocks`` stopped tokenizing before the end of the corpus.
    """

    blocks: list[list[int]]
    n_tokens: int
    n_documents: int
    complete: bool = True

    @property
    def n_block_tokens(self) -> int:
        return len(self.blocks) * (len(self.blocks[0]) if self.blocks else 0)


def separator_id(tokenizer) -> int:
    """The token that ends a document: EOS, or SEP for BERT tokenizers (which have no EOS)."""
    for token_id in (tokenizer.eos_token_id, tokenizer.sep_token_id):
        if token_id is not None:
            return int(token_id)
    raise ValueError(f"{type(tokenizer).__name__} has neither an EOS nor a SEP token to separate documents")


def pack_blocks(tokenizer, texts: list[str], block_size: int, add_eos: bool = True,
                max_blocks: int | None = None) -> Packed:
    """Concatenate the documents into one token stream and cut it into blocks.

    Each document is tokenized without special tokens (batched, fast tokenizer)
    and, with ``add_eos``, followed by EOS (SEP for BERT tokenizers), so a block
    may span a document boundary and the model sees where documents end.
    ``max_blocks`` stops once that many blocks exist (then only the documents
    read so far are counted). Raises DataError when the corpus fills no block.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if max_blocks is not None and max_blocks < 1:
        raise ValueError(f"max_blocks must be >= 1 or None, got {max_blocks}")
    sep = separator_id(tokenizer) if add_eos else None
    stream: list[int] = []
    blocks: list[list[int]] = []
    n_tokens = n_documents = start = 0
    complete = True
    for first in range(0, len(texts), TOKENIZE_CHUNK):
        chunk = texts[first:first + TOKENIZE_CHUNK]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            stream.extend(ids)
            if sep is not None:
                stream.append(sep)
            n_tokens += len(ids) + (sep is not None)
            n_documents += 1
        while len(stream) - start >= block_size:
            blocks.append(stream[start:start + block_size])
            start += block_size
        del stream[:start]  # keep only the tail that fills no block yet
        start = 0
        if max_blocks is not None and len(blocks) >= max_blocks:
            complete = n_documents == len(texts)
            blocks = blocks[:max_blocks]
            break
    if not blocks:
        raise DataError(f"the corpus has {n_tokens} tokens, fewer than one block of {block_size}")
    return Packed(blocks=blocks, n_tokens=n_tokens, n_documents=n_documents, complete=complete)


def mask_tokens(input_ids: torch.Tensor, tokenizer, probability: float = 0.15, seed: int = 0,
                special_tokens_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masked-LM corruption of a batch, deterministic given ``seed``.

    input_ids: (B, L) LongTensor (not modified). Each non-special token is chosen
    with ``probability``; a chosen token becomes [MASK] 80% of the time, a random
    token 10%, and stays as is 10% (BERT, Devlin et al. 2019; HF's
    ``DataCollatorForLanguageModeling``). Special tokens ([CLS], [SEP], [PAD], ...:
    ``special_tokens_mask`` (B, L) bool, else every id in
    ``tokenizer.all_special_ids``) are never chosen. Unlike HF's collator, random
    replacements are drawn from the non-special ids only, so no [PAD]/[CLS] is
    inserted in the middle of a text. Vary ``seed`` per batch and epoch to get
    fresh masks.

    Returns (masked_ids (B, L), labels (B, L)): labels hold the original id at
    chosen positions and -100 (ignored by the loss) elsewhere.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"{type(tokenizer).__name__} has no mask token; masked-LM needs one")
    special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=input_ids.dtype)
    if special_tokens_mask is None:
        special = torch.isin(input_ids, special_ids)
    else:
        if special_tokens_mask.shape != input_ids.shape:
            raise ValueError(f"special_tokens_mask {tuple(special_tokens_mask.shape)} != input_ids {tuple(input_ids.shape)}")
        special = special_tokens_mask.bool()
    vocab = torch.arange(len(tokenizer), dtype=input_ids.dtype)
    candidates = vocab[~torch.isin(vocab, special_ids)]  # ids a random replacement may take

    g = torch.Generator().manual_seed(seed)
    ids = input_ids.cpu()
    chosen = torch.bernoulli(torch.full(ids.shape, probability), generator=g).bool() & ~special.cpu()
    to_mask = torch.bernoulli(torch.full(ids.shape, 0.8), generator=g).bool() & chosen
    to_random = torch.bernoulli(torch.full(ids.shape, 0.5), generator=g).bool() & chosen & ~to_mask
    random_ids = candidates[torch.randint(len(candidates), ids.shape, generator=g)]

    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    masked = ids.clone()
    masked[to_mask] = tokenizer.mask_token_id
    masked[to_random] = random_ids[to_random]
    return masked.to(input_ids.device), labels.to(input_ids.device)
