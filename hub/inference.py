"""Loaded models for the side-by-side demo, and evaluation by reference.

The kind of a task does the model math (``hub/kinds``); this module loads a
model reference once into the kind's predictor and keeps a few of them in a
small LRU cache, so every Compare section and the API share one loader.

A reference is a model folder, a Hub id (safetensors only, no remote code:
``hub.models.load_model``) or an ONNX export folder (``hub.export``), which is
served by ONNX Runtime (``hub.onnx_runtime.OnnxModel``). Each predictor carries
``runtime``, the words a page shows beside its latency ("PyTorch", "ONNX Runtime
int8"). The settings a run card records under ``eval_options`` (QA's null-answer
threshold) are passed to the kind's predictor.
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


def run_card(ref: str) -> dict:
    """The run card (run.json) of a model folder or export; {} for Hub ids and folders without one."""
    try:
        card = json.loads((Path(str(ref)) / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def eval_options(ref: str, task: Task) -> dict:
    """The evaluation settings recorded in ``ref``'s run card (``eval_options``) that
    the task's kind takes; {} when none (a Hub model, a run given none)."""
    recorded = run_card(ref).get("eval_options")
    allowed = getattr(get_kind(task), "eval_options", ())
    return {k: v for k, v in recorded.items() if k in allowed} if isinstance(recorded, dict) else {}


def load_trained(ref: str, task: Task):
    """(model, tokenizer, the evaluation options its run card records, its training length) of a
    model with a trained head for ``task``; :class:`hub.models.UntrainedHeadError` when it has none."""
    from .models import UntrainedHeadError, resolve_model_ref

    model, trained = load_model(ref, task)
    if not trained:
        raise UntrainedHeadError(f"{ref} has no trained {task.head} head; fine-tune it first")
    length = trained_length(ref, getattr(get_kind(task), "default_max_length", 128))
    return model, load_tokenizer(ref), eval_options(resolve_model_ref(ref), task), length


def runtime_label(model) -> str:
    """How a loaded model runs, for the page: "PyTorch", "ONNX Runtime fp32" or "ONNX Runtime int8"."""
    card = getattr(model, "card", None)
    if card is None or not hasattr(model, "session"):
        return "PyTorch"
    return f"ONNX Runtime {'int8' if card.get('quantization') else 'fp32'}"


def load_predictor(ref: str, task: Task, id2label: dict | None = None):
    """The kind's predictor for ``ref`` (a folder, a Hub id or an ONNX export
    folder), loaded once and kept in an LRU cache of ``MAX_LOADED`` models (a model
    is ~100 MB). ``id2label`` renames a classifier's labels (published models name
    the same SST-2 labels differently: ``LABEL_1``, ``POSITIVE``)."""
    from .onnx_runtime import OnnxModel, is_onnx_dir

    key = (str(ref), task.name)
    card = Path(str(ref)) / "run.json"  # a recorded threshold can change (calibrate-null --apply): load again then
    stamp = card.stat().st_mtime_ns if card.is_file() else None
    with _LOCK:
        if key in _LOADED and _LOADED[key][0] == stamp:
            _LOADED.move_to_end(key)
            return _LOADED[key][1]
    kind = get_kind(task)
    if is_onnx_dir(ref):
        model = OnnxModel.from_dir(ref)
    else:
        model, _ = load_model(ref, task, id2label=id2label)
    length = trained_length(ref, getattr(kind, "default_max_length", 128))
    predictor = kind.predictor(model, load_tokenizer(ref), task, max_length=length, **eval_options(ref, task))
    predictor.runtime = runtime_label(model)
    with _LOCK:
        _LOADED[key] = (stamp, predictor)  # replaces a copy loaded under an older run card
        _LOADED.move_to_end(key)
        while len(_LOADED) > MAX_LOADED:
            _LOADED.popitem(last=False)
    return predictor


def evaluate(model, tokenizer, task: Task, data, max_length: int = 128, batch_size: int = 64) -> dict:
    """The task's metrics for a loaded model (its kind's evaluation)."""
    return get_kind(task).evaluate(model, tokenizer, data, max_length=max_length, batch_size=batch_size)
