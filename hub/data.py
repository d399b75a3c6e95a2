"""Data sources and table files: where a task's data comes from (a local
folder, files, or a Hub data set), table reading, and the classification loader
that ``hub.kinds.classification`` uses. Validation happens before any training.

Every problem with the user's data raises :class:`DataError` with a message
that names the file, the column or the rows at fault.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .tasks import Task

READERS = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
MAX_TEXT_CHARS = 100_000  # longer texts are almost surely a wrong column or a broken file


class DataError(ValueError):
    """The data cannot be used as given; the message says why and where."""


@dataclass(frozen=True)
class DataSource:
    """Exactly one of: a local folder in the task's layout (``data_dir``), files
    (``train_file``/``eval_file``), or a Hub data set (``dataset``/``dataset_config``)."""

    data_dir: str | None = None
    train_file: str | None = None
    eval_file: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    text_column: str | None = None
    label_column: str | None = None

    @classmethod
    def from_args(cls, args) -> "DataSource":
        return cls(**{k: getattr(args, k, None) for k in cls.__dataclass_fields__})

    def check(self) -> None:
        sources = [s for s in (self.data_dir, self.train_file or self.eval_file, self.dataset) if s]
        if len(sources) != 1:
            raise DataError("give exactly one data source: --data-dir, --train-file/--eval-file, or --dataset")

    def files(self, task: Task, need_train: bool = True, need_eval: bool = True) -> tuple[str | None, str | None]:
        """Train and eval file paths of a local source (the task's layout under ``data_dir``)."""
        train_file, eval_file = self.train_file, self.eval_file
        if self.data_dir:
            if not task.local_files:
                raise DataError(f"task {task.name!r} has no local layout; use --train-file/--eval-file")
            root = Path(self.data_dir)
            train_file = str(root / task.local_files["train"]) if "train" in task.local_files else None
            eval_file = str(root / task.local_files["eval"])
        if need_train and not train_file:
            raise DataError("--train-file is required")
        if need_eval and not eval_file:
            raise DataError("--eval-file is required")
        return (train_file if need_train else None), (eval_file if need_eval else None)


def augmentation_sidecar(train_file: str | Path) -> Path:
    """Where ``python -m hub augment`` describes the training file it wrote (proposer,
    settings, counts); a run trained on that file records it in its card."""
    return Path(str(train_file) + ".augment.json")


def augmentation_of(train_file: str | Path | None) -> dict | None:
    """The description ``python -m hub augment`` wrote beside ``train_file``, if any
    (the run card records it: how its training file was made)."""
    sidecar = augmentation_sidecar(train_file) if train_file else None
    return json.loads(sidecar.read_text()) if sidecar is not None and sidecar.is_file() else None


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[int]
    eval_texts: list[str]
    eval_labels: list[int]
    label_names: list[str]
    source: dict = field(default_factory=dict)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))


def read_table(path: str | Path):
    """A pandas DataFrame from CSV, TSV, JSON lines or Parquet (by extension)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path.name}: unsupported file type {suffix!r}; use one of {', '.join(READERS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty")
    try:
        if suffix == ".tsv":
            # SST-2 style: no quoting, quotes are part of the text
            df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
        elif suffix == ".csv":
            df = pd.read_csv(path, keep_default_na=False, dtype=str)
        elif suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
        else:
            df = pd.read_parquet(path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - parser errors vary by format
        raise DataError(f"could not read {path.name}: {exc}") from exc
    if len(df) == 0:
        raise DataError(f"{path.name} has no rows")
    return df


def _columns(df, name: str, text_column: str, label_column: str | None):
    missing = [c for c in (text_column, label_column) if c and c not in df.columns]
    if missing:
        raise DataError(
            f"{name}: missing column(s) {missing}; found {list(df.columns)}. "
            "Set --text-column/--label-column to the right names."
        )
    texts = df[text_column].tolist()
    bad = [i + 1 for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise DataError(f"{name}: {len(bad)} empty text(s) in column {text_column!r}, rows {bad[:10]}")
    huge = [i + 1 for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if huge:
        raise DataError(f"{name}: text longer than {MAX_TEXT_CHARS:,} characters in rows {huge[:10]}")
    labels = df[label_column].tolist() if label_column else None
    if labels is not None:
        missing_labels = [i + 1 for i, y in enumerate(labels) if y is None or (isinstance(y, str) and not y.strip()) or y != y]
        if missing_labels:
            raise DataError(f"{name}: {len(missing_labels)} row(s) without a label, rows {missing_labels[:10]}")
    return texts, labels


def _label_key(y) -> str:
    """Labels compare as text: 1, "1" and 1.0 from different file types are the same label."""
    if isinstance(y, float) and y.is_integer():
        y = int(y)
    key = str(y).strip()
    if key.endswith(".0") and key[:-2].lstrip("-").isdigit():  # "1.0" read as text from a CSV
        key = key[:-2]
    return key


def label_vocabulary(train_labels: list, task: Task | None = None) -> list[str]:
    """Names of the labels, index = label id.

    Integer labels 0..K-1 keep their ids (names from the task when it has them);
    any other labels (strings, or integers not starting at 0) become sorted names.
    """
    keys = sorted({_label_key(y) for y in train_labels})
    if all(k.lstrip("-").isdigit() for k in keys):
        ints = sorted(int(k) for k in keys)
        if ints[0] >= 0:
            k = ints[-1] + 1
            if task and task.label_names and k <= len(task.label_names):
                return list(task.label_names)
            if ints == list(range(k)):
                return [str(i) for i in range(k)]
        return [str(i) for i in ints]
    return keys


def encode_labels(labels: list, label_names: list[str], name: str, task: Task | None = None) -> list[int]:
    """Label ids for ``labels``; labels unseen in training are an error.

    Integer labels 0..K-1 also name the label at that position when the names
    are words (a model trained with names ``negative``/``positive`` evaluated on
    a file labelled 0/1, as SST-2 and IMDB files are)."""
    index = {n: i for i, n in enumerate(label_names)}
    if not any(n.lstrip("-").isdigit() for n in label_names):
        index.update({str(i): i for i in range(len(label_names))})
    ids, unseen = [], set()
    for y in labels:
        key = _label_key(y)
        if key in index:
            ids.append(index[key])
        else:
            unseen.add(key)
    if unseen:
        raise DataError(
            f"{name}: label(s) {sorted(unseen)[:10]} not seen in training (known: {label_names[:20]})"
        )
    return ids


def load_classification(
    task: Task,
    data_dir: str | None = None,
    train_file: str | None = None,
    eval_file: str | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    label_names: list[str] | None = None,
    need_train: bool = True,
) -> ClassificationData:
    """Load and validate train/eval data from exactly one source.

    ``label_names`` fixes the label vocabulary (evaluating a trained model);
    otherwise it is derived from the training labels. ``need_train=False`` loads
    the eval split only (then ``label_names`` is required).
    """
    text_column = text_column or task.text_column
    label_column = label_column or task.label_column
    source_spec = DataSource(data_dir, train_file, eval_file, dataset, dataset_config)
    source_spec.check()
    if not need_train and label_names is None:
        raise DataError("label names are required to load an evaluation split alone")

    if dataset:
        train_df, eval_df, source = _hub_frames(task, dataset, dataset_config, need_train)
        names = ("train", "eval")
    else:
        train_file, eval_file = source_spec.files(task, need_train)
        train_df = read_table(train_file) if need_train else None
        eval_df = read_table(eval_file)
        names = (Path(train_file).name if train_file else "train", Path(eval_file).name)
        source = {"kind": "files", "data_dir": data_dir, "train_file": train_file, "eval_file": eval_file}
        if augmented := augmentation_of(train_file):  # the run card says how its training file was made
            source["augmentation"] = augmented

    if max_train_samples is not None and train_df is not None:
        train_df = train_df.iloc[: max(int(max_train_samples), 0)]
    if max_eval_samples is not None:
        eval_df = eval_df.iloc[: max(int(max_eval_samples), 0)]
    if train_df is not None and len(train_df) == 0:
        raise DataError("no training examples left (check --max-train-samples)")
    if len(eval_df) == 0:
        raise DataError("no evaluation examples left (check --max-eval-samples)")

    eval_texts, eval_raw = _columns(eval_df, names[1], text_column, label_column)
    if train_df is not None:
        train_texts, train_raw = _columns(train_df, names[0], text_column, label_column)
        distinct = {_label_key(y) for y in train_raw}
        if len(distinct) < 2:
            raise DataError(f"{names[0]}: only one label ({sorted(distinct)}); classification needs at least two")
        label_names = label_names or label_vocabulary(train_raw, task)
        train_labels = encode_labels(train_raw, label_names, names[0], task)
    else:
        train_texts, train_labels = [], []
    eval_labels = encode_labels(eval_raw, list(label_names), names[1], task)
    source.update(
        text_column=text_column, label_column=label_column,
        train_size=len(train_texts), eval_size=len(eval_texts),
    )
    return ClassificationData(train_texts, train_labels, eval_texts, eval_labels, list(label_names), source)


def _hub_frames(task: Task, dataset: str, config: str | None, need_train: bool):
    """Train/eval frames of a Hub data set (needs network or the datasets cache)."""
    try:
        from datasets import load_dataset

        splits = ("train", "validation")
        if task.hub_dataset and task.hub_dataset[0] == dataset:
            config = config or task.hub_dataset[1]
            splits = task.hub_dataset[2:]
        ds = load_dataset(dataset, config)
    except Exception as exc:  # noqa: BLE001 - network, missing data set, bad config
        raise DataError(
            f"could not load the Hub data set {dataset!r}"
            + (f" ({config})" if config else "")
            + f": {exc}. Offline, use --data-dir or --train-file/--eval-file instead."
        ) from exc
    eval_split = splits[1] if splits[1] in ds else ("test" if "test" in ds else None)
    if eval_split is None or (need_train and splits[0] not in ds):
        raise DataError(f"data set {dataset!r} has splits {list(ds)}; need train and validation/test")
    train_df = ds[splits[0]].to_pandas() if need_train else None
    return train_df, ds[eval_split].to_pandas(), {"kind": "hub", "dataset": dataset, "config": config}


def tokenize(tokenizer, texts: list[str], labels: list[int] | None = None, max_length: int = 128):
    """A datasets.Dataset with input ids, labels, a stable example index ``idx``
    (teacher-output caching looks logits up by it) and ``length`` (for
    length-grouped batching). Padding is dynamic, done by the collator."""
    from datasets import Dataset

    enc = tokenizer(texts, truncation=True, max_length=max_length)
    columns = {k: enc[k] for k in enc.keys()}
    columns["idx"] = list(range(len(texts)))
    columns["length"] = [len(ids) for ids in enc["input_ids"]]
    if labels is not None:
        columns["labels"] = list(labels)
    return Dataset.from_dict(columns)


def hub_splits(task: Task, dataset: str, config: str | None, need_train: bool, offline_hint: str):
    """A Hub data set's train and eval splits: ``(dataset_dict, (train, eval), config)``.

    The task's own data set (by its short name or with its owner: ``wikitext``,
    ``Salesforce/wikitext``) takes the task's config and split names; others use
    ``train``/``validation``. Needs the network or the ``datasets`` cache; every
    failure is a :class:`DataError` that says what to use offline (``offline_hint``)."""
    splits = ("train", "validation")
    if task.hub_dataset and task.hub_dataset[0].split("/")[-1] == dataset.split("/")[-1]:
        config = config or task.hub_dataset[1]
        splits = tuple(task.hub_dataset[2:])
    try:
        from datasets import load_dataset

        ds = load_dataset(dataset, config)
    except Exception as exc:  # noqa: BLE001 - network, missing data set, bad config
        raise DataError(
            f"could not load the Hub data set {dataset!r}" + (f" ({config})" if config else "")
            + f": {exc}. Offline, use {offline_hint} instead."
        ) from exc
    if splits[1] not in ds or (need_train and splits[0] not in ds):
        raise DataError(f"data set {dataset!r} has splits {list(ds)}; need {splits[0]} and {splits[1]}")
    return ds, splits, config


def hub_texts(task: Task, dataset: str, config: str | None, column: str, need_train: bool):
    """Train and eval documents (non-empty strings of ``column``) of a Hub data set,
    and the source record for the run card."""
    ds, splits, config = hub_splits(task, dataset, config, need_train,
                                    "--data-dir or --train-file/--eval-file (.txt, .jsonl, .csv)")

    def texts(split: str) -> list[str]:
        if column not in ds[split].column_names:
            raise DataError(f"{dataset}/{split}: no column {column!r}; found {ds[split].column_names}")
        out = [t.strip() for t in ds[split][column] if isinstance(t, str) and t.strip()]
        if not out:
            raise DataError(f"{dataset}/{split} holds no text in column {column!r}")
        return out

    meta = {"kind": "hub", "dataset": dataset, "config": config, "splits": list(splits), "text_column": column}
    return (texts(splits[0]) if need_train else []), texts(splits[1]), meta
