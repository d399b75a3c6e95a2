"""Export a hub model to ONNX for ONNX Runtime, with a parity check.

``export_onnx(model_dir, output_dir)`` writes a folder that ``hub.onnx_runtime``
serves::

    model.onnx         the graph; inputs input_ids / attention_mask / token_type_ids
                       (those the tokenizer produces), each (batch, sequence) int64;
                       outputs named as the model's output fields, batch and sequence dynamic
    config.json        the transformers config (labels, shape)
    tokenizer files    as ``tokenizer.save_pretrained`` writes them
    run.json           copied from the model folder when it has one
    export.json        how it was made and how closely it matches PyTorch: source, head,
                       exporter, versions, opset, inputs, outputs, quantization (None or
                       the settings), parameters, missing_weights (checkpoint keys that
                       transformers had to initialise randomly), parity {max_abs_diff,
                       agreement, n, shapes}, size_bytes, fp32_size_bytes, eval (if asked)

Why ``torch.onnx.export(dynamo=True)`` and not Optimum or the TorchScript exporter
(checked with torch 2.13, transformers 5.24, onnx 1.23, onnxscript 0.7, onnxruntime 1.32):

* Optimum's exporter (``optimum-onnx`` 0.1.0 with ``optimum`` 2.1.0, the newest on
  PyPI) requires ``transformers<4.58`` and fails to import against transformers 5
  (``ImportError: get_parameter_dtype`` from ``transformers.modeling_utils``).
  Installing it would downgrade transformers, so it is not used.
* The TorchScript exporter (``dynamo=False``) gave the same numbers on BERT
  classification, QA and MaskedLM and on Llama/GPT-2 causal LMs, but since torch 2.9
  it is the "legacy" path (a ``DeprecationWarning`` on every call). It also works by
  *tracing*: Python branches that read a shape or a value at trace time are frozen
  into the graph without any warning.
* The dynamo exporter (the default since torch 2.9) goes through ``torch.export``.
  The batch and sequence sizes are symbolic (``torch.export.Dim``), so a branch
  that depends on them either becomes a guard or fails the export loudly. It never
  silently bakes in the example's shape. All four heads exported and matched
  PyTorch to ~1e-7. Its costs:

  * an export takes several seconds (~7 s of CPU for a 2-layer toy, about a minute
    for tinybert-4l-312 on 2 busy cores) against ~1-3 s for TorchScript;
  * with 1 thread its graph took ~5-15% more CPU per call than the TorchScript graph
    of the same model (tinybert-4l-312: 4.6 vs 4.3 ms at 24 tokens, 22.8 vs 21.2 ms
    at 128). At batch 1 and 24 tokens with 2 threads, wall-clock p50 was the same
    in fp32 (5.2 vs 5.1 ms), and in int8 the dynamo graph was faster (3.1 vs 3.5 ms).
    ORT's BERT fusion tool (``onnxruntime.transformers.optimizer``) recognises the
    attention and embedding patterns of TorchScript graphs only, and even then did
    not run faster on this CPU.

  Shapes that are correct by construction are worth more than that margin.

Two export settings are measured choices:

* The model is loaded with ``attn_implementation="eager"``. The SDPA path exports a
  decomposition with NaN guards and mask slicing that ran 7-12% slower (4.9 vs 4.6 ms
  fp32 at 24 tokens, 18.4 vs 16.2 ms int8 at 128). Both match PyTorch to ~1e-7.
* The exporter's onnxscript optimizer is left on. Without it, each weight reaches
  its MatMul through a Transpose, and ``quantize_dynamic`` then finds 2 of 14 weights.

Parity is part of the export. The PyTorch model and the ONNX session run on
seeded random inputs of several batch sizes and lengths (with padding), and on
``sample_texts``:

* ``max_abs_diff`` is the largest absolute difference of any output over real
  (unpadded) positions;
* ``agreement`` is the share of predictions whose argmax matches;
* ``n`` is the number of predictions compared: one per text for classification
  (the label) and for QA (start *and* end must match), one per real token for the
  language-model heads.

An fp32 export whose ``max_abs_diff`` exceeds ``FP32_TOLERANCE`` raises
:class:`ExportError` after writing ``export.json``, so it can be inspected.
An int8 export only records its parity: quantization error is expected.

int8 is ONNX Runtime's dynamic quantization (``quantize_dynamic``). Weights are
QInt8 and activations are quantized to uint8 per call. ``INT8_SETTINGS`` is
**per-channel** with **reduce_range** (7-bit weights), and quantizes **MatMul and
Gather**. Measured on the project's 2-core AMD EPYC, which has AVX2 and no VNNI:

* Saturation. Without VNNI, ORT's u8 x s8 kernels add pairs of products in int16,
  and with full 8-bit weights those sums can saturate (ORT's documentation names
  ``reduce_range`` or U8U8 as the remedy). On the tiny QA BERT of the tests, the
  largest logit error was 0.10 without ``reduce_range`` (logits are about 0.2) and
  0.005 with it. QUInt8 weights (U8U8) also fixed it, but ran 9-17% slower.
* Accuracy. A MiniLM-L6 teacher fine-tuned on SST-2 scored 0.788 in fp32 on the
  872 validation sentences (87 MiB):

  | quantization (QInt8 weights) | accuracy | agreement with fp32 | mean / max logit error | size |
  |---|---|---|---|---|
  | per-tensor, MatMul + Gather | 0.778 | 96.2% | 0.088 / 0.74 | 22 MiB |
  | per-channel, MatMul + Gather | 0.790 | 98.2% | 0.042 / 0.52 | 22 MiB |
  | per-channel, reduce_range, MatMul + Gather | 0.784 | 98.3% | 0.044 / 0.36 | 22 MiB |
  | per-channel, MatMul only | 0.788 | 98.6% | | 56 MiB |
  | torch's ``quantize_dynamic`` (Linear, per-tensor) | 0.780 | 95.5% | | n/a |

  Per-channel halves the disagreements of per-tensor quantization. ``reduce_range``
  costs nothing measurable here: 0.784 against 0.790 is 5 sentences in 872, and
  agreement is the same. Quantizing the embedding Gather stores the word
  embeddings in int8 and shrinks the file 2.5x.
* Speed (tinybert-4l-312, per-call CPU time, 1 thread): int8 took 2.8 ms against
  4.5 ms for fp32 at 24 tokens, and 12.7 against 19.4 at 128. Per-channel, per-tensor,
  ``reduce_range`` and quantizing the Gather were all within ±3% of each other.

``onnxruntime.quantization.quant_pre_process`` is not run: its symbolic shape
inference fails on dynamo graphs ("Incomplete symbolic shape inference"), and with
it skipped the result was no faster.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from .onnx_runtime import EXPORT_CARD, ONNX_FILE, graph_bytes

# head -> the output fields exported, in order (transformers' names)
HEADS: dict[str, tuple[str, ...]] = {
    "SequenceClassification": ("logits",),
    "QuestionAnswering": ("start_logits", "end_logits"),
    "MaskedLM": ("logits",),
    "CausalLM": ("logits",),  # no KV cache: full-sequence logits (B, T, V)
}
INPUT_ORDER: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZATIONS: tuple[str | None, ...] = (None, "int8")
FP32_TOLERANCE = 1e-3
# (batch, length) of the random parity inputs; lengths are capped by the model's positions
PARITY_SHAPES: tuple[tuple[int, int], ...] = ((1, 1), (1, 9), (2, 24), (4, 61), (1, 128))
# quantize_dynamic's settings (QInt8 weights), chosen by measurement: see the module docstring
INT8_SETTINGS: dict = {"per_channel": True, "reduce_range": True, "op_types": ("MatMul", "Gather")}
DEFAULT_TEXTS: tuple[str, ...] = (
    "a gripping, beautifully acted film",
    "the plot is dull and the jokes fall flat",
    "it was fine.",
    "I would not watch it again, not even for free",
    "one of the best things I have seen this year, and I have seen a lot",
    "meh",
)
DEFAULT_QA: tuple[tuple[str, str], ...] = (
    ("Where is the tower?", "The tower stands in Paris, next to the river."),
    ("Who wrote the letter?", "The letter was written by Anna in 1901 and sent to her brother."),
    ("How long is the bridge?", "Built in stone, the bridge is 300 metres long."),
)


class ExportError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def export_onnx(
    model_dir: str,
    output_dir: str,
    quantize: str | None = None,
    head: str = "SequenceClassification",
    sample_texts: list | None = None,
    eval_fn: Callable | None = None,
) -> dict:
    """Export ``model_dir`` (a folder, alias or Hub id) to ``output_dir``; returns export.json's dict.

    ``quantize``: None (fp32) or ``"int8"`` (dynamic quantization of the weights).
    ``sample_texts``: texts for the argmax agreement (for QA, ``(question, context)``
    pairs; plain strings are encoded alone). None uses a few built-in ones.
    ``eval_fn(model) -> dict``, if given, is called with the PyTorch model and with the
    exported :class:`hub.onnx_runtime.OnnxModel`. It can be a task's metrics on an eval
    set. Both results are stored under ``"eval"``.
    """
    from transformers import AutoTokenizer

    from .models import resolve_model_ref
    from .onnx_runtime import OnnxModel

    auto = _auto_class(head)
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}: use None (fp32) or 'int8'")
    src = resolve_model_ref(model_dir)
    out = Path(output_dir).expanduser().resolve()
    if Path(src).is_dir() and Path(src).resolve() == out:
        raise ValueError(f"output folder {out} is the model folder itself: export into a new folder")
    # eager attention: its graph has no SDPA decomposition (NaN guards, mask slicing) and runs faster in ORT
    model, info = auto.from_pretrained(src, use_safetensors=True, attn_implementation="eager", output_loading_info=True)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(src)
    names = input_names(tokenizer, model)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (ONNX_FILE, ONNX_FILE + ".data"):
        (out / stale).unlink(missing_ok=True)

    n_params = sum(p.numel() for p in model.parameters())
    large = n_params * 4 > 1.5 * 2**30  # protobuf's 2 GiB limit: weights go to model.onnx.data
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp:
        fp32_path = Path(tmp) / ONNX_FILE
        export_graph(model, names, HEADS[head], fp32_path, external_data=large)
        fp32_bytes = graph_bytes(fp32_path)
        if quantize == "int8":
            quantize_int8(fp32_path, out / ONNX_FILE, external_data=large)
        else:
            for f in Path(tmp).iterdir():
                shutil.move(str(f), str(out / f.name))

    tokenizer.save_pretrained(str(out))
    model.config.save_pretrained(str(out))
    run_card = Path(src) / "run.json"
    if run_card.is_file():
        shutil.copyfile(run_card, out / "run.json")

    onnx_model = OnnxModel.from_dir(str(out))
    texts = list(sample_texts) if sample_texts is not None else list(DEFAULT_QA if head == "QuestionAnswering" else DEFAULT_TEXTS)
    card = {
        "source": str(model_dir),
        "head": head,
        "exporter": "torch.onnx.export(dynamo=True)",
        "versions": versions(),
        "opset": opset(out / ONNX_FILE),
        "inputs": list(names),
        "outputs": list(HEADS[head]),
        "quantization": None if quantize is None else {"method": "onnxruntime.quantize_dynamic", "weight_type": "QInt8",
                                                      **{k: list(v) if isinstance(v, tuple) else v for k, v in INT8_SETTINGS.items()}},
        "parameters": n_params,
        # weights the checkpoint lacked (a head transformers initialised randomly): fine for timing, not for quality
        "missing_weights": sorted(info.get("missing_keys", [])),
        "parity": parity(model, onnx_model, tokenizer, head, texts),
        "size_bytes": graph_bytes(out / ONNX_FILE),
        "fp32_size_bytes": fp32_bytes,
    }
    if eval_fn is not None:
        card["eval"] = {"pytorch": eval_fn(model), "onnx": eval_fn(onnx_model)}
    (out / EXPORT_CARD).write_text(json.dumps(card, indent=2) + "\n")
    if quantize is None and not card["parity"]["max_abs_diff"] <= FP32_TOLERANCE:
        raise ExportError(
            f"the ONNX graph in {out} differs from PyTorch by {card['parity']['max_abs_diff']:.3g} "
            f"(> {FP32_TOLERANCE}); see {out / EXPORT_CARD}"
        )
    return card


def _auto_class(head: str):
    if head not in HEADS:
        raise ValueError(f"ONNX export does not support the head {head!r}; supported: {', '.join(HEADS)}")
    import transformers

    return getattr(transformers, f"AutoModelFor{head}")


def input_names(tokenizer, model) -> tuple[str, ...]:
    """The graph's inputs: those of ``INPUT_ORDER`` that the tokenizer produces and the
    model's forward accepts (DistilBERT and Llama have no token_type_ids)."""
    import inspect

    accepted = inspect.signature(model.forward).parameters
    produced = set(tokenizer.model_input_names) | {"input_ids", "attention_mask"}
    names = tuple(n for n in INPUT_ORDER if n in produced and n in accepted)
    if "input_ids" not in names:
        raise ValueError(f"{type(model).__name__} takes no input_ids: only text models can be exported")
    return names


class _ByName(torch.nn.Module):
    """Positional int64 inputs (in ``names`` order) -> the head's output fields, by name."""

    def __init__(self, model, names: tuple[str, ...], outputs: tuple[str, ...]):
        super().__init__()
        self.model, self.names, self.outputs = model, names, outputs
        self.no_cache = getattr(model.config, "use_cache", None) is not None

    def forward(self, *inputs):
        kwargs = dict(zip(self.names, inputs))
        if self.no_cache:  # a decoder must not return a KV cache: the graph has logits only
            kwargs["use_cache"] = False
        result = self.model(**kwargs, return_dict=True)
        return tuple(getattr(result, name) for name in self.outputs)


def export_graph(model, names: tuple[str, ...], outputs: tuple[str, ...], path: Path, external_data: bool = False) -> None:
    """Write ``model`` as an ONNX graph with dynamic batch and sequence axes.

    The example input is (2, 8) with the second row padded: a size of 1 would be
    specialised by torch.export, and the padding keeps the masking path in the graph.
    """
    wrapped = _ByName(model, names, outputs).eval()  # eval before export: the exporter restores this mode
    ids = torch.full((2, 8), 5, dtype=torch.long).clamp(max=model.config.vocab_size - 1)
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    example["attention_mask"][1, 6:] = 0
    # the position table bounds the sequence: declaring it spares torch.export a failed first attempt
    max_len = getattr(model.config, "max_position_embeddings", None)
    batch = torch.export.Dim("batch", min=1)
    seq = torch.export.Dim("sequence", min=1, max=max_len) if isinstance(max_len, int) and max_len > 8 else torch.export.Dim("sequence", min=1)
    logger = logging.getLogger("torch.onnx")  # "torchvision is not installed" noise on every export
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped, tuple(example[n] for n in names), str(path), dynamo=True, verbose=False,
                input_names=list(names), output_names=list(outputs),
                dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),  # one spec per positional input
                external_data=external_data,
            )
    finally:
        logger.setLevel(level)


def quantize_int8(src: Path, dst: Path, external_data: bool = False) -> None:
    """Dynamic int8 quantization with ``INT8_SETTINGS`` (QInt8 weights, uint8 activations)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8,
        per_channel=INT8_SETTINGS["per_channel"], reduce_range=INT8_SETTINGS["reduce_range"],
        op_types_to_quantize=list(INT8_SETTINGS["op_types"]), use_external_data_format=external_data,
    )


def opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__}


# ---------------------------------------------------------------- parity


def random_inputs(names: tuple[str, ...], vocab_size: int, max_len: int, padding_side: str = "right",
                  type_vocab: int = 2, seed: int = 0) -> list[dict]:
    """Seeded encodings, one per ``PARITY_SHAPES`` size (lengths capped at ``max_len``):
    {name: (B, T) int64}. Row r > 0 of a batch loses ``T*r // (2B)`` tokens to padding, on
    the tokenizer's padding side. With two token types, the second half of each row is type 1."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for b, t in PARITY_SHAPES:
        t = min(t, max_len)
        x = {"input_ids": torch.randint(0, vocab_size, (b, t), generator=g),
             "attention_mask": torch.ones(b, t, dtype=torch.long),
             "token_type_ids": torch.zeros(b, t, dtype=torch.long)}
        for row in range(1, b):
            pad = t * row // (2 * b)
            if pad and padding_side == "left":
                x["attention_mask"][row, :pad] = 0
            elif pad:
                x["attention_mask"][row, t - pad:] = 0
        if type_vocab > 1:
            x["token_type_ids"][:, t // 2:] = 1
        batches.append({n: x[n] for n in names})
    return batches


def max_abs_diff(outputs_T: tuple, outputs_O: tuple, mask: torch.Tensor | None = None) -> float:
    """Largest |a - b| over pairs of outputs; inf when the ONNX side is not finite.

    With ``mask`` (B, T), the outputs are per token, (B, T) or (B, T, V), and padded
    positions (mask 0) are ignored: neither model defines them.
    """
    worst = 0.0
    for a, b in zip(outputs_T, outputs_O):
        d = (a.float() - b.float()).abs()
        if mask is not None:
            keep = mask.bool().reshape(mask.shape + (1,) * (d.dim() - 2))
            d = torch.where(keep, d, torch.zeros((), dtype=d.dtype))
        if d.numel():
            if not torch.isfinite(d).all():
                return math.inf
            worst = max(worst, float(d.max()))
    return worst


def predictions(head: str, outputs: tuple, mask: torch.Tensor) -> list:
    """Argmax predictions: one per row for classification (the label) and QA ((start,
    end), padding excluded); one per real token for the language-model heads (the token id)."""
    if head == "SequenceClassification":
        return outputs[0].argmax(-1).tolist()
    if head == "QuestionAnswering":
        low = torch.finfo(torch.float32).min
        start, end = (o.float().masked_fill(mask == 0, low).argmax(-1).tolist() for o in outputs)
        return list(zip(start, end))
    return outputs[0].argmax(-1)[mask.bool()].tolist()


@torch.inference_mode()
def parity(model, onnx_model, tokenizer, head: str, texts: list) -> dict:
    """{max_abs_diff, agreement, n, shapes} of ``onnx_model`` against ``model``.

    The random batches of :func:`random_inputs` feed ``max_abs_diff``. Each sample text
    is encoded alone (no padding: the prediction a user would see) and feeds both numbers.
    """
    if not texts:
        raise ValueError("the parity check needs at least one sample text")
    fields = HEADS[head]
    per_token = head != "SequenceClassification"
    cfg = model.config
    max_len = min(128, getattr(cfg, "max_position_embeddings", None) or 128)
    names = onnx_model.input_names
    worst, shapes = 0.0, []
    for x in random_inputs(names, cfg.vocab_size, max_len, tokenizer.padding_side,
                           getattr(cfg, "type_vocab_size", 1) or 1):
        pt, ox = _run_both(model, onnx_model, x, fields)
        worst = max(worst, max_abs_diff(pt, ox, x["attention_mask"] if per_token else None))
        shapes.append(list(x["input_ids"].shape))
    agree = total = 0
    for text in texts:
        args = tuple(text) if isinstance(text, (tuple, list)) else (text,)
        enc = tokenizer(*args, truncation=True, max_length=max_len, return_tensors="pt")
        x = {n: enc[n] if n in enc else torch.zeros_like(enc["input_ids"]) for n in names}
        pt, ox = _run_both(model, onnx_model, x, fields)
        worst = max(worst, max_abs_diff(pt, ox, x["attention_mask"] if per_token else None))
        p_T, p_O = predictions(head, pt, x["attention_mask"]), predictions(head, ox, x["attention_mask"])
        agree += sum(a == b for a, b in zip(p_T, p_O))
        total += len(p_T)
    return {"max_abs_diff": worst, "agreement": agree / total, "n": total, "shapes": shapes}


def _run_both(model, onnx_model, x: dict, fields: tuple[str, ...]) -> tuple[tuple, tuple]:
    """The named outputs of the PyTorch model and of the ONNX model on the same encoding."""
    kwargs = dict(x)
    if getattr(model.config, "use_cache", None) is not None:
        kwargs["use_cache"] = False
    result_T, result_O = model(**kwargs, return_dict=True), onnx_model(**x)
    pt = tuple(getattr(result_T, f) for f in fields)
    ox = tuple(getattr(result_O, f) for f in fields)
    for f, a, b in zip(fields, pt, ox):
        if a.shape != b.shape:
            raise ExportError(f"output {f}: the ONNX shape {tuple(b.shape)} differs from PyTorch's {tuple(a.shape)}")
    return pt, ox
