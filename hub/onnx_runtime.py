"""Serve an exported folder (``hub.export``) through ONNX Runtime, looking enough
like a transformers model for the benchmark and the demo.

    model = OnnxModel.from_dir("runs/student-onnx", threads=2)
    out = model(**tokenizer(texts, padding=True, return_tensors="pt"))
    out.logits            # torch.Tensor (B, C), as the PyTorch model's output

What it offers, what it does not:

* ``model.config`` is the transformers config of the exported model (labels,
  max_position_embeddings, ...).
* ``model(**encoding)`` takes torch tensors or numpy arrays. A missing
  ``attention_mask`` means all ones, and a missing ``token_type_ids`` all zeros, as in
  BERT. A key that the graph does not take is a ``TypeError``, as an unexpected
  keyword argument would be. The result has the PyTorch output's attribute names
  (``.logits``, or ``.start_logits``/``.end_logits``) as CPU float32 tensors, and
  ``getattr(out, "hidden_states", None)`` is None.
* ``model.device`` is ``torch.device("cpu")``: callers should read it rather than
  ``next(model.parameters()).device``. ``parameters()`` still yields one empty CPU
  tensor, so that idiom works. It contributes 0 to a parameter count, so the real count
  is ``model.num_parameters()`` (from export.json).
* No training, gradients, hidden states or attentions: the graph has the head's
  outputs only.

Threads: the session runs ``intra_op_num_threads=threads`` and one inter-op
thread with every graph optimisation. After a call, ONNX Runtime's worker threads
spin-wait by default, and PyTorch's OpenMP threads do much the same. When both run in
one process, taking turns call by call (the benchmark's interleaved protocol), each
steals the cores the other needs. Measured on the 2-core AMD EPYC with 2 threads,
tinybert-4l-312, batch 1, 24 tokens, p50 of 200 calls:

| | torch eager | ORT fp32 | ORT int8 |
|---|---|---|---|
| interleaved, ORT spinning | 30.9 ms | 9.2 ms | 6.8 ms |
| interleaved, no spinning | 7.0 ms | 4.1 ms | 3.1 ms |
| each alone, no spinning | 7.0 ms | 5.2 ms | 3.1 ms |
| each alone, ORT spinning | | 3.2 ms | 2.4 ms |

So ``spin=False`` is the default. A process that serves only ONNX models can pass
``spin=True`` for the lower latency of the last row.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

ONNX_FILE = "model.onnx"
EXPORT_CARD = "export.json"
DEFAULTS = {"attention_mask": 1, "token_type_ids": 0}  # value of an input the caller left out


def graph_bytes(path) -> int:
    """Bytes of a graph file on disk, with its external weights file (``<file>.data``) if any."""
    path = Path(str(path))
    data = Path(str(path) + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def session_options(threads: int, spin: bool = False):
    """The CPU settings of every hub ONNX Runtime session: ``threads`` intra-op
    threads, sequential execution, all graph optimisations, errors-only logging;
    worker threads spin between calls only with ``spin`` (a process serving only
    this model) and sleep otherwise (a process that also runs PyTorch)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def is_onnx_dir(path) -> bool:
    """True for a folder holding ``model.onnx`` and ``config.json`` (what ``export_onnx`` writes)."""
    p = Path(str(path)).expanduser()
    return (p / ONNX_FILE).is_file() and (p / "config.json").is_file()


class OnnxOutput(dict):
    """Named outputs, read as attributes (``out.logits``) or keys (``out["logits"]``),
    like transformers' ``ModelOutput``. A missing name raises AttributeError, so
    ``getattr(out, "hidden_states", None)`` is None."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_tuple(self) -> tuple:
        return tuple(self.values())


class OnnxModel:
    """An ``onnxruntime.InferenceSession`` over an exported folder, called like a model."""

    device = torch.device("cpu")
    training = False

    def __init__(self, session, config, folder: Path, card: dict | None = None, threads: int = 1, spin: bool = False):
        self.session, self.config, self.folder = session, config, folder
        self.threads, self.spin = threads, spin  # the session's settings (``session_options``)
        self.card = card or {}
        self.input_names = tuple(i.name for i in session.get_inputs())
        self.output_names = tuple(o.name for o in session.get_outputs())
        self.name_or_path = str(folder)

    @classmethod
    def from_dir(cls, path, threads: int | None = None, spin: bool = False) -> OnnxModel:
        """Load ``path/model.onnx`` on the CPU with ``threads`` intra-op threads
        (default: the cores this process may use)."""
        import onnxruntime as ort
        from transformers import AutoConfig

        from .hardware import cpu_cores

        folder = Path(str(path)).expanduser().resolve()
        if not is_onnx_dir(folder):
            raise FileNotFoundError(f"{folder} is not an exported ONNX folder (needs {ONNX_FILE} and config.json); "
                                    "make one with `python -m hub export`")
        threads = cpu_cores() if threads is None else int(threads)
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        session = ort.InferenceSession(str(folder / ONNX_FILE), sess_options=session_options(threads, spin),
                                       providers=["CPUExecutionProvider"])
        card_path = folder / EXPORT_CARD
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
        return cls(session, AutoConfig.from_pretrained(str(folder)), folder, card, threads=threads, spin=spin)

    def __call__(self, **encoding) -> OnnxOutput:
        """``encoding``: {name: (B, T) integer tensor or array} -> {output name: float32 tensor}."""
        results = self.session.run(list(self.output_names), self.feed(**encoding))
        return OnnxOutput((n, torch.from_numpy(np.asarray(r))) for n, r in zip(self.output_names, results))

    def feed(self, **encoding) -> dict:
        """The session's int64 input arrays for ``encoding`` (defaults for inputs it lacks)."""
        unknown = sorted(set(encoding) - set(self.input_names))
        if unknown:
            raise TypeError(f"the ONNX graph in {self.folder} takes {', '.join(self.input_names)}; "
                            f"got unexpected input(s) {', '.join(unknown)}")
        if "input_ids" not in encoding:
            raise TypeError("input_ids is required")
        ids = _as_int64(encoding["input_ids"])
        feed = {}
        for name in self.input_names:
            if name in encoding:
                feed[name] = _as_int64(encoding[name])
            elif name in DEFAULTS:
                feed[name] = np.full(ids.shape, DEFAULTS[name], dtype=np.int64)
            else:
                raise TypeError(f"missing input {name}")
        return feed

    forward = __call__

    def eval(self) -> OnnxModel:
        return self

    def parameters(self):
        """One empty CPU tensor, so ``next(model.parameters()).device`` works; the real
        count is :meth:`num_parameters`."""
        yield torch.empty(0)

    def num_parameters(self) -> int | None:
        """Parameters of the exported PyTorch model (from export.json), or None if unknown."""
        return self.card.get("parameters")

    def size_bytes(self) -> int:
        """Bytes of the graph on disk (with its external weights file, if any)."""
        return graph_bytes(self.folder / ONNX_FILE)

    def __repr__(self) -> str:
        return f"OnnxModel({self.folder}, inputs={self.input_names}, outputs={self.output_names})"


def _as_int64(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype != np.int64:
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"token inputs must be integers, got {array.dtype}")
        array = array.astype(np.int64)
    return array
