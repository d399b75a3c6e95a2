"""Loading, validating and tokenizing classification data from every supported
source layout and file type, and the error messages users see."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hub.data import DataError, label_vocabulary, load_classification, read_table, tokenize
from hub.tasks import get_task

from conftest import make_sentences, make_tokenizer, write_tsv

SST2 = get_task("sst2")
CLS = get_task("classification")


def write_frame(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` in the format given by the file extension."""
    suffix = path.suffix
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:  # pragma: no cover
        raise AssertionError(suffix)
    return path


# ---------------------------------------------------------------- sources and formats


def test_data_dir_layout(tiny_data_dir):
    data = load_classification(SST2, data_dir=str(tiny_data_dir))
    assert len(data.train_texts) == len(data.train_labels) == 400
    assert len(data.eval_texts) == len(data.eval_labels) == 80
    assert data.label_names == ["negative", "positive"]
    assert data.id2label == {0: "negative", 1: "positive"}
    expected = make_sentences(400, seed=1)
    assert data.train_texts[:5] == [s for s, _ in expected[:5]]
    assert data.train_labels == [y for _, y in expected]
    assert data.eval_labels == [y for _, y in make_sentences(80, seed=2)]
    assert data.source["kind"] == "files"
    assert data.source["train_size"] == 400 and data.source["eval_size"] == 80


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_files_with_custom_columns_and_string_labels(tmp_path, ext):
    train = pd.DataFrame({
        "review": ["great fun", "so dull", "it is ok", "lovely film", "awful plot"],
        "stars": ["pos", "neg", "neutral", "pos", "neg"],
    })
    evals = pd.DataFrame({"review": ["fine", "boring", "meh"], "stars": ["pos", "neg", "neutral"]})
    tf = write_frame(train, tmp_path / f"train{ext}")
    ef = write_frame(evals, tmp_path / f"eval{ext}")
    data = load_classification(CLS, train_file=str(tf), eval_file=str(ef), text_column="review", label_column="stars")
    # string labels: sorted names, ids by that order
    assert data.label_names == ["neg", "neutral", "pos"]
    assert data.train_texts == train["review"].tolist()
    assert data.train_labels == [2, 0, 1, 2, 0]
    assert data.eval_texts == ["fine", "boring", "meh"]
    assert data.eval_labels == [2, 0, 1]  # eval maps onto the same ids
    assert data.source["text_column"] == "review" and data.source["label_column"] == "stars"


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_integer_labels_keep_ids(tmp_path, ext):
    train = pd.DataFrame({"text": ["a b", "c d", "e f", "g h"], "y": [2, 0, 1, 0]})
    evals = pd.DataFrame({"text": ["i", "j"], "y": [1, 2]})
    tf = write_frame(train, tmp_path / f"train{ext}")
    ef = write_frame(evals, tmp_path / f"eval{ext}")
    data = load_classification(CLS, train_file=str(tf), eval_file=str(ef), text_column="text", label_column="y")
    assert data.label_names == ["0", "1", "2"]
    assert data.train_labels == [2, 0, 1, 0]
    assert data.eval_labels == [1, 2]


def test_sst2_integer_labels_get_task_names(tmp_path):
    df = pd.DataFrame({"sentence": ["good", "bad", "great"], "label": [1, 0, 1]})
    tf = write_frame(df, tmp_path / "train.csv")
    ef = write_frame(df.iloc[:2], tmp_path / "eval.jsonl")  # mixed file types: ids still agree
    data = load_classification(SST2, train_file=str(tf), eval_file=str(ef))
    assert data.label_names == ["negative", "positive"]
    assert data.train_labels == [1, 0, 1]
    assert data.eval_labels == [1, 0]


def test_sst2_eval_may_use_label_names(tmp_path):
    tf = write_frame(pd.DataFrame({"sentence": ["good", "bad"], "label": [1, 0]}), tmp_path / "train.tsv")
    ef = write_frame(pd.DataFrame({"sentence": ["x", "y"], "label": ["positive", "negative"]}), tmp_path / "eval.tsv")
    data = load_classification(SST2, train_file=str(tf), eval_file=str(ef))
    assert data.eval_labels == [1, 0]


def test_integer_labels_not_from_zero_become_names():
    assert label_vocabulary([3, 1, 2], CLS) == ["1", "2", "3"]
    assert label_vocabulary([0, 1, 2]) == ["0", "1", "2"]
    assert label_vocabulary(["b", "a", "c", "a"]) == ["a", "b", "c"]
    assert label_vocabulary([1.0, 0.0]) == ["0", "1"]  # parquet/JSON floats are the same labels


def test_float_labels_from_parquet(tmp_path):
    df = pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0.0, 1.0, 2.0]})
    tf = write_frame(df, tmp_path / "train.parquet")
    ef = write_frame(pd.DataFrame({"sentence": ["d"], "label": ["2"]}), tmp_path / "eval.csv")
    data = load_classification(CLS, train_file=str(tf), eval_file=str(ef))
    assert data.label_names == ["0", "1", "2"]
    assert data.train_labels == [0, 1, 2] and data.eval_labels == [2]


def test_tsv_keeps_quotes_and_na_words(tmp_path):
    tf = tmp_path / "train.tsv"
    tf.write_text('sentence\tlabel\n"quoted" start\t1\nNA\t0\nnull movie\t0\n')
    data = load_classification(SST2, train_file=str(tf), eval_file=str(tf))
    assert data.train_texts == ['"quoted" start', "NA", "null movie"]


def test_max_samples_truncate(tiny_data_dir):
    data = load_classification(SST2, data_dir=str(tiny_data_dir), max_train_samples=10, max_eval_samples=7)
    assert len(data.train_texts) == len(data.train_labels) == 10
    assert len(data.eval_texts) == len(data.eval_labels) == 7
    assert data.train_texts == [s for s, _ in make_sentences(400, seed=1)[:10]]
    assert data.source["train_size"] == 10 and data.source["eval_size"] == 7
    # larger than the file: everything
    full = load_classification(SST2, data_dir=str(tiny_data_dir), max_train_samples=10_000)
    assert len(full.train_texts) == 400


@pytest.mark.parametrize("kwargs, match", [
    ({"max_train_samples": 0}, "no training examples left"),
    ({"max_eval_samples": 0}, "no evaluation examples left"),
])
def test_max_samples_zero(tiny_data_dir, kwargs, match):
    with pytest.raises(DataError, match=match):
        load_classification(SST2, data_dir=str(tiny_data_dir), **kwargs)


def test_eval_only_with_label_names(tiny_data_dir):
    ef = tiny_data_dir / "sst2" / "validation.tsv"
    data = load_classification(SST2, eval_file=str(ef), label_names=["negative", "positive"], need_train=False)
    assert data.train_texts == [] and len(data.eval_texts) == 80
    with pytest.raises(DataError, match="label names are required"):
        load_classification(SST2, eval_file=str(ef), need_train=False)


# ---------------------------------------------------------------- errors


def test_missing_column_lists_found_columns(tmp_path):
    tf = write_frame(pd.DataFrame({"txt": ["a", "b"], "label": [0, 1]}), tmp_path / "train.csv")
    with pytest.raises(DataError, match=r"missing column\(s\) \['sentence'\]; found \['txt', 'label'\]"):
        load_classification(SST2, train_file=str(tf), eval_file=str(tf))
    with pytest.raises(DataError, match=r"train\.csv: missing column\(s\) \['stars'\].*--label-column"):
        load_classification(SST2, train_file=str(tf), eval_file=str(tf), text_column="txt", label_column="stars")


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_empty_file(tmp_path, ext):
    f = tmp_path / f"train{ext}"
    f.write_bytes(b"")
    with pytest.raises(DataError, match=rf"train\{ext} is empty"):
        load_classification(SST2, train_file=str(f), eval_file=str(f))


@pytest.mark.parametrize("ext", [".csv", ".tsv"])
def test_header_only_file(tmp_path, ext):
    sep = "\t" if ext == ".tsv" else ","
    f = tmp_path / f"train{ext}"
    f.write_text(f"sentence{sep}label\n")
    with pytest.raises(DataError, match=rf"train\{ext} has no rows"):
        load_classification(SST2, train_file=str(f), eval_file=str(f))


def test_header_only_parquet(tmp_path):
    f = write_frame(pd.DataFrame({"sentence": pd.Series([], dtype=str), "label": pd.Series([], dtype=int)}),
                    tmp_path / "train.parquet")
    with pytest.raises(DataError, match="has no rows"):
        read_table(f)


def test_eval_label_unseen_in_training(tmp_path):
    tf = write_frame(pd.DataFrame({"sentence": ["a", "b"], "label": ["pos", "neg"]}), tmp_path / "train.csv")
    ef = write_frame(pd.DataFrame({"sentence": ["c", "d"], "label": ["pos", "meh"]}), tmp_path / "eval.csv")
    with pytest.raises(DataError, match=r"eval\.csv: label\(s\) \['meh'\] not seen in training"):
        load_classification(CLS, train_file=str(tf), eval_file=str(ef))


def test_empty_texts_give_row_numbers(tmp_path):
    tf = write_frame(
        pd.DataFrame({"sentence": ["fine", "", "ok", "   ", "good"], "label": [1, 0, 1, 0, 1]}), tmp_path / "train.csv"
    )
    with pytest.raises(DataError, match=r"train\.csv: 2 empty text\(s\) in column 'sentence', rows \[2, 4\]"):
        load_classification(SST2, train_file=str(tf), eval_file=str(tf))


def test_null_texts_in_jsonl(tmp_path):
    tf = tmp_path / "train.jsonl"
    tf.write_text('{"sentence": "good", "label": 1}\n{"sentence": null, "label": 0}\n')
    with pytest.raises(DataError, match=r"empty text\(s\).*rows \[2\]"):
        load_classification(SST2, train_file=str(tf), eval_file=str(tf))


def test_missing_labels_give_row_numbers(tmp_path):
    tf = tmp_path / "train.csv"
    tf.write_text("sentence,label\ngood,1\nbad,\nfine,1\n")
    with pytest.raises(DataError, match=r"1 row\(s\) without a label, rows \[2\]"):
        load_classification(SST2, train_file=str(tf), eval_file=str(tf))


def test_single_label_rejected(tmp_path):
    tf = write_frame(pd.DataFrame({"text": ["a", "b"], "y": ["x", "x"]}), tmp_path / "train.csv")
    with pytest.raises(DataError, match="only one label"):
        load_classification(CLS, train_file=str(tf), eval_file=str(tf), text_column="text", label_column="y")


def test_unsupported_extension(tmp_path):
    f = tmp_path / "train.xlsx"
    f.write_text("sentence,label\na,1\n")
    with pytest.raises(DataError, match=r"train\.xlsx: unsupported file type '\.xlsx'; use one of \.csv"):
        load_classification(SST2, train_file=str(f), eval_file=str(f))


def test_nonexistent_file(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"no such file: .*nope\.csv"):
        load_classification(SST2, train_file=str(missing), eval_file=str(missing))


def test_nonexistent_data_dir(tmp_path):
    with pytest.raises(DataError, match=r"no such file: .*train\.tsv"):
        load_classification(SST2, data_dir=str(tmp_path / "nowhere"))


def test_two_sources_rejected(tiny_data_dir):
    tf = str(tiny_data_dir / "sst2" / "train.tsv")
    with pytest.raises(DataError, match="exactly one data source"):
        load_classification(SST2, data_dir=str(tiny_data_dir), train_file=tf, eval_file=tf)
    with pytest.raises(DataError, match="exactly one data source"):
        load_classification(SST2)


def test_data_dir_needs_task_layout(tiny_data_dir):
    with pytest.raises(DataError, match="no local layout"):
        load_classification(CLS, data_dir=str(tiny_data_dir))


def test_train_and_eval_files_required(tiny_data_dir):
    tf = str(tiny_data_dir / "sst2" / "train.tsv")
    with pytest.raises(DataError, match="--eval-file is required"):
        load_classification(SST2, train_file=tf)
    with pytest.raises(DataError, match="--train-file is required"):
        load_classification(SST2, eval_file=tf)


def test_unreadable_file(tmp_path):
    f = tmp_path / "train.parquet"
    f.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"could not read train\.parquet"):
        read_table(f)


# ---------------------------------------------------------------- tokenize


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def test_tokenize_columns(tokenizer):
    from datasets import Dataset

    texts = ["the movie was good", "bad"]
    ds = tokenize(tokenizer, texts, [1, 0], max_length=16)
    assert isinstance(ds, Dataset)
    assert {"input_ids", "attention_mask", "idx", "length", "labels"} <= set(ds.column_names)
    assert len(ds) == 2
    assert ds["idx"] == [0, 1]
    assert ds["labels"] == [1, 0]
    # [CLS] the movie was good [SEP] / [CLS] bad [SEP]; dynamic padding: no pad here
    assert ds["length"] == [6, 3]
    assert [len(x) for x in ds["input_ids"]] == [6, 3]
    assert ds["attention_mask"] == [[1] * 6, [1] * 3]
    assert ds["input_ids"][1] == [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids("bad"), tokenizer.sep_token_id]


def test_tokenize_truncates(tokenizer):
    long = " ".join(["good"] * 50)
    ds = tokenize(tokenizer, [long, "fine"], [1, 1], max_length=8)
    assert ds["length"] == [8, 3]
    assert len(ds["input_ids"][0]) == 8
    assert ds["input_ids"][0][-1] == tokenizer.sep_token_id


def test_tokenize_without_labels(tokenizer):
    ds = tokenize(tokenizer, ["good", "bad"])
    assert "labels" not in ds.column_names
    assert ds["idx"] == [0, 1]


def test_hub_dataset_source_is_used_when_online(monkeypatch):
    """``--dataset glue --dataset-config sst2`` goes through datasets.load_dataset
    (simulated here: no network) with the task's split names."""
    import datasets

    from hub.data import load_classification
    from hub.tasks import get_task

    calls = []

    def fake_load_dataset(name, config=None):
        calls.append((name, config))
        rows = {"sentence": ["good film", "bad film", "fine film"], "label": [1, 0, 1], "idx": [0, 1, 2]}
        return datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows),
                                     "validation": datasets.Dataset.from_dict(rows)})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_classification(get_task("sst2"), dataset="glue", dataset_config="sst2")
    assert calls == [("glue", "sst2")]
    assert data.train_labels == [1, 0, 1] and data.label_names == ["negative", "positive"]
    assert data.source["kind"] == "hub" and data.source["dataset"] == "glue"


def test_hub_dataset_offline_gives_clear_error(monkeypatch):
    import datasets
    import pytest

    from hub.data import DataError, load_classification
    from hub.tasks import get_task

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="Offline, use --data-dir"):
        load_classification(get_task("sst2"), dataset="glue")


def test_integer_labels_evaluate_a_model_with_named_labels(tmp_path):
    """Issue 8.10: `evaluate --task classification` on a 0/1 file for a model whose labels have names."""
    from hub.data import encode_labels

    write_tsv(tmp_path / "eval.tsv", [("good movie", 1), ("bad movie", 0)])
    data = load_classification(get_task("classification"), eval_file=str(tmp_path / "eval.tsv"),
                               label_names=["negative", "positive"], need_train=False)
    assert data.eval_labels == [1, 0]
    assert encode_labels(["neg", "pos", 1], ["neg", "pos"], "f") == [0, 1, 1]
    with pytest.raises(DataError, match="not seen"):
        encode_labels([2], ["neg", "pos"], "f")
    assert encode_labels(["3", "7"], ["3", "7"], "f") == [0, 1]  # integer names are names, not positions
