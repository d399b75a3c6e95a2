"""A training run's life on top of ``transformers.Trainer``, shared by fine-tuning
and distillation (:mod:`hub.distill`): the run folder (refuse, resume or replace),
``TrainingArguments``, progress and cancelling, the run card from start to end, and
the finish — save the weights (safetensors), evaluate, write ``run.json`` and the
model card whatever happened, drop the checkpoints of a finished run.

``finetune`` trains a task head (and the encoder) with the model's own loss: the
teacher a distillation starts from.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .config import TrainConfig, card_recipe
from .hardware import hardware_info, native_bf16, training_device
from .kinds import check_eval_options, get_kind
from .models import load_model, load_tokenizer, model_size, set_attention_dropout
from .runs import read_card, utc_now, write_card
from .tasks import Task, retention
from .teacher_cache import ProgressHook


class Cancelled(Exception):
    """Raised internally when the cancel flag stops a run."""


class ProgressCallback(TrainerCallback):
    """Reports step/total/loss terms/examples per second and honours a cancel flag.

    A stop that arrives after the last optimisation step changes nothing: the
    stage has finished, and says so."""

    def __init__(self, stage: str, hook: ProgressHook | None, cancel: threading.Event | None, batch_size: int, terms: dict):
        self.stage, self.hook, self.cancel, self.batch_size, self.terms = stage, hook, cancel, batch_size, terms
        self.t0 = time.perf_counter()
        self.start_step = 0
        self.cancelled = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()
        self.start_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self.start_step
        elapsed = time.perf_counter() - self.t0
        per_s = done * self.batch_size * max(args.world_size, 1) / max(elapsed, 1e-9)
        remaining = (state.max_steps - state.global_step) * elapsed / max(done, 1)
        if self.hook:
            self.hook({
                "stage": self.stage, "step": state.global_step, "total": state.max_steps,
                "epoch": state.epoch, "examples_per_s": per_s, "eta_s": remaining,
                "losses": dict(self.terms),
            })
        if self.cancel is not None and self.cancel.is_set() and state.global_step < state.max_steps:
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # keep the last checkpoint
        return control


def training_args(out: Path, cfg: TrainConfig, lr: float, epochs: float) -> TrainingArguments:
    bf16 = cfg.precision == "bf16"
    return TrainingArguments(
        bf16=bf16,  # autocast; the Trainer keeps weights and optimiser state in fp32
        use_cpu=bf16 and training_device() == "cpu",  # the Trainer's bf16 check asks for this on a CPU
        output_dir=str(out),
        num_train_epochs=epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=lr,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        data_seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=1,
        logging_steps=50,
        report_to="none",
        disable_tqdm=True,
        log_level="warning",  # the Trainer's raw log dicts stay out of the CLI's output
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise FileExistsError(
            f"{out} already holds files; pass --resume to continue that run or --overwrite to replace it"
        )
    if overwrite and not resume and out.exists() and any(out.iterdir()):
        if not (out / "run.json").is_file():
            raise FileExistsError(f"{out} holds files but no run.json: not replacing a folder the hub did not write")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


# settings a resumed run may change: they do not alter what is trained
RESUME_MAY_CHANGE = ("save_steps",)


def check_resume(out: Path, card: dict) -> None:
    """``--resume`` continues the run in ``out`` only as it started: the same task, data,
    models, training and distillation settings (a learning rate, precision or loss changed
    midway would make a model that no run card describes). Raises ValueError naming
    each difference; a folder without a run card has nothing to compare, and a setting
    an older card does not record is not compared."""
    old = read_card(out)
    if old is None:
        return
    was, now = _resume_facts(old), _resume_facts(card)
    # the data source is compared on what both cards record: a run adds counts to it as it goes (packed text: its
    # blocks and tokens), and an older card may lack a newer key
    diffs = [f"{k} {was[k]!r} then, {now.get(k)!r} now" for k in sorted(was)
             if k not in RESUME_MAY_CHANGE and (k in now or not k.startswith("data.")) and was[k] != now.get(k)]
    if diffs:
        raise ValueError(f"{out} was started with other settings ({'; '.join(diffs)}): resume it with the settings "
                         "it started with, or pass --overwrite to start again")


def _resume_facts(card: dict) -> dict:
    """The comparable facts of a run card: JSON values (tuples as lists), the data source one
    fact a key (``data.train_file``), and paths that exist from here resolved, so ``runs/t``
    and ``/work/runs/t`` are one teacher."""
    import json

    def norm(v):
        if isinstance(v, str) and v and Path(v).exists():
            return str(Path(v).resolve())
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        return v

    facts = {**card_recipe(card), "task": card.get("task"),
             **{f"data.{k}": v for k, v in (card.get("data") or {}).items()},
             "teacher": card.get("teacher"), "base_model": card.get("base_model"),
             "student": (card.get("student") or {}).get("spec")}
    return norm(json.loads(json.dumps(facts, default=str)))


def base_card(kind: str, task: Task, data, cfg: TrainConfig, eval_options: dict | None = None) -> dict:
    import transformers

    device = training_device()
    card = {
        "kind": kind,
        "task": task.name,
        "status": "running",
        "created_at": utc_now(),
        "data": data.source,
        "train": asdict(cfg),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "hardware": hardware_info(device),
    }
    if cfg.precision == "bf16" and device in ("cpu", "cuda") and not native_bf16(device):
        card["warnings"] = [f"bf16 is emulated on this {device} (no native bf16 arithmetic): the run is correct but "
                            "slower than fp32; use --precision fp32 here"]
    if getattr(data, "label_names", None) is not None:
        card["labels"] = data.label_names
    if eval_options:  # read back by every later load (hub.inference.eval_options)
        card["eval_options"] = dict(eval_options)
    return card


def run_trainer(trainer: Trainer, stage_dir: Path, resume: bool, callback: ProgressCallback) -> dict:
    """Train one stage (resuming from its last checkpoint); returns the Trainer's
    own speed metrics for the steps run in this call (``train_runtime``,
    ``train_samples_per_second``: ``--max-steps`` and resumed steps accounted for)."""
    trainer.remove_callback(PrinterCallback)  # our ProgressCallback reports; no raw log dicts on stdout
    ckpt = get_last_checkpoint(str(stage_dir)) if resume and stage_dir.is_dir() else None
    result = trainer.train(resume_from_checkpoint=ckpt)
    if callback.cancelled:
        raise Cancelled(stage_dir.name)
    m = result.metrics
    return {"runtime": float(m.get("train_runtime", 0.0)),
            "samples": float(m.get("train_samples_per_second", 0.0)) * float(m.get("train_runtime", 0.0))}


class _FinetuneTrainer(Trainer):
    """The model's own task loss (its ``.loss`` given the kind's targets)."""

    def __init__(self, *args, terms: dict, kind, **kwargs):
        super().__init__(*args, **kwargs)
        self.terms, self.kind = terms, kind

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs.pop("idx", None)
        inputs.pop("length", None)
        targets = self.kind.split_targets(inputs)  # also drops columns only the adaptor reads (QA's context_mask)
        loss = model(**inputs, **targets).loss
        self.terms.clear()
        self.terms.update({"ce": float(loss.detach()), "total": float(loss.detach())})
        return (loss, None) if return_outputs else loss


def finetune(
    task: Task,
    model_ref: str,
    data,
    output_dir: str,
    cfg: TrainConfig | None = None,
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    eval_options: dict | None = None,
) -> dict:
    """Train a task head (and the encoder) on ``data``; returns the run card.
    ``eval_options`` (the kind's evaluation settings, QA: ``null_threshold``) are
    used for the evaluation and recorded in the card for later loads."""
    cfg = cfg or TrainConfig(epochs=3, learning_rate=1e-4)
    if cfg.learning_rate is None:
        cfg.learning_rate = 1e-4
    kind = get_kind(task)
    eval_options = check_eval_options(task, eval_options)
    out = Path(output_dir)
    check_output_dir(out, resume, overwrite)
    tokenizer = load_tokenizer(model_ref)
    set_seed(cfg.seed)  # the new head's initialisation is part of the run: same seed, same weights
    model, _ = load_model(model_ref, task, **kind.head_kwargs(data))
    if cfg.attention_dropout is not None:
        set_attention_dropout(model, cfg.attention_dropout)
    card = base_card("teacher", task, data, cfg, eval_options)
    card.update(base_model=model_ref, params=model_size(model))
    if resume:
        check_resume(out, card)
    train_ds = kind.encode_train(tokenizer, data, cfg.max_length)
    terms: dict = {}
    callback = ProgressCallback("finetune", progress, cancel, cfg.batch_size, terms)
    trainer = _FinetuneTrainer(
        model=model, args=training_args(out / "checkpoints", cfg, cfg.learning_rate, cfg.epochs),
        train_dataset=train_ds, data_collator=kind.collator(tokenizer), callbacks=[callback], terms=terms, kind=kind,
    )
    return finish(card, out, model, tokenizer, data, task, cfg,
                   lambda: [run_trainer(trainer, out / "checkpoints", resume, callback)], progress=progress,
                   eval_options=eval_options)


def finish(card, out: Path, model, tokenizer, data, task: Task, cfg: TrainConfig, train_fn,
            progress: ProgressHook | None, teacher=None, teacher_scores: dict | None = None,
            evaluate_fn: Callable[[], dict] | None = None, eval_options: dict | None = None,
            calibrate: Callable[[object], dict] | None = None) -> dict:
    """Run training, then save the model, evaluate and write run.json — whatever happens.
    ``evaluate_fn`` replaces the evaluation (the card's ``eval``) for kinds scored
    against the teacher (general distillation). ``calibrate(model)`` (a QA student's
    null threshold, ``distill --calibrate-null``) runs on a finished model before its
    evaluation and returns the card's ``null_calibration``: its threshold becomes the
    model's own (``eval_options``) and scores it; the teacher keeps ``eval_options``."""
    kind = get_kind(task)
    write_card(out, card)
    t0 = time.perf_counter()
    try:
        speeds = train_fn()
        card["status"] = "finished"
    except Cancelled:
        card["status"] = "stopped"
        speeds = []
    except BaseException as exc:
        card.update(status="failed", error=f"{type(exc).__name__}: {exc}", wall_time_s=time.perf_counter() - t0)
        write_card(out, card)
        raise
    card["train_time_s"] = round(sum(s["runtime"] for s in speeds), 2) if speeds else None
    # the Trainer's own measured rate over the steps actually run (max_steps, resume accounted for)
    card["train_examples_per_s"] = (
        round(sum(s["samples"] for s in speeds) / max(sum(s["runtime"] for s in speeds), 1e-9), 2)
        if card["status"] == "finished" and speeds and sum(s["runtime"] for s in speeds) > 0 else None
    )
    if any("stage" in s for s in speeds):  # each distillation stage run in this call: its time and examples
        card["stage_train"] = {s["stage"]: {"time_s": round(s["runtime"], 2), "examples": round(s["samples"])}
                               for s in speeds if "stage" in s}
    model.save_pretrained(str(out))  # safetensors
    tokenizer.save_pretrained(str(out))
    own_options = eval_options
    if calibrate is not None and card["status"] == "finished":
        try:
            card["null_calibration"] = calibrate(model)
        except Exception as exc:  # the trained model is kept, scored at the threshold it had
            message = f"null-threshold calibration failed ({type(exc).__name__}: {exc}); the model keeps its threshold"
            card.setdefault("warnings", []).append(message)
            if progress:
                progress({"stage": "warning", "message": message})
        else:
            own_options = {**(eval_options or {}), "null_threshold": card["null_calibration"]["threshold"]}
            card["eval_options"] = {**(card.get("eval_options") or {}), **own_options}
    if progress:
        progress({"stage": "evaluate", "step": 0, "total": 1, "losses": {}})
    if evaluate_fn is not None:
        card["eval"] = evaluate_fn()
    else:
        card["eval"] = {"student" if teacher is not None else "model": eval_scores(kind, model, tokenizer, data,
                                                                                cfg.max_length, own_options)}
    if teacher is not None and evaluate_fn is None:
        t_scores = {k: v for k, v in (teacher_scores or {}).items() if k != "warning"} \
            or eval_scores(kind, teacher, tokenizer, data, cfg.max_length, eval_options)
        card["eval"]["teacher"] = t_scores
        card["eval"]["retention"] = retention(task, card["eval"]["student"].get(task.headline),
                                              t_scores.get(task.headline))
        card["eval"]["headline"] = task.headline
    card["wall_time_s"] = round(time.perf_counter() - t0, 2)
    if card["status"] == "finished":
        _drop_checkpoints(out)
    write_card(out, card)
    try:
        from .model_card import write_model_card

        write_model_card(out, card)
    except ImportError:
        pass
    return card


def _drop_checkpoints(out: Path) -> None:
    """A finished run keeps its weights, tokenizer and cards; the optimizer state
    and intermediate checkpoints (several times the model's size) go. Stopped and
    failed runs keep them, so ``--resume`` works."""
    for sub in ("checkpoints", "stages"):
        shutil.rmtree(out / sub, ignore_errors=True)


def eval_scores(kind, model, tokenizer, data, max_length: int, eval_options: dict | None = None) -> dict:
    """The kind's metrics at the training length (recorded with them), with the
    kind's evaluation settings ``eval_options`` (QA: ``null_threshold``)."""
    result = kind.evaluate(model, tokenizer, data, max_length=max_length, **(eval_options or {}))
    result.pop("predictions", None)
    return {**result, "max_length": max_length}
