"""Which data folder to use when the user names none: the local one, or the
samples embedded in the package.

``hub/samples/`` (made by ``scripts/make_samples.py``, sources and licences in
its README.md) mirrors the layout of the full data folder (``sst2/...``,
``squad/...``, ``wikitext-2/...``), so it is a valid ``--data-dir`` as is. A
fresh machine has no ``../shared/data`` and maybe no network: there the app's
Quick start and the CLI still run, on the embedded sample, and say so.

No torch, no side effects: only ``Path`` checks and line counts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository (the package is run in place)
ENV_VAR = "HUB_DATA_DIR"
FALLBACK = "../shared/data"  # relative to the repository root


def samples_dir() -> Path:
    """The embedded sample folder, ``hub/samples`` inside the package."""
    return Path(__file__).resolve().with_name("samples")


def missing_files(root: str | Path, local_files: dict) -> list[str]:
    """The task's relative paths (``{"train": "sst2/train.tsv", ...}`` values)
    that are absent or empty under ``root``; ``[]`` when it has them all."""
    root = Path(root)
    return [rel for rel in local_files.values() if not (root / rel).is_file() or (root / rel).stat().st_size == 0]


def count_rows(path: str | Path) -> int:
    """Examples in a data file: table rows (header excluded) for CSV/TSV, lines
    for JSON lines and plain text, questions for SQuAD JSON."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        return sum(len(p["qas"]) for a in data["data"] for p in a["paragraphs"])
    with open(path, encoding="utf-8") as fh:
        n = sum(1 for line in fh if line.strip())
    return n - 1 if suffix in (".csv", ".tsv") else n


def describe_sample(local_files: dict) -> str:
    """One line naming the embedded sample and its size, e.g.
    ``embedded sample (4,000 train + 872 eval examples; hub/samples/README.md)``."""
    root = samples_dir()
    counts = " + ".join(f"{count_rows(root / rel):,} {split}" for split, rel in local_files.items())
    return f"embedded sample ({counts} examples; hub/samples/README.md)"


def _resolve(folder: str | Path, base: Path) -> Path:
    path = Path(folder).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def choose_data_dir(local_files: dict, preferred: str | Path | None = None,
                    fallback: str | Path = FALLBACK) -> tuple[Path, str]:
    """``(folder, description)`` of the data folder to read the task's
    ``local_files`` from, first of:

    1. ``preferred`` (a folder the user named; relative to the working
       directory) when it holds every file;
    2. ``fallback`` (default ``../shared/data``, relative to the repository root)
       when it holds every file;
    3. the embedded sample, with a description that says so and, when
       ``preferred`` was given but lacks files, which ones.
    """
    if not local_files:
        raise ValueError("this task has no local file layout: give its files explicitly")
    note = ""
    if preferred:
        path = _resolve(preferred, Path.cwd())
        missing = missing_files(path, local_files)
        if not missing:
            return path, f"local data folder {path}"
        note = f"; {path} lacks {', '.join(missing)}"
    path = _resolve(fallback, ROOT)
    if not missing_files(path, local_files):
        return path, f"local data folder {path}"
    embedded = samples_dir()
    missing = missing_files(embedded, local_files)
    if missing:
        raise FileNotFoundError(
            f"no data for this task: neither {path} nor the embedded sample {embedded} has {', '.join(missing)}"
        )
    return embedded, describe_sample(local_files) + note


def default_data_dir(local_files: dict | None = None, env_var: str = ENV_VAR,
                     fallback: str | Path = FALLBACK) -> tuple[Path, str]:
    """The data folder when the user named none: ``$HUB_DATA_DIR`` if set and
    complete, else ``../shared/data`` if complete, else the embedded sample.
    ``local_files`` defaults to SST-2's (``hub.tasks.TASKS["sst2"].local_files``)."""
    if local_files is None:
        from .tasks import TASKS

        local_files = TASKS["sst2"].local_files
    return choose_data_dir(local_files, os.environ.get(env_var) or None, fallback)
