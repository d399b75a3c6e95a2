"""The embedded offline samples (hub/samples) and the choice of data folder."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, write_tsv

from hub.samples import choose_data_dir, count_rows, default_data_dir, samples_dir
from hub.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
SST2 = {"train": "sst2/train.tsv", "eval": "sst2/validation.tsv"}
TASK_FILES = {
    "sst2": ["sst2/train.tsv", "sst2/validation.tsv"],
    "squad": ["squad/xquad-en-train.json", "squad/dev-subset-v2.0.json"],
    "wikitext-2": ["wikitext-2/valid.txt", "wikitext-2/test.txt"],
}


def test_samples_dir_is_the_package_folder():
    assert samples_dir() == ROOT / "hub" / "samples"
    assert (samples_dir() / "README.md").is_file()


@pytest.mark.parametrize("task", sorted(TASK_FILES))
def test_each_task_sample_exists_and_is_under_1_mb(task):
    sizes = [(samples_dir() / rel).stat().st_size for rel in TASK_FILES[task]]
    assert all(s > 0 for s in sizes)
    assert sum(sizes) < 1_000_000


def test_sst2_sample_rows_and_format():
    train = samples_dir() / "sst2" / "train.tsv"
    with open(train, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows[0] == ["sentence", "label"]
    assert len(rows) - 1 == 4000 == count_rows(train)
    assert {r[1] for r in rows[1:]} == {"0", "1"} and all(len(r) == 2 and r[0].strip() for r in rows[1:])
    assert count_rows(samples_dir() / "sst2" / "validation.tsv") == 872


def test_squad_and_wikitext_samples():
    train = json.loads((samples_dir() / "squad" / "xquad-en-train.json").read_text(encoding="utf-8"))
    dev = json.loads((samples_dir() / "squad" / "dev-subset-v2.0.json").read_text(encoding="utf-8"))
    for data in (train, dev):
        for a in data["data"]:
            for p in a["paragraphs"]:
                for q in p["qas"]:
                    for ans in q["answers"]:  # every answer span points into its context
                        assert p["context"][ans["answer_start"]:].startswith(ans["text"])
    assert 200 <= count_rows(samples_dir() / "squad" / "dev-subset-v2.0.json") <= 500
    assert any(q.get("is_impossible") for a in dev["data"] for p in a["paragraphs"] for q in p["qas"])
    for split in ("valid", "test"):
        text = (samples_dir() / "wikitext-2" / f"{split}.txt").read_text(encoding="utf-8")
        assert text.lstrip().startswith("= ") and len(text.splitlines()) > 500


def test_readme_records_sources_licences_seed_and_counts():
    text = (samples_dir() / "README.md").read_text(encoding="utf-8")
    for needle in ("Socher", "GLUE", "CC BY-SA 4.0", "CC BY-SA 3.0", "python scripts/make_samples.py",
                   "--seed 42", "4,000", "872"):
        assert needle in text
    for rel in sum(TASK_FILES.values(), []):
        assert f"{(samples_dir() / rel).stat().st_size:,} bytes" in text


def test_load_classification_reads_the_embedded_sst2():
    from hub.data import load_classification

    data = load_classification(get_task("sst2"), data_dir=str(samples_dir()))
    assert (len(data.train_texts), len(data.eval_texts)) == (4000, 872)
    assert data.label_names == ["negative", "positive"]
    assert set(data.train_labels) == {0, 1}


def test_choice_prefers_a_complete_local_folder(tmp_path, monkeypatch):
    local = tmp_path / "data"
    write_tsv(local / "sst2" / "train.tsv", [("good", 1), ("bad", 0)])
    write_tsv(local / "sst2" / "validation.tsv", [("fine", 1)])
    assert choose_data_dir(SST2, str(local), fallback=tmp_path / "none")[0] == local.resolve()
    monkeypatch.setenv("HUB_DATA_DIR", str(local))
    folder, label = default_data_dir(fallback=tmp_path / "none")
    assert folder == local.resolve() and "local data folder" in label


def test_choice_falls_back_to_the_embedded_sample_and_says_why(tmp_path, monkeypatch):
    partial = tmp_path / "partial"
    write_tsv(partial / "sst2" / "train.tsv", [("good", 1), ("bad", 0)])  # no validation.tsv
    monkeypatch.setenv("HUB_DATA_DIR", str(partial))
    folder, label = default_data_dir(fallback=tmp_path / "none")
    assert folder == samples_dir()
    assert label.startswith("embedded sample (4,000 train + 872 eval examples")
    assert "lacks sst2/validation.tsv" in label
    monkeypatch.delenv("HUB_DATA_DIR")
    assert default_data_dir(fallback=tmp_path / "none")[0] == samples_dir()
    with pytest.raises(FileNotFoundError, match="no data for this task"):
        choose_data_dir({"train": "nothing/here.tsv"}, fallback=tmp_path / "none")
    with pytest.raises(ValueError, match="no local file layout"):
        choose_data_dir({})


@pytest.mark.skipif(not (SHARED_DATA / "sst2" / "train.tsv").is_file(), reason="no ../shared/data")
def test_default_uses_shared_data_when_present(monkeypatch):
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    folder, label = default_data_dir()
    assert folder == SHARED_DATA.resolve() and label.startswith("local data folder")


@pytest.mark.skipif(not (SHARED_DATA / "sst2" / "train.tsv").is_file(), reason="no ../shared/data")
def test_make_samples_is_reproducible(tmp_path):
    """The committed samples are exactly what the script makes from ../shared/data."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_samples.py"), "--source", str(SHARED_DATA),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for rel in sum(TASK_FILES.values(), []):
        assert (tmp_path / rel).read_bytes() == (samples_dir() / rel).read_bytes(), rel
