"""Task records: what a task reads, which head it trains, how it is scored.

A task is a small data record (lm-evaluation-harness style); the pipeline reads
its fields instead of branching on task names. ``kind`` names the module of
``hub/kinds`` that does the kind-specific work; ``metrics`` lists what it reports,
the first being the headline metric whose direction (``higher_is_better``)
defines retention, sorting and the Pareto plot everywhere.
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
    higher_is_better: bool = True  # of the headline metric (perplexity: False)
    text_column: str = "sentence"
    label_column: str = "label"
    # local layout under --data-dir: {"train": "sst2/train.tsv", "eval": "sst2/validation.tsv"}
    local_files: dict = field(default_factory=dict)
    # online fallback: (dataset id, config, train split, eval split)
    hub_dataset: tuple | None = None
    label_names: tuple[str, ...] | None = None
    examples: tuple = ()
    implemented: bool = True
    # leaderboard columns shown by default for this task (besides name, role, latency ...)
    columns: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        return self.metrics[0]


def retention(task: Task, student: float | None, teacher: float | None) -> float | None:
    """Student quality as a share of the teacher's, for the headline metric's
    direction: student / teacher when higher is better, teacher / student when
    lower is better (perplexity). None when either is missing or zero.

    >>> retention(TASKS["sst2"], 0.8, 0.9) == 0.8 / 0.9
    True
    >>> retention(TASKS["generation"], 20.0, 17.0) == 17.0 / 20.0
    True
    """
    if student is None or teacher is None or not student or not teacher:
        return None
    return student / teacher if task.higher_is_better else teacher / student


TASKS: dict[str, Task] = {
    "sst2": Task(
        name="sst2",
        kind="classification",
        head="SequenceClassification",
        metrics=("accuracy", "f1"),
        columns=("accuracy", "f1"),
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
        columns=("accuracy", "f1"),
        description="Any text classification from your own CSV/TSV/JSONL/Parquet files.",
        examples=("Type a text to classify.",),
    ),
    "squad": Task(
        name="squad",
        kind="qa",
        head="QuestionAnswering",
        metrics=("f1", "exact_match", "HasAns_f1", "HasAns_exact", "NoAns_f1", "NoAns_exact"),
        columns=("f1", "exact_match", "HasAns_f1"),
        description="Extractive question answering (SQuAD): question + context -> answer span.",
        text_column="question",
        label_column="answers",
        local_files={"train": "squad/xquad-en-train.json", "eval": "squad/dev-subset-v2.0.json"},
        # online: --dataset squad_v2 (with unanswerable questions, like the local eval set) or --dataset squad
        hub_dataset=("squad_v2", None, "train", "validation"),
        examples=(
            ("Where is the Eiffel Tower?",
             "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
             "It is named after the engineer Gustave Eiffel, whose company designed and built the tower."),
            ("When was the tower completed?",
             "Constructed from 1887 to 1889 as the centrepiece of the 1889 World's Fair, the tower was "
             "initially criticised by some of France's leading artists and intellectuals for its design."),
            ("What do plants need for photosynthesis?",
             "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide "
             "to make glucose and oxygen. It takes place mainly in the chloroplasts of leaf cells."),
            ("Who wrote the novel?",
             "The river rises in the mountains and flows north for about 300 kilometres before it reaches "
             "the sea. Its delta is home to many species of birds."),
        ),
    ),
    "mlm": Task(
        name="mlm",
        kind="mlm",
        head="MaskedLM",
        metrics=("top1_accuracy", "top5_accuracy", "perplexity"),
        columns=("top1_accuracy", "top5_accuracy", "perplexity"),
        description="Masked-language modelling (BERT's objective): predict the masked tokens of plain text, "
                    "packed into blocks; scored on held-out text with fixed masks.",
        text_column="text",
        label_column="",
        # no train.txt under shared/data: WikiText-2's validation split trains, its test split scores
        local_files={"train": "wikitext-2/valid.txt", "eval": "wikitext-2/test.txt"},
        hub_dataset=("wikitext", "wikitext-2-raw-v1", "train", "test"),
        examples=(
            "The capital of France is [MASK].",
            "She poured a cup of [MASK] and sat down to read the newspaper.",
            "The [MASK] barked at the mailman all [MASK] long.",
            "Photosynthesis turns sunlight, water and carbon dioxide into [MASK] and oxygen.",
        ),
    ),
    "general": Task(
        name="general",
        kind="general",
        head="",  # a bare encoder (AutoModel): the student a later task distillation starts from
        metrics=("hidden_mse", "attention_mse", "embedding_mse"),
        higher_is_better=False,
        description="TinyBERT general distillation: the intermediate stage alone (embedding, attention and "
                    "hidden-state MSE) on plain text, with no task head; the student is a checkpoint for "
                    "--student of any task.",
        text_column="text",
        label_column="",
        local_files={"train": "wikitext-2/valid.txt", "eval": "wikitext-2/test.txt"},
        hub_dataset=("wikitext", "wikitext-2-raw-v1", "train", "test"),
        examples=("General distillation has no demo: distill the student on a task first.",),
    ),
    "generation": Task(
        name="generation",
        kind="generation",
        head="CausalLM",
        metrics=("perplexity",),
        higher_is_better=False,
        columns=("perplexity", "ttft_ms", "tokens_per_s", "speedup_tokens_per_s"),
        description="Text generation (causal LM): prompt -> continuation; perplexity on held-out text.",
        text_column="text",
        label_column="",
        # --max-train-samples/--max-eval-samples count blocks of --block-size tokens
        local_files={"train": "wikitext-2/valid.txt", "eval": "wikitext-2/test.txt"},
        hub_dataset=("wikitext", "wikitext-2-raw-v1", "train", "test"),
        examples=(
            "The history of the city begins in",
            "In 1998, the band released their second album,",
            "The species is found in",
            "Once upon a time, there was a little robot who",
        ),
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
