"""Loaded models for the side-by-side demo, and evaluation by reference.

The kind of a task does the model math (``hub/kinds``); this module loads a
model reference once into the kind's predictor and keeps a few of them in a
small LRU cache, so every Compare section and the API share one loader.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from .kinds import get_kind
from .models import load_model, load_tokenizer
from .tasks import Task

MAX_LOADED = 4
_LOCK = threading.Lock()
_LOADED: OrderedDict = OrderedDict()


def trained_length(ref: str, default: int = 128) -> int:
    """The ``max_length`` a hub model was trained with (its run card), else ``default``."""
    card = Path(str(ref)) / "run.json"
    try:
        return int(json.loads(card.read_text())["train"]["max_length"])
    except (OSError, KeyError, ValueError, TypeError):
        return default


def load_predictor(ref: str, task: Task):
    """The kind's predictor for ``ref`` (a folder or Hub id), loaded once and kept
    in an LRU cache of ``MAX_LOADED`` models (a model is ~100 MB)."""
    key = (str(ref), task.name)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
    model, _ = load_model(ref, task)
    predictor = get_kind(task).predictor(model, load_tokenizer(ref), task, max_length=trained_length(ref))
    with _LOCK:
        _LOADED[key] = predictor
        while len(_LOADED) > MAX_LOADED:
            _LOADED.popitem(last=False)
    return predictor


def evaluate(model, tokenizer, task: Task, data, max_length: int = 128, batch_size: int = 64) -> dict:
    """The task's metrics for a loaded model (its kind's evaluation)."""
    return get_kind(task).evaluate(model, tokenizer, data, max_length=max_length, batch_size=batch_size)
