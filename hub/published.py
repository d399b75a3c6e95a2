"""Published teacher/student pairs from the Hugging Face Hub, for Compare when online.

A visitor of a fresh server (a Space, say) has no trained models yet; these
pairs let them compare real, published models without training anything. The
list is short and curated: each pair shares one tokenizer (the student was
distilled from a teacher of the same vocabulary), so both read exactly the same
tokens and a difference in their answers is the models', not the tokenizers'.

Offline the list is empty. Whether the Hub is reachable is decided once per
process, on first use (never at import), with a short timeout:
:func:`hub_reachable`. Models load through ``hub.inference.load_predictor``
like any other (``hub.models.load_model``: safetensors only, no remote code; a
repository whose safetensors weights live in the Hub's conversion pull request
is read from there by transformers). No torch here.
"""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field

REACH_TIMEOUT_S = 3.0
KEY_PREFIX = "hub:"  # the Compare key of a published model: "hub:<repo id>"
SST2_LABELS = {0: "negative", 1: "positive"}  # GLUE's order; both published models use it under other names


@dataclass(frozen=True)
class PublishedPair:
    """One teacher/student pair of Hub models for a task, and why they belong together."""

    task: str
    teacher: str  # Hub repo id
    student: str
    why: str
    id2label: dict = field(default_factory=dict)  # classification: label names both models are read with

    @property
    def label(self) -> str:
        return f"{self.teacher} → {self.student}"


PAIRS: dict[str, tuple[PublishedPair, ...]] = {
    "squad": (
        PublishedPair(
            "squad", "deepset/bert-base-cased-squad2", "distilbert/distilbert-base-cased-distilled-squad",
            "both cased WordPiece with bert-base-cased's 28,996-token vocabulary (DistilBERT-cased was distilled "
            "from bert-base-cased); the teacher was trained on SQuAD 2.0 and can answer \"no answer\", the student "
            "on SQuAD 1.1 and always answers",
        ),
        PublishedPair(
            "squad", "csarron/bert-base-uncased-squad-v1", "distilbert/distilbert-base-uncased-distilled-squad",
            "both uncased WordPiece with bert-base-uncased's 30,522-token vocabulary, both fine-tuned on SQuAD 1.1",
        ),
    ),
    "sst2": (
        PublishedPair(
            "sst2", "textattack/bert-base-uncased-SST-2", "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            "both uncased WordPiece with bert-base-uncased's vocabulary (DistilBERT-uncased was distilled from "
            "bert-base-uncased), both fine-tuned on SST-2; their labels (LABEL_0/1, NEGATIVE/POSITIVE) are read "
            "as negative/positive",
            id2label=SST2_LABELS,
        ),
    ),
}


def _offline_by_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() not in ("0", "", "false", "no", "off")


def _probe(timeout: float = REACH_TIMEOUT_S) -> bool:
    """One HEAD request to the Hub's endpoint (``HF_ENDPOINT``): True when it answers
    (a 4xx answer is still the Hub; a 5xx, a timeout or no route is not)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(endpoint + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310 - the Hub's own endpoint
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError, ValueError):
        return False


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """Whether the Hub answers, decided once per process (``hub_reachable.cache_clear()``
    decides again): False when ``HF_HUB_OFFLINE`` is set, without trying."""
    return not _offline_by_env() and _probe()


def pairs(task: str) -> tuple[PublishedPair, ...]:
    """The task's published pairs when the Hub is reachable, else ()."""
    if task not in PAIRS:
        return ()
    return PAIRS[task] if hub_reachable() else ()


def model_key(repo_id: str) -> str:
    return KEY_PREFIX + repo_id


def models(task: str) -> dict[str, dict]:
    """The published models of the task's pairs, as Compare lists models: key
    (``hub:<repo id>``) -> {path (the repo id), role, teacher, created_at, status,
    published: True, id2label}. Empty offline."""
    out: dict[str, dict] = {}
    for pair in pairs(task):
        for repo, role in ((pair.teacher, "teacher"), (pair.student, "student")):
            out.setdefault(model_key(repo), {
                "path": repo, "role": role, "teacher": pair.teacher if role == "student" else None,
                "created_at": "", "status": "finished", "published": True, "id2label": dict(pair.id2label) or None,
            })
    return out
