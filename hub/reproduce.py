"""The commands that remake a run: ``reproduce_command`` (the ``python -m hub
distill|finetune ...`` line of a run card's recipe) and ``augmentation_line`` (how
an augmented or cloze training file was made, with its ``hub augment|cloze``
command). Model cards (:mod:`hub.model_card`) print both; a card never shows the
server's paths (``file_key``, ``hub/samples``, ``DATA_DIR``)."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from .config import card_train_settings
from .samples import ROOT, samples_dir
from .tasks import TASKS


def file_key(path: str | None) -> str | None:
    """``sst2/train.tsv`` for ``/any/where/sst2/train.tsv`` (never the server's path)."""
    if not path:
        return None
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def _data_dir_arg(data_dir: str | None, eval_file: str | None) -> str:
    """What to pass as ``--data-dir``: ``hub/samples`` for the embedded sample, a
    path relative to the repository for a sibling folder (``../shared/data``),
    else the placeholder ``DATA_DIR`` (a card never shows the server's paths)."""
    root = Path(data_dir).resolve() if data_dir else Path(eval_file).resolve().parents[1]
    if root == samples_dir():
        return "hub/samples"
    rel = os.path.relpath(root, ROOT)
    return rel if not rel.startswith("../..") else "DATA_DIR"


def reproduce_command(card: dict, output_dir: str = "runs/reproduced") -> str:
    """The ``python -m hub distill|finetune ...`` command that reruns this card's recipe."""
    student = card.get("kind") == "student"
    args = ["python", "-m", "hub", "distill" if student else "finetune", "--task", card.get("task", "sst2")]
    if student:
        spec = card.get("student") or {}
        label = spec.get("spec") or "custom"
        args += ["--teacher", card.get("teacher", "TEACHER"), "--student", "custom" if label.startswith("custom-") else label]
        if label.startswith("custom-"):
            args += ["--student-layers", str(spec["layers"]), "--student-hidden", str(spec["hidden"]),
                     "--student-heads", str(spec["heads"]), "--student-ffn", str(spec["ffn"])]
        if spec.get("prune_ffn"):
            args += ["--prune-ffn", str(spec["prune_ffn"])]
        if card.get("stages"):
            args += ["--stages", ",".join(card["stages"])]
        for key, flag in (("temperature", "--temperature"), ("alpha", "--alpha"),
                          ("intermediate_learning_rate", "--intermediate-learning-rate"),
                          ("intermediate_train_samples", "--intermediate-train-samples")):
            if card.get(key) is not None:
                args += [flag, f"{card[key]:g}" if isinstance(card[key], float) else str(card[key])]
        if card.get("divergence") and card["divergence"] != "forward":  # forward KL is the default
            args += ["--divergence", card["divergence"]]
        if card.get("negative_target") and card["negative_target"] != "label":
            args += ["--negative-target", card["negative_target"]]
        for term, w in (card.get("loss_weights") or {}).items():
            args += [f"--w-{term}", f"{w:g}"]
        if card.get("layer_map"):
            args += ["--layer-map", ",".join(str(i) for i in card["layer_map"])]
    else:
        args += ["--model", card.get("base_model", "MODEL")]
    data = card.get("data") or {}
    task = TASKS.get(card.get("task", ""))
    aug = data.get("augmentation") or {}
    local = task.local_files if task and task.local_files else {}
    if aug and not aug.get("output_file") and data.get("kind") != "hub":
        # a job's augmented or cloze examples were made in memory: the command of the data section writes them
        # to a file (made_file), which is then the training file; the evaluation file stays the job's
        eval_file = data.get("eval_file")
        eval_arg = (f"{_data_dir_arg(data.get('data_dir'), eval_file)}/{local['eval']}"
                    if eval_file and file_key(eval_file) == local.get("eval") else Path(eval_file or "EVAL_FILE").name)
        args += ["--train-file", made_file(aug), "--eval-file", eval_arg]
    elif data.get("kind") == "hub":
        args += ["--dataset", data["dataset"]] + (["--dataset-config", data["config"]] if data.get("config") else [])
    elif data.get("data_dir") or (task and task.local_files and file_key(data.get("eval_file")) == task.local_files.get("eval")
                                  and file_key(data.get("train_file")) in (None, task.local_files.get("train"))):
        args += ["--data-dir", _data_dir_arg(data.get("data_dir"), data.get("eval_file"))]
    else:
        args += ["--train-file", Path(data.get("train_file") or "TRAIN_FILE").name,
                 "--eval-file", Path(data.get("eval_file") or "EVAL_FILE").name]
    for key, flag in (("text_column", "--text-column"), ("label_column", "--label-column")):
        if data.get(key) and not (task and getattr(task, key) == data[key]):
            args += [flag, data[key]]
    if data.get("train_size"):
        args += ["--max-train-samples", str(data["train_size"])]
    if data.get("eval_size"):
        args += ["--max-eval-samples", str(data["eval_size"])]
    train = card_train_settings(card)
    for key, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("learning_rate", "--learning-rate"),
                      ("max_length", "--max-length"), ("seed", "--seed")):
        if train.get(key) is not None:
            args += [flag, f"{train[key]:g}" if isinstance(train[key], float) else str(train[key])]
    for key, flag, default in (("warmup_ratio", "--warmup-ratio", 0.1), ("weight_decay", "--weight-decay", 0.01)):
        if train.get(key) is not None and train[key] != default:  # flags only where they differ from the defaults
            args += [flag, f"{train[key]:g}"]
    if train.get("attention_dropout") is not None:
        args += ["--attention-dropout", f"{train['attention_dropout']:g}"]
    if train.get("precision") not in (None, "fp32"):
        args += ["--precision", train["precision"]]
    if (train.get("max_steps") or -1) > 0:
        args += ["--max-steps", str(train["max_steps"])]
    if student and (card.get("null_calibration") or {}).get("how") == "distill":
        args += ["--calibrate-null"]
    args += ["--output-dir", output_dir]
    return shlex.join(args)


def made_file(aug: dict) -> str:
    """The file name a ``hub cloze``/``hub augment`` command of a card writes (a job's
    in-memory transfer set gets a placeholder)."""
    default = "CLOZE.json" if aug.get("proposer") == "cloze" else "AUGMENTED.tsv"
    return Path(aug.get("output_file") or default).name


def augmentation_line(aug: dict, task: str) -> str:
    """How an augmented training file was made (``hub.augment`` or ``hub.cloze`` wrote ``aug`` beside it)."""
    cfg = aug.get("config") or {}
    src = aug.get("source") or {}
    origin = (["--dataset", src["dataset"]] if src.get("dataset")
              else ["--train-file", Path(src.get("train_file") or "TRAIN_FILE").name])
    if aug.get("proposer") == "cloze":
        from .cloze import describe_contexts

        counts = aug.get("contexts") or {}
        files = [name for name in counts if name not in ("training contexts", "negatives")]
        negatives = (counts.get("negatives") or {}).get("per_question")
        args = ["python", "-m", "hub", "cloze", "--task", task,
                *([*origin, "--max-train-samples", str(aug["originals"])] if aug.get("originals") else []),
                "--contexts", *[Path(f).name for f in files], "--per-context", str(aug.get("per_context")),
                *(["--max-contexts", str(aug["max_contexts"])] if aug.get("max_contexts") else []),
                *(["--text-column", aug["text_column"]] if aug.get("text_column") else []),
                *(["--negatives", str(negatives)] if negatives else []),
                *(["--noise", repr(aug["noise"])] if aug.get("noise") else []),  # every digit: the same draws
                "--seed", str(aug.get("seed")), "--output-file", made_file(aug)]
        return (f"- the training file holds {aug.get('originals', 0):,} training questions and "
                f"{aug.get('augmented', 0):,} cloze questions ({describe_contexts(counts)}): "
                f"a transfer set for the teacher's answers, made by `{shlex.join(args)}`")
    args = ["python", "-m", "hub", "augment", "--task", task, f"--{aug.get('proposer', 'mlm')}", str(aug.get("model")),
            *origin, "--max-train-samples", str(aug.get("originals"))]
    for key in ("per_example", "replace_prob", "candidates", "seed"):
        if key in cfg:
            args += ["--" + key.replace("_", "-"), f"{cfg[key]:g}" if isinstance(cfg[key], float) else str(cfg[key])]
    args += ["--output-file", made_file(aug)]
    return (f"- the training file is TinyBERT-style augmented data: {aug.get('originals', 0):,} original examples and "
            f"{aug.get('augmented', 0):,} copies with words replaced ({aug.get('proposer')} proposals), made by "
            f"`{shlex.join(args)}`")
