"""Task records: what a task reads, which head it trains, how it is scored.

A task is a small data record (lm-evaluation-harness style); the pipeline reads
its fields instead of branching on task names. Classification is implemented;
``qa`` and ``generation`` kinds are declared so the app and the CLI already have
their seams (``head``, ``metrics``, demo ``examples``) and later work fills in the
data loaders and inference code without touching the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "classification" | "qa" | "generation"
    head: str  # transformers Auto class suffix: "SequenceClassification", ...
    metrics: tuple[str, ...]  # first one is the headline metric, used for retention
    description: str
    text_column: str = "sentence"
    label_column: str = "label"
    # local layout under --data-dir: {"train": "sst2/train.tsv", "eval": "sst2/validation.tsv"}
    local_files: dict = field(default_factory=dict)
    # online fallback: (dataset id, config, train split, eval split)
    hub_dataset: tuple | None = None
    label_names: tuple[str, ...] | None = None
    examples: tuple[str, ...] = ()
    implemented: bool = True


TASKS: dict[str, Task] = {
    "sst2": Task(
        name="sst2",
        kind="classification",
        head="SequenceClassification",
        metrics=("accuracy", "f1"),
        description="Binary sentiment of movie-review sentences (GLUE SST-2).",
        local_files={"train": "sst2/train.tsv", "eval": "sst2/validation.tsv"},
        hub_dataset=("glue", "sst2", "train", "validation"),
        label_names=("negative", "positive"),
        examples=(
            "A gorgeous, witty, seductive movie.",
            "The plot is paper-thin and the acting is worse.",
            "It's not the best film of the year, but it is never boring.",
            "an utterly forgettable and mean-spirited remake",
        ),
    ),
    "classification": Task(
        name="classification",
        kind="classification",
        head="SequenceClassification",
        metrics=("accuracy", "f1"),
        description="Any text classification from your own CSV/TSV/JSONL/Parquet files.",
        examples=("Type a text to classify.",),
    ),
    "squad": Task(
        name="squad",
        kind="qa",
        head="QuestionAnswering",
        metrics=("exact_match", "f1"),
        description="Extractive question answering (SQuAD): question + context -> answer span.",
        text_column="question",
        label_column="answers",
        local_files={"eval": "squad/dev-subset-v2.0.json"},
        hub_dataset=("squad", None, "train", "validation"),
        implemented=False,
    ),
    "generation": Task(
        name="generation",
        kind="generation",
        head="CausalLM",
        metrics=("perplexity",),
        description="Text generation: prompt -> continuation (masked- or causal-LM distillation).",
        text_column="text",
        label_column="",
        local_files={"train": "tinyshakespeare/input.txt"},
        implemented=False,
    ),
}


def get_task(name: str) -> Task:
    """The task record for ``name``; a clear error for unknown or not-yet-built tasks."""
    try:
        task = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}") from None
    if not task.implemented:
        raise NotImplementedError(f"task {name!r} ({task.kind}) is not implemented yet")
    return task
