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
double-quoted JSON strings, which YAML reads back unchanged. The front matter and
that YAML writer are in ``hub.model_card_metadata``; the body, the file and the
upload here.
"""

from __future__ import annotations

import json
from pathlib import Path

# the front matter and what it reads from the run card, importable from here as before
from .model_card_metadata import (_REPO_ID, ALIAS_HUB_IDS, HUB_DATASET_IDS, KNOWN_FILES, METRIC_NAMES, PIPELINES,
                                  _is_embedded, _metric_names, eval_dataset, hub_model_id, metadata, to_yaml,
                                  training_datasets)
from .paths import write_text_atomic
from .reproduce import augmentation_line, file_key, made_file, reproduce_command
from .tasks import TASKS

__all__ = ["ALIAS_HUB_IDS", "CARD_FILE", "DIVERGENCE_TEXT", "HUB", "HUB_DATASET_IDS", "KNOWN_FILES", "LOWER_IS_BETTER",
           "METRIC_NAMES", "PIPELINES", "UPLOAD_IGNORE", "HubUploadError", "eval_dataset", "hub_model_id", "metadata",
           "model_card", "push_to_hub", "to_yaml", "training_datasets", "write_model_card"]

CARD_FILE = "README.md"
UPLOAD_IGNORE = ["checkpoints/", "stages/", "*.tmp"]  # Trainer state and half-written files stay local
HUB = "https://huggingface.co"

LOWER_IS_BETTER = {"perplexity"}
DIVERGENCE_TEXT = {"forward": "KL(teacher ‖ student)", "reverse": "KL(student ‖ teacher)",
                   "jsd": "JSD_β(teacher, student) (generalised Jensen–Shannon)"}


class HubUploadError(RuntimeError):
    """The folder could not be uploaded; the message says why and what to do."""


# ---------------------------------------------------------------- body

def _pct(metric: str, value, card: dict | None = None) -> str:
    """A score as the card shows it: SQuAD's scores are on 0-100 already (``hub.squad``),
    other tasks' accuracy and F1 are fractions shown as percentages, perplexity as it is.
    The scale comes from the task, never from the value (a SQuAD NoAns F1 of 0.99 is 0.99)."""
    if not isinstance(value, (int, float)):
        return "—"
    task = TASKS.get((card or {}).get("task", ""))
    if metric == "perplexity" or (task is not None and task.kind == "qa"):
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
        return [f"No evaluation was recorded (status: {card.get('status', 'unknown')})."] + _calibration_lines(card)
    t = ev.get("teacher") or {}
    names = _metric_names(card, s)
    if student and t:
        rows = ["| metric | teacher | student | retention |", "|---|---|---|---|"]
        for m in names:
            ratio = None
            if isinstance(t.get(m), (int, float)) and t[m] and s[m]:
                ratio = t[m] / s[m] if m in LOWER_IS_BETTER else s[m] / t[m]
            rows.append(f"| {METRIC_NAMES.get(m, m)} | {_pct(m, t.get(m), card)} | {_pct(m, s[m], card)} | "
                        + (f"{ratio:.3f}" if ratio is not None else "—") + " |")
        rows.append(f"| parameters | {_millions(card.get('teacher_params'))} | {_millions(card.get('params'))} | "
                    + (f"{card['params'] / card['teacher_params']:.3f} (size ratio)"
                       if card.get("params") and card.get("teacher_params") else "—") + " |")
        if ev.get("retention") is not None and names:
            how = "the teacher's ÷ the student's" if names[0] in LOWER_IS_BETTER else "the student's ÷ the teacher's"
            rows += ["", f"**Retention** ({METRIC_NAMES.get(names[0], names[0])}, {how}, same evaluation set): "
                     f"**{100 * ev['retention']:.1f}%**."]
    else:
        rows = ["| metric | value |", "|---|---|"] + [f"| {METRIC_NAMES.get(m, m)} | {_pct(m, s[m], card)} |" for m in names]
        rows.append(f"| parameters | {_millions(card.get('params'))} |")
    n = s.get("eval_size")
    if n:
        rows += ["", f"Evaluated on {n:,} examples of {eval_dataset(card)['name']}"
                 + (f" ({eval_dataset(card)['split']} split)" if eval_dataset(card).get("split") else "") + "."]
    return rows + _calibration_lines(card)


def _calibration_lines(card: dict) -> list[str]:
    """How a QA model's null-answer threshold was calibrated (``calibrate-null --apply``)."""
    c = card.get("null_calibration")
    if not c:
        return []
    return ["", f"Null-answer threshold **{c['threshold']:.4g}** (was {c.get('before', 0):g}), calibrated so that "
            f"the model's \"no answer\" decisions agree most with its teacher's (`{Path(str(c.get('teacher'))).name}`"
            f" at {c.get('teacher_threshold', 0):g}) on {c.get('pairs') or 0:,} unlabelled question/paragraph pairs "
            f"of `{Path(str(c.get('calibration_data'))).name}` — agreement {c.get('agreement') or 0:.3f}, against "
            f"{c.get('agreement_before') or 0:.3f} before; the evaluation set is not used (`python -m hub "
            + ("distill ... --calibrate-null`, after training)." if c.get("how") == "distill"
               else "calibrate-null --apply`).")]


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
        if card.get("soup"):
            n = len(card["soup"].get("ingredients") or [])
            chosen = card["soup"].get("selection")
            among = (f", chosen greedily among {len(chosen.get('ingredients') or [])} on held-out data"
                     if chosen else "")
            lead = (f"A model soup: the uniform weight average of {n} TinyBERT-style students (`{spec.get('spec', 'custom')}`"
                    f": {shape}){among}, each distilled from the teacher {teacher_md} with Distill Hub from the same "
                    "start — one model of the same size and speed as each of them.")
            if n == 1:
                lead = (f"A greedy model soup that kept one TinyBERT-style student (`{spec.get('spec', 'custom')}`: "
                        f"{shape}){among}, distilled from the teacher {teacher_md} with Distill Hub: averaging any "
                        "other candidate into it lowered its score on the held-out data.")
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
    out += [f"- {METRIC_NAMES.get(m, m)}: {_pct(m, scores[m], card)}" for m in _metric_names(card, scores)]
    return out + [""]


def _soup_section(card: dict) -> list[str]:
    """The ingredients of a soup (``hub soup``): the settings in which they differ and their recorded scores."""
    soup = card.get("soup") or {}
    items = soup.get("ingredients") or []
    if not items:
        return []
    head = (card.get("eval") or {}).get("headline") or getattr(TASKS.get(card.get("task", "")), "headline", None)
    keys = list(dict.fromkeys(k for i in items for k in (i.get("settings") or {})))
    out = ["## Soup", "", f"Method: {soup.get('method', 'uniform weight average')} of these students' weights "
           "(the settings in which they differ, and each one's score as its own run recorded it):", "",
           "| ingredient | " + " | ".join(k.replace("_", " ") for k in keys) + (f" | {METRIC_NAMES.get(head, head)}"
                                                                             if head else "") + " |",
           "|---|" + "---|" * (len(keys) + bool(head))]
    for i in items:
        cells = [f"`{Path(i['path']).name}`"] + [str((i.get("settings") or {}).get(k, "")) for k in keys]
        if head:
            cells.append(_pct(head, (i.get("eval") or {}).get(head), card))
        out.append("| " + " | ".join(cells) + " |")
    return out + [""] + _selection_lines(soup.get("selection"))


def _selection_lines(selection: dict | None) -> list[str]:
    """How a greedy soup chose its ingredients (``hub.soup_select``): every candidate's score alone and the soup's with it."""
    if not selection:
        return []
    out = [f"Chosen by {selection.get('method', 'greedy soup')} on `{Path(selection.get('data', '')).name}` "
           f"({selection.get('size')} examples; score: {selection.get('score')}): the candidates best alone first, "
           "each kept when the soup's score with it did not fall.", "",
           "| candidate | rank alone | score alone | soup with it | kept |", "|---|---|---|---|---|"]
    for r in selection.get("ingredients") or []:
        with_it = "—" if r.get("soup_score") is None else f"{r['soup_score']:.3f}"
        name = r.get("name") or Path(r["path"]).name
        out.append(f"| `{name}` | {r.get('rank')} | {r.get('alone', float('nan')):.3f} | {with_it} | "
                   f"{'yes' if r.get('kept') else 'no'} |")
    return out + [""]


def _recipe_section(card: dict) -> list[str]:
    out = ["## Recipe", ""]
    if card.get("soup"):
        out += ["Every ingredient was distilled this way (settings missing here differ between them: see Soup).", ""]

    def value(key):  # a soup's card leaves out the settings its ingredients differ in
        return card[key] if key in card or not card.get("soup") else "see Soup"

    if card.get("kind") == "student":
        weights = card.get("loss_weights") or {}
        divergence = card.get("divergence") or "forward"
        layer_map = card.get("layer_map") or []
        out += [
            f"- stages: {', '.join(card.get('stages') or []) or value('stages')} "
            "(TinyBERT task distillation: intermediate layers, then the prediction layer)",
            f"- temperature T = {value('temperature')}, α = {value('alpha')} (prediction loss = "
            f"α·CE(labels) + (1 − α)·T²·{DIVERGENCE_TEXT.get(divergence, divergence)})",
            "- loss weights: " + (", ".join(f"{k} {v:g}" for k, v in weights.items()) or "—"),
            "- layer map (student layer → teacher layer, 1-based): "
            + (", ".join(f"{i + 1} → {t}" for i, t in enumerate(layer_map)) or "—"),
        ]
        if card.get("negative_target") == "teacher":
            out.append("- made negatives (training questions paired with another article's paragraph): the "
                       "teacher's start/end distributions alone, their gold \"no answer\" term dropped")
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
        out.append(f"- {'averaged' if card.get('soup') else 'trained'}: {card['created_at']}")
    return out + [""]


def _reproduce_section(card: dict) -> list[str]:
    task = TASKS.get(card.get("task", ""))
    if card.get("soup"):
        selection = card["soup"].get("selection")
        models = " ".join(f"--model {i.get('name') or Path(i['path']).name}"
                          for i in (selection or card["soup"]).get("ingredients") or [])
        if selection:
            teacher = selection.get("teacher")
            if teacher and Path(teacher).is_dir():  # a local folder by its name; a Hub id as it is
                teacher = Path(teacher).name
            models += f" --greedy --select-file {Path(selection.get('data', 'SELECT')).name}"
            models += f" --teacher {teacher}" if teacher else ""
            if selection.get("max_samples") is not None:
                models += f" --max-select-samples {selection['max_samples']}"
        return ["## Reproduce", "", "From the Distill Hub repository, with the ingredients' folders (each holds the "
                "run card and README of its own distillation, with its command):", "", "```bash",
                f"python -m hub soup --task {card.get('task')} {models} --output-dir runs/soup",
                *_calibration_command(card, "runs/soup"), "```", ""]
    command = reproduce_command(card)
    out = ["## Reproduce", "", "From the Distill Hub repository:", "", "```bash", command,
           *_calibration_command(card, command.split()[-1]), "```", ""]
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


def _calibration_command(card: dict, folder: str) -> list[str]:
    """The ``calibrate-null --apply`` line that set a QA model's recorded threshold, if one did."""
    c = card.get("null_calibration")
    if not c or c.get("how") == "distill":  # the distill line of the recipe repeats --calibrate-null
        return []
    source = c.get("source") or {"train_file": c.get("calibration_data")}  # a card before sources were recorded
    data = (f"--dataset {source['dataset']}" + (f" --dataset-config {source['dataset_config']}"
                                                if source.get("dataset_config") else "")
            if source.get("dataset") else f"--train-file {Path(str(source.get('train_file'))).name}")
    limit = f" --max-train-samples {source['max_train_samples']}" if source.get("max_train_samples") else ""
    return [f"python -m hub calibrate-null --task {card.get('task')} --teacher {Path(str(c.get('teacher'))).name} "
            f"--model {folder} {data}{limit} --apply"]


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
    out += _soup_section(card)
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
    return write_text_atomic(folder / CARD_FILE, model_card(card, repo_id=repo_id,
                                                            name=repo_id.split("/")[-1] if repo_id else folder.name))


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
