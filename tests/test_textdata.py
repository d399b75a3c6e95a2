"""hub.textdata: reading corpora, packing token blocks, BERT masking."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_tokenizer
from hub.data import DataError
from hub.textdata import Packed, mask_tokens, pack_blocks, read_texts

WORDS = "the a cat dog sat ran on under mat log and then it was big small red blue".split()


def word_tokenizer(words=WORDS):
    """A GPT-style word-level fast tokenizer built in memory: <pad>, <unk>, <eos>, <mask> + words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>", "<mask>"] + list(words))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>",
                                   eos_token="<eos>", mask_token="<mask>")


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer()


@pytest.fixture(scope="module")
def bert_tok(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("bert_tok"))


# ---- read_texts -------------------------------------------------------------------------------

def test_read_txt_skips_blank_lines(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text(" = Title = \r\n\n  first paragraph here \n   \nsecond\u2028half\n")
    assert read_texts(f) == ["= Title =", "first paragraph here", "second\u2028half"]  # only \n ends a line


def test_read_jsonl_csv_and_json_array(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n\n{"text": "two", "label": 1}\n{"text": "  "}\n')
    assert read_texts(tmp_path / "a.jsonl") == ["one", "two"]
    (tmp_path / "b.jsonl").write_text('{"body": "x"}\n{"body": "y"}\n')
    assert read_texts(tmp_path / "b.jsonl", text_column="body") == ["x", "y"]
    (tmp_path / "c.csv").write_text('id,text\n1,"hello, world"\n2,"multi\nline"\n')
    assert read_texts(tmp_path / "c.csv") == ["hello, world", "multi\nline"]
    (tmp_path / "d.json").write_text(json.dumps([{"text": "p"}, {"text": "q"}]))
    assert read_texts(tmp_path / "d.json") == ["p", "q"]


def test_read_errors_name_file_column_and_rows(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt is empty"):
        read_texts(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_text("\n  \n\n")
    with pytest.raises(DataError, match="blank.txt holds no text"):
        read_texts(tmp_path / "blank.txt")
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match="unsupported file type '.parquet'"):
        read_texts(tmp_path / "x.parquet")
    with pytest.raises(DataError, match="no such file"):
        read_texts(tmp_path / "absent.txt")
    (tmp_path / "m.jsonl").write_text('{"text": "a"}\n{"body": "b"}\n{"body": "c"}\n')
    with pytest.raises(DataError, match=r"m.jsonl: no column 'text' in 2 row\(s\) \[2, 3\]; found \['body', 'text'\]"):
        read_texts(tmp_path / "m.jsonl")
    (tmp_path / "n.jsonl").write_text('{"text": "a"}\n{"text": 5}\n{"text": null}\n')
    with pytest.raises(DataError, match=r"n.jsonl: column 'text' is not text in 2 row\(s\) \[2, 3\]"):
        read_texts(tmp_path / "n.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{oops\n')
    with pytest.raises(DataError, match="bad.jsonl: line 2 is not valid JSON"):
        read_texts(tmp_path / "bad.jsonl")
    (tmp_path / "short.csv").write_text('id,text\n1,"two\nlines"\n2\n')  # record 2 (line 4) lacks its text
    with pytest.raises(DataError, match=r"short.csv: column 'text' is not text in 1 row\(s\) \[4\]"):
        read_texts(tmp_path / "short.csv")
    (tmp_path / "c.csv").write_text("id,body\n1,x\n")
    with pytest.raises(DataError, match=r"c.csv: no column 'text' in 1 row\(s\) \[2\]"):
        read_texts(tmp_path / "c.csv")


# ---- pack_blocks ------------------------------------------------------------------------------

def test_pack_counts_and_eos_between_documents(tok):
    eos = tok.eos_token_id
    texts = ["the cat sat", "a dog", "it was big red"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    stream = ids[0] + [eos] + ids[1] + [eos] + ids[2] + [eos]  # 3+1 + 2+1 + 4+1 = 12 tokens
    packed = pack_blocks(tok, texts, block_size=5)
    assert isinstance(packed, Packed)
    assert packed.n_tokens == 12 and packed.n_documents == 3 and packed.complete
    assert packed.blocks == [stream[0:5], stream[5:10]]  # the 2-token tail fills no block
    assert packed.n_block_tokens == 10

    plain = pack_blocks(tok, texts, block_size=4, add_eos=False)
    assert plain.n_tokens == 9 and plain.blocks == [ids[0] + ids[1][:1], ids[1][1:] + ids[2][:3]]


def test_pack_uses_sep_for_bert_and_max_blocks(tok, bert_tok):
    assert bert_tok.eos_token_id is None
    packed = pack_blocks(bert_tok, ["the movie was good", "a bad film"], block_size=3)
    assert packed.n_tokens == 4 + 1 + 3 + 1
    assert packed.blocks[1][1] == bert_tok.sep_token_id  # "the movie was | good [SEP] a | ..."
    assert bert_tok.cls_token_id not in sum(packed.blocks, [])  # no [CLS] added per document

    texts = ["the cat sat on the mat"] * 2500
    limited = pack_blocks(tok, texts, block_size=7, max_blocks=3)
    assert len(limited.blocks) == 3 and not limited.complete and limited.n_documents < 2500
    full = pack_blocks(tok, texts, block_size=7)
    assert full.complete and full.n_tokens == 2500 * 7 and len(full.blocks) == 2500
    assert full.blocks[:3] == limited.blocks


def test_pack_errors(tok):
    with pytest.raises(DataError, match="the corpus has 4 tokens, fewer than one block of 8"):
        pack_blocks(tok, ["the cat sat"], block_size=8)
    with pytest.raises(ValueError, match="block_size"):
        pack_blocks(tok, ["the cat"], block_size=0)


# ---- mask_tokens ------------------------------------------------------------------------------

def _batch(bert_tok, shape=(200, 500), seed=0):
    """Random ordinary ids with [CLS] first, [SEP] and [PAD] at the end of each row."""
    g = torch.Generator().manual_seed(seed)
    special = set(bert_tok.all_special_ids)
    ordinary = torch.tensor([i for i in range(len(bert_tok)) if i not in special])
    ids = ordinary[torch.randint(len(ordinary), shape, generator=g)]
    ids[:, 0] = bert_tok.cls_token_id
    ids[:, -10] = bert_tok.sep_token_id
    ids[:, -9:] = bert_tok.pad_token_id
    return ids


def test_mask_ratios_80_10_10(bert_tok):
    ids = _batch(bert_tok)
    masked, labels = mask_tokens(ids, bert_tok, probability=0.15, seed=1)
    chosen = labels != -100
    n_ordinary = (~torch.isin(ids, torch.tensor(bert_tok.all_special_ids))).sum().item()
    assert chosen.sum().item() / n_ordinary == pytest.approx(0.15, abs=0.005)
    assert torch.equal(labels[chosen], ids[chosen])
    as_mask = (masked == bert_tok.mask_token_id) & chosen
    changed = (masked != ids) & chosen & ~as_mask
    kept = (masked == ids) & chosen
    n = chosen.sum().item()
    assert as_mask.sum().item() / n == pytest.approx(0.8, abs=0.01)
    # a random replacement equals the original 1 time in 26 (26 ordinary ids): counted as kept
    assert changed.sum().item() / n == pytest.approx(0.1 * 25 / 26, abs=0.01)
    assert kept.sum().item() / n == pytest.approx(0.1 + 0.1 / 26, abs=0.01)
    assert torch.equal(masked[~chosen], ids[~chosen])  # unchosen positions untouched


def test_mask_never_touches_special_tokens(bert_tok):
    ids = _batch(bert_tok, shape=(50, 200))
    original = ids.clone()
    masked, labels = mask_tokens(ids, bert_tok, probability=0.9, seed=3)
    assert torch.equal(ids, original)  # the input is not modified
    special = torch.isin(ids, torch.tensor(bert_tok.all_special_ids))
    assert (labels[special] == -100).all() and torch.equal(masked[special], ids[special])
    inserted = (masked != ids) & (masked != bert_tok.mask_token_id)
    assert inserted.any()
    assert not torch.isin(masked[inserted], torch.tensor(bert_tok.all_special_ids)).any()
    # an explicit mask protects the positions it marks, whatever their ids
    protect = torch.zeros_like(ids, dtype=torch.bool)
    protect[:, 1:50] = True
    _, labels2 = mask_tokens(ids, bert_tok, probability=0.9, seed=3, special_tokens_mask=protect)
    assert (labels2[:, 1:50] == -100).all() and (labels2[:, 0] != -100).any()  # [CLS] no longer protected


def test_mask_seed_determinism(bert_tok):
    ids = _batch(bert_tok, shape=(8, 64))
    a = mask_tokens(ids, bert_tok, seed=7)
    b = mask_tokens(ids, bert_tok, seed=7)
    c = mask_tokens(ids, bert_tok, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_mask_needs_mask_token():
    tok = word_tokenizer()
    tok.mask_token = None
    with pytest.raises(ValueError, match="no mask token"):
        mask_tokens(torch.zeros(1, 4, dtype=torch.long), tok)
