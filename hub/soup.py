"""Weight averaging of students trained from the same start: a uniform "model soup"
(Wortsman et al., 2022, *Model soups: averaging weights of multiple fine-tuned
models improves accuracy without increasing inference time*).

Students distilled from one checkpoint with different seeds (or learning rates)
land in one basin of the loss; the average of their weights is one model of the
same size and speed that is usually better than each of them. Students from
different starts are not in one basin (their hidden units are permuted against
each other): averaging them ruins both, so their run cards must name the same
start. The soup is a plain model folder with a run card that lists its
ingredients; ``python -m hub soup`` makes one and evaluates it: on the data given, else on the
evaluation data its ingredients were scored on (:func:`eval_source`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import RECIPE_KEYS, STUDENT_PRESETS, card_recipe
from .runs import read_card, utc_now, write_card

WEIGHTS = "model.safetensors"
COPIED = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# config keys that say how a folder was written, not what the model is
CONFIG_NOISE = ("_name_or_path", "transformers_version", "torch_dtype", "dtype")


def _config(folder: Path) -> dict:
    import json

    cfg = json.loads((folder / "config.json").read_text())
    return {k: v for k, v in cfg.items() if k not in CONFIG_NOISE}


def _resolved(path: str | None) -> str | None:
    """An existing file or folder as its resolved path (one folder named two ways,
    relative and absolute, is one folder); anything else (a Hub id, a spec) as it is."""
    return str(Path(path).resolve()) if path and Path(path).exists() else path


def _start(card: dict | None) -> str | None:
    """The weights a run started from: a student's ``student.spec``, a fine-tuned teacher's base model.

    A checkpoint folder is its resolved path; ``teacher-layers:K`` is K layers *of its
    teacher* (another teacher, another start); a preset or custom shape starts from
    random weights drawn with the run's seed (another seed, another start)."""
    if not card:
        return None
    student = card.get("student")
    start = student.get("spec") if isinstance(student, dict) else None
    start = start or card.get("base_model") or card.get("model")
    if start and Path(start).exists():  # one folder named two ways is one start
        return _resolved(start)
    if start and start.startswith("teacher-layers:"):
        return f"{start} of {_resolved(card.get('teacher'))}"
    if start and (start in STUDENT_PRESETS or start.startswith("custom")):
        return f"{start} drawn with seed {(card.get('train') or {}).get('seed')}"
    return start


def check_ingredients(models: list[str], task: str, minimum: int = 2) -> tuple[list[Path], list[dict | None], list[str]]:
    """The folders, their run cards and warnings; a clear error for anything that
    cannot be averaged (fewer than ``minimum`` models — a greedy soup may keep one of the
    candidates it checked —, no safetensors weights, another task, another shape or
    tokenizer, unfinished runs, different starts)."""
    from .models import load_tokenizer, tokenizer_fingerprint

    folders = [Path(m) for m in models]
    if len({f.resolve() for f in folders}) < max(minimum, 1):
        raise ValueError("soup needs at least two different model folders" if minimum >= 2 else "soup needs a model")
    for f in folders:
        if not (f / WEIGHTS).is_file() or not (f / "config.json").is_file():
            raise ValueError(f"{f} is not a model folder with {WEIGHTS} and config.json (soup reads local "
                             "safetensors folders only)")
    cards = [read_card(f) for f in folders]
    warnings = []
    for f, card in zip(folders, cards):
        if card is None:
            warnings.append(f"{f} has no run card: its task and start could not be checked")
            continue
        if card.get("task") != task:
            raise ValueError(f"{f} is a {card.get('task')!r} model, not {task!r}")
        if card.get("status") not in (None, "finished"):
            raise ValueError(f"{f}: its run is {card.get('status')!r}, not finished: its weights are not final")
    first = _config(folders[0])
    for f in folders[1:]:
        other = _config(f)
        diff = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if diff:
            raise ValueError(f"{f} and {folders[0]} differ in config {diff[0]!r} ({other.get(diff[0])!r} vs "
                             f"{first.get(diff[0])!r}): only models of one shape can be averaged")
    prints = {f: tokenizer_fingerprint(load_tokenizer(str(f))) for f in folders}
    for f in folders[1:]:
        if prints[f] != prints[folders[0]]:
            raise ValueError(f"{f} and {folders[0]} tokenize differently: they cannot be averaged")
    starts = {_start(c) for c in cards if c}
    if len(starts) > 1:
        raise ValueError(f"the runs started from different checkpoints ({', '.join(sorted(map(str, starts)))}): "
                         "averaging models from different starts ruins them; soup students distilled from one start")
    return folders, cards, warnings


def trained_options(card: dict | None, allowed: tuple | None = None) -> dict:
    """The evaluation options an ingredient's run card records, less a null threshold
    calibrated to that ingredient (``calibrate-null --apply``, ``distill --calibrate-null``):
    fitted to its weights, not to a soup's. ``allowed``: only these (a kind's ``eval_options``).

    >>> trained_options({"eval_options": {"null_threshold": 3.0}, "null_calibration": {"threshold": 3.0}})
    {}
    >>> trained_options({"eval_options": {"null_threshold": 1.0}})
    {'null_threshold': 1.0}
    """
    options = {k: v for k, v in ((card or {}).get("eval_options") or {}).items() if allowed is None or k in allowed}
    if (card or {}).get("null_calibration"):
        options.pop("null_threshold", None)
    return options


class WeightSum:
    """The running float32 sum of models' weights, each state checked as it is added: the same
    tensors, shapes and integer buffers as the first (named ``first``). ``mean(extra)`` is the
    uniform average of the states added (and ``extra``), each in its own dtype. One weight file
    is held at a time besides the sum: the greedy soup (``hub.soup_select``) tries each next
    candidate on top of it."""

    def __init__(self, state: dict[str, torch.Tensor], first: str):
        self.first, self.n = first, 1
        self.dtypes = {k: v.dtype for k, v in state.items()}
        self.total = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

    def check(self, state: dict[str, torch.Tensor], name: str) -> None:
        if set(state) != set(self.total):
            missing = sorted(set(self.total) ^ set(state))[0]
            raise ValueError(f"{name} and {self.first} hold different tensors (e.g. {missing!r})")
        for key, v in self.total.items():
            if state[key].shape != v.shape:
                raise ValueError(f"{key}: shape {tuple(state[key].shape)} in {name}, {tuple(v.shape)} in {self.first}")
            if not v.is_floating_point() and not torch.equal(state[key], v):
                raise ValueError(f"{key}: an integer tensor that differs between the models cannot be averaged")

    def add(self, state: dict[str, torch.Tensor], name: str) -> None:
        self.check(state, name)
        for key, v in self.total.items():
            if v.is_floating_point():
                self.total[key] = v + state[key].float()
        self.n += 1

    def mean(self, extra: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        n = self.n + (extra is not None)
        return {k: ((v if extra is None else v + extra[k].float()) / n).to(self.dtypes[k]) if v.is_floating_point()
                else v for k, v in self.total.items()}


def average_state(folders: list[Path]) -> dict[str, torch.Tensor]:
    """The uniform average of the folders' weights (float tensors averaged in float32
    and stored in their own dtype; integer buffers must be equal)."""
    total = WeightSum(load_file(folders[0] / WEIGHTS), str(folders[0]))
    for f in folders[1:]:
        total.add(load_file(f / WEIGHTS), str(f))
    return total.mean()


def check_output(models: list[str], output_dir: str | Path, overwrite: bool) -> Path:
    """``output_dir`` as a path; a ``ValueError`` when it is one of the ingredients, or holds
    files and ``overwrite`` is not given (checked before any minutes are spent)."""
    out = Path(output_dir)
    if out.resolve() in {Path(m).resolve() for m in models}:
        raise ValueError("--output-dir is one of the ingredients: write the soup to a new folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"{out} is not empty (pass --overwrite to replace it)")
    return out


def make_soup(models: list[str], output_dir: str | Path, task: str, overwrite: bool = False,
              evaluate: Callable[[Path], dict] | None = None, selection: dict | None = None,
              eval_options: dict | None = None) -> dict:
    """Average ``models`` into ``output_dir``; returns its run card (status finished,
    ``soup`` lists the ingredients and their recorded evaluation). ``selection``: how a
    greedy soup chose ``models`` (``hub.soup_select``), recorded as ``soup.selection``.
    ``eval_options``: the soup's evaluation options (default: its first ingredient's, less a
    threshold calibrated to it; a greedy soup passes those it was chosen with). ``evaluate(folder)``
    scores the soup; the ingredients' recorded teacher score and the retention
    against it are added when they share teacher and eval data. With ``evaluate`` the
    card says ``running`` until the scores are in, ``failed`` (weights kept) when the
    evaluation fails."""
    from .tasks import get_task, retention

    folders, cards, warnings = check_ingredients(models, task, minimum=1 if selection is not None else 2)
    out = check_output(models, output_dir, overwrite)
    if out.exists() and any(out.iterdir()):
        shutil.rmtree(out)
    state = average_state(folders)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    for name in COPIED:
        if (folders[0] / name).is_file():
            shutil.copy(folders[0] / name, out / name)
    base = dict(cards[0] or {"task": task})
    for stale in ("eval", "train_time_s", "train_examples_per_s", "wall_time_s", "stage_train", "history", "error",
                  "teacher_cache", "logit_cache", "null_calibration", "eval_before_calibration", "eval_options"):
        base.pop(stale, None)
    if options := (trained_options(cards[0]) if eval_options is None else eval_options):
        base["eval_options"] = options
    # the card keeps what every ingredient shares; what differs (a seed, a learning rate, alpha) is listed per
    # ingredient: a soup has no one seed
    settings = [card_recipe(c) for c in cards]
    differ = _differing(settings)
    base["train"] = {k: v for k, v in (base.get("train") or {}).items() if k not in differ}
    for key in RECIPE_KEYS:
        if key in differ:
            base.pop(key, None)
    recorded = [(c or {}).get("eval") or {} for c in cards]
    # with an evaluation the soup is finished once scored: a failed or killed evaluation leaves no unscored
    # "finished" model behind (the job queue marks a "running" card of a killed job failed)
    card = {**base, "status": "finished" if evaluate is None else "running", "created_at": utc_now(),
            "warnings": list(dict.fromkeys([*base.get("warnings", []), *warnings])),  # the teacher's still hold
            "soup": {"method": "uniform weight average" if selection is None else
                     "greedy soup: uniform weight average of the ingredients chosen on held-out data",
                     "ingredients": [
                {"path": str(f), "settings": {k: st.get(k) for k in differ}, "eval": r.get("student") or r.get("model")}
                for f, r, st in zip(folders, recorded, settings)]}}
    if selection is not None:
        card["soup"]["selection"] = selection
    write_card(out, card)
    _write_readme(out, card)
    if evaluate is not None:
        t = get_task(task)
        try:
            scores = evaluate(out)
        except BaseException as exc:
            card.update(status="failed", error=f"evaluation: {type(exc).__name__}: {exc}")
            write_card(out, card)
            raise
        card["status"] = "finished"
        card["eval"] = {"student": scores, "headline": t.headline}
        teacher = recorded[0].get("teacher") if same_eval_source(cards) else None
        if teacher and teacher.get("eval_size") == scores.get("eval_size"):  # the teacher's score on these examples
            card["eval"].update(teacher=teacher, retention=retention(t, scores.get(t.headline), teacher.get(t.headline)))
        write_card(out, card)
        _write_readme(out, card)
    return card


def _differing(settings: list[dict]) -> list[str]:
    """The setting names whose values differ between the ingredients (a seed, a learning rate)."""
    keys = list(dict.fromkeys(k for st in settings for k in st))
    return [k for k in keys if any(st.get(k) != settings[0].get(k) for st in settings)]


def _write_readme(out: Path, card: dict) -> None:
    """The soup's model card (README.md), as finetune and distill write theirs."""
    from .model_card import write_model_card

    write_model_card(out, card)


def same_eval_source(cards: list[dict | None]) -> bool:
    """Whether every ingredient names one teacher and one evaluation data source,
    so the teacher's recorded score is the soup's reference too."""
    keys = {(_resolved(c.get("teacher")), _resolved((c.get("data") or {}).get("eval_file")),
             _resolved((c.get("data") or {}).get("data_dir"))) for c in cards if c}
    return len(keys) == 1 and len(cards) == sum(1 for c in cards if c)


def train_source(card: dict | None) -> dict | None:
    """The training data a run card names, as ``DataSource`` keywords: its training file when
    found from here (a job's cloze or augmented examples were made in memory from it), or its
    Hub data set; None otherwise.

    >>> train_source({"data": {"kind": "hub", "dataset": "squad_v2"}})
    {'dataset': 'squad_v2'}
    >>> train_source({"data": {"kind": "files", "train_file": "/nowhere/train.json"}}) is None
    True
    """
    d = (card or {}).get("data") or {}
    if d.get("kind") == "hub" and d.get("dataset"):
        return {k: v for k, v in (("dataset", d["dataset"]), ("dataset_config", d.get("config"))) if v is not None}
    if d.get("kind") == "files" and d.get("train_file") and Path(d["train_file"]).is_file():
        return {"train_file": str(Path(d["train_file"]).resolve())}
    return None


def trained_sizes(card: dict | None) -> tuple[int | None, int | None]:
    """(the first N examples of its training data a run read, how many of them were its own)
    from its run card: ``train_size``, and a transfer set's ``originals`` (a job's cloze or
    augmented examples were added in memory after N originals; a file's come with them).

    >>> trained_sizes({"data": {"train_size": 15371, "augmentation": {"originals": 1090}}})
    (15371, 1090)
    >>> trained_sizes({"data": {"train_size": 500}})
    (500, 500)
    """
    d = (card or {}).get("data") or {}
    size = d.get("train_size")
    return size, (d.get("augmentation") or {}).get("originals") or size


def eval_source(cards: list[dict]) -> tuple[dict, int | None] | None:
    """The evaluation data every ingredient was scored on, as ``DataSource`` keywords (with its
    columns), and its size (examples; blocks for packed text); None when they differ, a card does
    not say, or its file is not found from here (the soup is then saved unscored)."""
    sources = set()
    for card in cards:
        d = (card or {}).get("data") or {}
        columns = {"text_column": d.get("text_column"), "label_column": d.get("label_column")}
        if d.get("kind") == "hub" and d.get("dataset"):
            kw = {"dataset": d["dataset"], "dataset_config": d.get("config"), **columns}
        elif d.get("kind") == "files" and d.get("eval_file") and Path(d["eval_file"]).is_file():
            kw = {"eval_file": str(Path(d["eval_file"]).resolve()), **columns}
        else:
            return None
        sources.add((tuple(sorted(kw.items())), d.get("eval_size", d.get("eval_blocks"))))
    if len(sources) != 1:
        return None
    kw, size = next(iter(sources))
    return {k: v for k, v in kw if v is not None}, size
