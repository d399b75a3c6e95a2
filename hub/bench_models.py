"""The models a benchmark run measures (``hub.benchmark``): loading a reference
(an ``arch:NAME`` of random weights, an exported ONNX folder, or a trained model
with its run card), its int8 and ONNX Runtime variants, each as an ``Entry``;
and what a row records of the model (its stored reference, its trained length).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .tasks import Task


ARCH_PREFIX = "arch:"
TOKENIZER_FOR_ARCH = "minilm-l6"  # BERT's uncased 30,522-word vocabulary, available offline


def is_arch(ref: str) -> bool:
    """``arch:NAME``: a timing-only architecture with random weights."""
    return ref.startswith(ARCH_PREFIX)


_is_arch = is_arch


def _model_size(model) -> int:
    from .models import model_size

    return model_size(model)


def load_for_bench(ref: str, task: Task, num_labels: int = 2, spin: bool = False):
    """(model, tokenizer, run card or None). ``arch:NAME`` gives random weights.
    ``spin``: an ONNX Runtime session's worker threads spin-wait between calls (the
    setting of a process that serves ONNX models only; see ``hub.onnx_runtime``)."""
    from .models import build_architecture, load_model, load_tokenizer, resolve_model_ref

    if _is_arch(ref):
        model = build_architecture(ref[len(ARCH_PREFIX):], task, num_labels=num_labels)
        return model.eval(), load_tokenizer(TOKENIZER_FOR_ARCH), None
    from .onnx_runtime import OnnxModel, is_onnx_dir

    if is_onnx_dir(ref):  # an exported folder (the memory probe of an ONNX variant)
        model = OnnxModel.from_dir(ref, threads=torch.get_num_threads(), spin=spin)
        card_path = Path(ref) / "run.json"
        return model, load_tokenizer(ref), json.loads(card_path.read_text()) if card_path.is_file() else None
    model, trained = load_model(ref, task)
    if not trained:
        raise ValueError(f"{ref} has no trained {task.head} head: its quality numbers would be meaningless")
    card_path = Path(resolve_model_ref(ref)) / "run.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else None
    return model.eval(), load_tokenizer(ref), card


def quantize_int8(model):
    """Dynamic int8 quantization of the Linear layers; (model, None) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in 2.13 but works
            from torch.ao.quantization import quantize_dynamic

            engines = torch.backends.quantized.supported_engines
            if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
                return None, f"no quantized engine in this torch build ({engines})"
            return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8).eval(), None
    except Exception as exc:  # noqa: BLE001 - any failure is reported in the row
        return None, f"{type(exc).__name__}: {exc}"


@dataclass
class Entry:
    """One measured model (a variant: fp32 or int8)."""

    ref: str
    name: str
    model: object
    tokenizer: object
    card: dict | None
    quantization: str = "fp32"
    is_teacher: bool = False
    params: int | None = None  # weights of the fp32 model (packed int8 weights are not nn.Parameters)
    runtime: str = "torch"
    folder: str | None = None  # the exported folder of an ONNX variant (memory probe, size on disk)


def onnx_folder(ref: str, quantization: str) -> Path:
    """Where the benchmark keeps the ONNX export of a model folder (re-exported when
    the model's weights are newer than the export): ``hub.paths.onnx_cache_dir``."""
    from .paths import onnx_cache_dir

    return onnx_cache_dir(ref, quantization)


def _onnx_entry(ref: str, name: str, task: Task, tok, card, quantization: str, params, log) -> Entry:
    """An ONNX Runtime variant of ``ref`` (exported on first use, or its reason for being unavailable)."""
    label = f"{name} (onnx{' int8' if quantization == 'int8' else ''})"
    try:
        from .export import export_onnx
        from .models import resolve_model_ref
        from .onnx_runtime import OnnxModel, is_onnx_dir

        folder = onnx_folder(resolve_model_ref(ref), quantization)
        weights = Path(resolve_model_ref(ref)) / "model.safetensors"
        stale = weights.is_file() and is_onnx_dir(folder) and weights.stat().st_mtime > (folder / "model.onnx").stat().st_mtime
        if not is_onnx_dir(folder) or stale:
            log(f"exporting {name} to ONNX ({quantization}) ...")
            export_onnx(ref, str(folder), quantize="int8" if quantization == "int8" else None, head=task.head)
        model = OnnxModel.from_dir(folder, threads=torch.get_num_threads())
        return Entry(ref, label, model, tok, card, quantization=quantization, params=params, runtime="onnx",
                     folder=str(folder))
    except Exception as exc:  # noqa: BLE001 - reported in the row, never fatal for the other models
        return Entry(ref, label, None, tok, card, quantization=f"{quantization} unavailable: {type(exc).__name__}: {exc}"[:300],
                     params=params, runtime="onnx")


def _trained_length(card: dict | None) -> int:
    try:
        return int(card["train"]["max_length"])
    except (TypeError, KeyError, ValueError):
        return 128


def stored_ref(ref: str) -> str:
    """What a row records as its model: an alias with a local folder (``minilm-l6``,
    ``smollm2-135m`` once converted) becomes that folder, so the app can load the
    model from the leaderboard like any CLI-trained one; anything else is kept."""
    from .models import ALIASES, LOCAL_TEACHER_ALIASES, resolve_model_ref

    if ref not in (*ALIASES, *LOCAL_TEACHER_ALIASES):
        return ref
    try:
        folder = resolve_model_ref(ref)
    except (OSError, ValueError):
        return ref
    return folder if Path(folder).is_dir() else ref
