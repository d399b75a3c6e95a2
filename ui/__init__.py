"""The Gradio UI of Distill Hub: one module per tab (``distill``, ``compare``,
``leaderboard``), one Compare section per task kind (``compare_<kind>``) and the
shareable links (``links``). ``app.py`` composes them.

Each tab module has ``build() -> dict`` of its components (names -> component)
and ``wire(...)`` that attaches thin handlers; handlers return dicts keyed by
component (built from dicts keyed by name with :func:`keyed`), never long tuples.
What is not UI (model lists, sorting, Pareto, redaction, wording) lives in
``hub.views``. This module holds what every tab shares: the default task, the
input limits and how a refusal is reported.
"""

from __future__ import annotations

import html
import logging
from typing import Any

import gradio as gr

from hub.config import JobSettings, spec
from hub.tasks import TASKS

DEFAULT_TASK: str = spec(JobSettings, "task")["default"]
ALL = "All"
MAX_TEXT_CHARS = 2_000
MAX_BATCH_LINES = 200
PRIVATE = {"api_visibility": "private"}  # UI events are not API endpoints

log = logging.getLogger("hub.app")

# the page's fields: name -> label (components and messages use the same words)
LABELS = {
    "task": "Task", "teacher": "Teacher", "student": "Student", "layers": "layers", "hidden": "hidden size",
    "heads": "attention heads", "ffn": "feed-forward size", "prune_ffn": "prune feed-forward to",
    "source": "Data", "local_name": "Local data set",
    "hub_id": "Hub data set id", "hub_config": "config", "upload_train": "Training file",
    "upload_eval": "Evaluation file", "text_column": "text column", "label_column": "label column",
    "finetune_samples": "fine-tune samples", "train_samples": "distillation samples",
    "eval_samples": "eval samples", "finetune_epochs": "fine-tune epochs", "epochs": "epochs per stage",
    "batch_size": "batch size", "finetune_learning_rate": "fine-tune learning rate",
    "learning_rate": "learning rate", "max_length": "max length (tokens)", "temperature": "temperature",
    "alpha": "alpha", "stages": "stages", "name": "Run name", "augment": "data augmentation (copies per example)",
    "cloze": "cloze questions (per paragraph)", "cloze_noise": "noisy cloze share",
    "negatives": "made negatives (per question)", "precision": "arithmetic",
    "calibrate_null": "calibrate \"no answer\" to the teacher",
    "attention_dropout": "attention dropout",
}
# words of pipeline messages (CLI flags, data keys) -> the page's fields
MESSAGE_LABELS = {**LABELS, "max_train_samples": LABELS["train_samples"],
                  "max_eval_samples": LABELS["eval_samples"], "data_dir": LABELS["local_name"],
                  "train_file": LABELS["upload_train"], "eval_file": LABELS["upload_eval"],
                  "dataset": LABELS["hub_id"], "dataset_config": LABELS["hub_config"]}


def esc(value) -> str:
    """Text for HTML or Markdown content: ``<``, ``>`` and ``&`` escaped, quotes left as they are."""
    return html.escape(str(value), quote=False)


def implemented_tasks() -> list[str]:
    """Every task the pipeline implements, the default first."""
    names = [n for n, t in TASKS.items() if t.implemented]
    return sorted(names, key=lambda n: n != DEFAULT_TASK)


def refuse(message: str) -> gr.Error:
    """A user error: one log line, no traceback, the message shown as plain text."""
    log.info("refused: %s", message)
    return gr.Error(message, print_exception=False)


def fault(what: str, exc: BaseException) -> gr.Error:
    """A real fault: the full traceback goes to the log, the page gets one sentence."""
    log.error("%s failed", what, exc_info=exc)
    return gr.Error(f"{what} failed ({type(exc).__name__}); the server log has the details.", print_exception=False)


def keyed(components: dict[str, Any], updates: dict[str, Any]):
    """``{name: value}`` -> ``{component: value}`` for a handler's return; no updates is
    ``gr.skip()`` (gradio reads an empty dict as one value)."""
    return {components[k]: v for k, v in updates.items()} or gr.skip()


def as_warning(fn):
    """Run a UI handler; a refusal becomes one warning toast and changes nothing
    (the earlier result stays instead of an error badge on every output)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as exc:
            gr.Warning(exc.message)
            return gr.skip()
    return wrapper
