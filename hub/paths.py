"""Where the hub keeps its state: the leaderboard store and trained models.

Everything lives under one data folder, ``HUB_HOME`` when set, otherwise the
user's cache directory (``$XDG_CACHE_HOME/distill-hub`` or
``~/.cache/distill-hub``). It is deliberately outside the working directory and
the temp dir, so that a web server started in the repository never serves it.
Nothing is created at import; callers create folders when they write
(:func:`write_text_atomic` for every text file the hub keeps).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` through a temp file and a
    rename: a reader, or a run killed midway, never sees half a file. The temp name is
    unique per process and thread and ends in ``.tmp`` (uploads skip those)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def hub_home() -> Path:
    """The data folder (not created here)."""
    env = os.environ.get("HUB_HOME")
    if env:
        return Path(env).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return (Path(cache) / "distill-hub").resolve()


def models_dir() -> Path:
    """Folder holding one sub-folder per trained model (teacher or student)."""
    return hub_home() / "models"


def leaderboard_path() -> Path:
    """The SQLite file of the leaderboard."""
    return hub_home() / "leaderboard.sqlite"


def onnx_cache_dir(model_folder: str | Path, quantization: str) -> Path:
    """Where ONNX exports of a model folder are cached (``bench --runtime onnx``
    writes them, Compare offers them): ``cache/onnx/<name>-<hash of the
    folder's path>-<fp32|int8>``."""
    import hashlib

    folder = Path(model_folder).resolve()
    key = hashlib.sha1(str(folder).encode()).hexdigest()[:12]
    return hub_home() / "cache" / "onnx" / f"{folder.name}-{key}-{quantization}"


def teacher_cache_dir() -> Path:
    """Where the app's jobs keep teachers' cached logits between runs
    (``hub.teacher_cache``; least recently used files go beyond its disk budget)."""
    return hub_home() / "cache" / "teacher-logits"
