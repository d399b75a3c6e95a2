"""Shared fixtures: tiny models built from a config in memory and tiny data
files, so the default suite needs no downloads (transformers' own habit:
vocab of a few dozen words, hidden 32, 2 layers)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

POSITIVE = ["good", "great", "fine", "lovely", "superb", "fun", "warm", "bright"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor", "weak", "cold", "ugly"]
FILLER = ["the", "movie", "was", "a", "film", "plot", "and", "very", "it", "is"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + FILLER


def make_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Synthetic sentiment: a label decided by which word list the sentence uses."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, rng.randint(2, 6)) + rng.sample(POSITIVE if label else NEGATIVE, rng.randint(1, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
    return path


def make_tokenizer(folder: Path):
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(str(folder))
    return tok


def make_tiny_bert(folder: Path, layers: int = 4, hidden: int = 32, heads: int = 4, num_labels: int = 2, seed: int = 0):
    """A saved tiny BertForSequenceClassification whose head weights exist in the
    checkpoint (so it counts as a trained head) and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=hidden * 2, max_position_embeddings=128, num_labels=num_labels,
        id2label={0: "negative", 1: "positive"} if num_labels == 2 else None,
    )
    model = BertForSequenceClassification(cfg)
    model.save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A --data-dir with sst2/train.tsv (400 rows) and sst2/validation.tsv (80 rows)."""
    root = tmp_path_factory.mktemp("data")
    write_tsv(root / "sst2" / "train.tsv", make_sentences(400, seed=1))
    write_tsv(root / "sst2" / "validation.tsv", make_sentences(80, seed=2))
    return root


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory) -> Path:
    """A tiny 4-layer BERT teacher folder with a (random but present) head."""
    return make_tiny_bert(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture(scope="session")
def trained_pair(tmp_path_factory, tiny_data_dir) -> tuple[Path, Path]:
    """A tiny teacher fine-tuned briefly and a 2-layer student distilled from it."""
    from hub.data import load_classification
    from hub.distill import DistillConfig, TrainConfig, distill
    from hub.training import finetune
    from hub.models import parse_student
    from hub.tasks import get_task

    task = get_task("sst2")
    base = make_tiny_bert(tmp_path_factory.mktemp("base") / "model")
    data = load_classification(task, data_dir=str(tiny_data_dir))
    root = tmp_path_factory.mktemp("pair")
    finetune(task, str(base), data, str(root / "teacher"), TrainConfig(epochs=3, learning_rate=3e-3, batch_size=16))
    distill(task, str(root / "teacher"), parse_student("teacher-layers:2"), data, str(root / "student"),
            TrainConfig(epochs=1, learning_rate=1e-3, batch_size=16), DistillConfig())
    return root / "teacher", root / "student"


@pytest.fixture
def hub_home(tmp_path, monkeypatch) -> Path:
    """An isolated HUB_HOME for tests that touch the store."""
    home = tmp_path / "hub_home"
    monkeypatch.setenv("HUB_HOME", str(home))
    return home


def run_job_without_training(monkeypatch, params: dict, folder: Path, metric: str):
    """Run one job's pipeline with ``hub.distill.distill`` replaced by a stand-in that
    records what it was given and writes a finished card (``metric`` 0.5). Returns
    ``(result, ctx, seen)``; ``seen``: ``data`` (the distillation data), ``alpha``,
    ``dcfg`` (the whole ``DistillConfig``) and ``calibrate_null``."""
    import threading

    import hub.distill
    from hub.jobs import pipeline
    from hub.jobs.runner import JobContext
    from hub.runs import write_card

    seen = {}

    def fake_distill(task, teacher_ref, spec, data, output_dir, cfg, dcfg, progress=None, cancel=None,
                     teacher_cache=None, calibrate_null=False):
        seen.update(data=data, alpha=dcfg.alpha, dcfg=dcfg, calibrate_null=calibrate_null)
        Path(output_dir).mkdir(parents=True)
        card = {"kind": "student", "task": task.name, "status": "finished", "eval": {"student": {metric: 0.5}}}
        write_card(output_dir, card)
        return card

    monkeypatch.setattr(hub.distill, "distill", fake_distill)
    folder.mkdir()
    ctx = JobContext(folder, {"id": "x", "name": folder.name, "params": params}, threading.Event())
    result = pipeline.run_job(ctx)
    ctx.close()
    return result, ctx, seen


def make_bare_bert(folder: Path, layers: int = 2, hidden: int = 32, heads: int = 4):
    """A saved BertModel without any task head (like minilm-l6), and its tokenizer."""
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, intermediate_size=hidden * 2,
                         max_position_embeddings=128)).save_pretrained(str(folder))
    make_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    """A tiny trained SST-2 teacher and student (``test_app.make_pair``), shared by the app and browser tests."""
    from test_app import make_pair

    return make_pair(tmp_path_factory.mktemp("pair"))
