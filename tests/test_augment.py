"""TinyBERT data augmentation with a tiny masked LM whose proposals are known."""

from __future__ import annotations

import json
import random

import pytest
import torch

from conftest import VOCAB, make_bare_bert, make_tokenizer
from hub.augment import AugmentConfig, _masked_ids, augment_text, load_proposer, neighbour_words, positions
from hub.cli import main
from hub.data import load_classification
from hub.models import UntrainedHeadError
from hub.tasks import get_task


def make_ranked_mlm(folder, ranking=("great", "superb", "lovely")):
    """A tiny BertForMaskedLM whose output bias puts ``ranking`` first, in that order,
    at every position: its top proposals are known whatever the input."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=128))
    with torch.no_grad():
        for rank, word in enumerate(ranking):
            model.cls.predictions.bias[VOCAB.index(word)] = 100.0 - 10 * rank
        # the special tokens would win too if they were not filtered out
        model.cls.predictions.bias[VOCAB.index("[MASK]")] = 500.0
    model.save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    return make_ranked_mlm(tmp_path_factory.mktemp("mlm") / "model")


def test_positions_skip_stop_words_and_non_words():
    text = "the movie was good , 42 and Very dull"
    assert [text[a:b] for a, b in positions(text)] == ["movie", "good", "dull"]


def test_candidates_are_the_mlm_proposals_without_the_word_itself_or_special_tokens(mlm_dir):
    propose = load_proposer("mlm", str(mlm_dir))
    texts = ["the movie was good", "Great plot"]
    cands = propose(texts, AugmentConfig(candidates=2))
    by_word = [{t[a:b]: words for (a, b), words in c.items()} for t, c in zip(texts, cands)]
    assert by_word[0] == {"movie": ["great", "superb"], "good": ["great", "superb"]}
    # the word itself is not proposed; the original's case is kept
    assert by_word[1] == {"Great": ["Superb", "Lovely"], "plot": ["great", "superb"]}


def test_embedding_neighbours_are_the_nearest_whole_words(tmp_path):
    tok = make_tokenizer(tmp_path)
    emb = torch.zeros(len(VOCAB) + 3, 4)  # three padded rows past the vocabulary: never proposed
    emb[:, 3] = 1.0
    for word, vec in {"good": [1, 0, 0], "great": [0.9, 0.1, 0], "fine": [0.7, 0.3, 0], "bad": [-1, 0, 0],
                      "[MASK]": [1, 0, 0]}.items():
        emb[VOCAB.index(word), :3] = torch.tensor(vec)
        emb[VOCAB.index(word), 3] = 0.0
    emb[len(VOCAB):, :3] = torch.tensor([1.0, 0, 0])
    texts = ["Good movie", "xyzzy good"]  # xyzzy: word pieces only, no vector of its own
    cands = neighbour_words(emb, tok, texts, AugmentConfig(candidates=2))
    assert {texts[0][a:b]: w for (a, b), w in cands[0].items()}["Good"] == ["Great", "Fine"]
    assert [texts[1][a:b] for a, b in cands[1]] == ["good"]


def test_mask_window_keeps_a_late_word_of_a_long_text(tmp_path):
    tok = make_tokenizer(tmp_path)
    text = " ".join(["movie"] * 300) + " dull"
    span = positions(text)[-1]
    ids = _masked_ids(tok, text, span, max_length=32)
    assert len(ids) == 32 and tok.mask_token_id in ids
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id


def test_copies_are_distinct_differ_from_the_original_and_follow_the_seed():
    text = "good movie"
    cands = {(0, 4): ["great", "fine"], (5, 10): ["film"]}
    cfg = AugmentConfig(per_example=20, replace_prob=0.5)
    copies = augment_text(text, cands, cfg, random.Random(1))
    assert text not in copies and len(copies) == len(set(copies))
    assert set(copies) <= {"great movie", "fine movie", "good film", "great film", "fine film"}
    assert len(copies) >= 3  # 20 draws at p = 0.5 find most of the 5 variants
    assert copies == augment_text(text, cands, cfg, random.Random(1))
    every = augment_text(text, cands, AugmentConfig(per_example=5, replace_prob=1.0), random.Random(0))
    assert all(c.endswith("film") and not c.startswith("good") for c in every)


def test_cli_writes_originals_then_copies_and_a_run_card_records_it(tmp_path, mlm_dir, tiny_data_dir, trained_pair,
                                                                     capsys):
    out = tmp_path / "aug.tsv"
    rc = main(["augment", "--task", "sst2", "--mlm", str(mlm_dir), "--data-dir", str(tiny_data_dir),
               "--max-train-samples", "30", "--per-example", "4", "--output-file", str(out)])
    assert rc == 0 and not list(tmp_path.glob("*.partial"))
    printed = json.loads(capsys.readouterr().out.splitlines()[-2])
    assert printed["originals"] == 30 and printed["augmented"] > 30

    import pandas as pd

    from conftest import make_sentences

    frame = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["sentence", "label", "source_row", "augmented"]
    originals = make_sentences(400, seed=1)[:30]
    assert frame["sentence"][:30].tolist() == [s for s, _ in originals]
    copies = frame[frame["augmented"] == "1"]
    assert len(copies) == printed["augmented"]
    for _, row in copies.iterrows():  # each copy keeps its original's label and differs from it
        sentence, label = originals[int(row["source_row"]) - 1]
        assert row["label"] == str(label) and row["sentence"] != sentence
        assert len(row["sentence"].split()) == len(sentence.split())

    data = load_classification(get_task("sst2"), train_file=str(out),
                               eval_file=str(tiny_data_dir / "sst2" / "validation.tsv"))
    assert data.source["augmentation"]["originals"] == 30
    assert (data.source["augmentation"]["proposer"], data.source["augmentation"]["model"]) == ("mlm", str(mlm_dir))
    assert main(["augment", "--task", "sst2", "--mlm", str(mlm_dir), "--data-dir", str(tiny_data_dir),
                 "--output-file", str(out)]) == 2  # exists: never overwritten silently
    assert "--overwrite" in capsys.readouterr().err

    teacher, _ = trained_pair
    student = tmp_path / "student"
    assert main(["distill", "--task", "sst2", "--teacher", str(teacher), "--student", "teacher-layers:1",
                 "--train-file", str(out), "--eval-file", str(tiny_data_dir / "sst2" / "validation.tsv"),
                 "--alpha", "0", "--epochs", "1", "--output-dir", str(student)]) == 0
    card = json.loads((student / "run.json").read_text())
    assert card["alpha"] == 0 and card["data"]["augmentation"]["augmented"] == printed["augmented"]
    model_card = (student / "README.md").read_text()
    assert "TinyBERT-style augmented data: 30 original examples" in model_card
    assert "python -m hub augment --task sst2 --mlm" in model_card and "--per-example 4" in model_card


def test_refusals(tmp_path, mlm_dir, tiny_data_dir, capsys):
    bare = make_bare_bert(tmp_path / "bare")
    with pytest.raises(UntrainedHeadError, match="finetune --task mlm"):
        load_proposer("mlm", str(bare))
    assert load_proposer("embeddings", str(bare))(["good movie"], AugmentConfig())[0]  # any model has embeddings
    with pytest.raises(ValueError, match="unknown proposer"):
        load_proposer("glove", str(bare))
    base = ["augment", "--mlm", str(mlm_dir), "--data-dir", str(tiny_data_dir)]
    for extra, message in [
        (["--task", "mlm", "--output-file", str(tmp_path / "a.tsv")], "built for classification and qa tasks"),
        (["--task", "squad", "--output-file", str(tmp_path / "a.tsv")], "write augmented qa data as .json"),
        (["--task", "sst2", "--output-file", str(tmp_path / "a.txt")], ".tsv, .csv or .jsonl"),
        (["--task", "sst2", "--output-file", str(tmp_path / "a.tsv"), "--replace-prob", "0"], "--replace-prob"),
        (["--task", "sst2", "--output-file", str(tmp_path / "a.tsv"), "--train-file", "x.tsv"], "one data source"),
    ]:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "a.tsv").exists()
