"""Trained runs on disk: a model folder with its ``run.json``. One truth per run:
the status in ``run.json`` is what every view shows, and it is written atomically.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from .paths import models_dir, write_text_atomic

FINAL = ("finished", "stopped", "failed")


def utc_now() -> str:
    """The time a run card (or a job) records: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_card(folder: str | Path) -> dict | None:
    """A folder's run card, or None when it has none (or it is unreadable)."""
    try:
        return json.loads((Path(folder) / "run.json").read_text())
    except (OSError, ValueError):
        return None


def write_card(folder: str | Path, card: dict) -> None:
    """Write run.json atomically (a crash never leaves half a file)."""
    write_text_atomic(Path(folder) / "run.json", json.dumps(card, indent=2, default=str))


def mark_interrupted(folder: str | Path, status: str, reason: str) -> bool:
    """Set a run that still says ``running`` to ``status`` (``failed`` after a crash or
    a server restart, ``stopped`` after a stop), keeping its checkpoints; returns
    whether the card changed."""
    card = read_card(folder)
    if card is None or card.get("status") in FINAL:
        return False
    card.update(status=status, error=reason)
    write_card(folder, card)
    return True


def delete_run(folder: str | Path, store=None) -> dict:
    """Delete a model folder the hub wrote (it has a run.json) and its leaderboard
    rows. Refuses other folders, so a typo never deletes a user's files."""
    from .leaderboard import LeaderboardStore

    folder = Path(folder).expanduser()
    if not folder.is_dir() or not (folder / "run.json").is_file():
        raise ValueError(f"{folder} is not a model folder written by the hub (no run.json)")
    folder = folder.resolve()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    rows = (store or LeaderboardStore()).delete_model(str(folder))
    shutil.rmtree(folder)
    return {"deleted": str(folder), "freed_mb": round(size / 2**20, 1), "leaderboard_rows": rows}


def under_models_dir(folder: str | Path) -> bool:
    """Whether ``folder`` lies inside the hub's models folder (the app may delete only those)."""
    try:
        Path(folder).resolve().relative_to(models_dir().resolve())
        return True
    except ValueError:
        return False
