"""Fine-tuning and TinyBERT task distillation on top of ``transformers.Trainer``.

One Trainer subclass computes the distillation loss of a *stage*:

* ``intermediate``: embedding-output MSE + attention MSE + hidden-state MSE for
  each mapped layer (TinyBERT's first step of task distillation);
* ``prediction``: alpha * CE(hard labels) + (1 - alpha) * T^2 * KL(teacher || student).

Stages run one after the other (default both, as in TinyBERT), each its own
Trainer run with its own checkpoints under ``OUTPUT/stages/NAME``, so a crash
resumes inside the stage that was running and completed stages are skipped.
Because it is the stock Trainer, the same command runs on several GPUs under
``torchrun``/``accelerate launch``. The teacher is frozen, in eval mode, under
no-grad; when a stage needs only its logits, they are computed once and looked
up by example index in every epoch (torchdistill-style caching).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from . import losses
from .data import ClassificationData, tokenize
from .hardware import hardware_info
from .inference import evaluate
from .models import StudentSpec, UntrainedHeadError, adaptor, build_student, load_model, load_tokenizer, model_size
from .tasks import Task

STAGES = ("intermediate", "prediction")
LOSS_TERMS = ("embedding", "attention", "hidden", "prediction")
ProgressHook = Callable[[dict], None]


@dataclass
class TrainConfig:
    """Optimisation settings shared by fine-tuning and each distillation stage."""

    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    seed: int = 42
    save_steps: int = 200
    max_steps: int = -1  # > 0 caps each stage (quick tests)


@dataclass
class DistillConfig:
    stages: tuple[str, ...] = STAGES
    temperature: float = 1.0
    alpha: float = 0.5
    weights: dict = field(default_factory=lambda: {t: 1.0 for t in LOSS_TERMS})
    layer_map: list[int] | None = None  # 1-based teacher layer per student layer; None = uniform
    intermediate_lr: float | None = None  # None: the TrainConfig learning rate

    def __post_init__(self):
        self.stages = tuple(self.stages)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown or not self.stages:
            raise ValueError(f"unknown stage(s) {unknown}; choose from {STAGES}")
        bad = [k for k in self.weights if k not in LOSS_TERMS]
        if bad:
            raise ValueError(f"unknown loss weight(s) {bad}; known: {LOSS_TERMS}")
        self.weights = {**{t: 1.0 for t in LOSS_TERMS}, **{k: float(v) for k, v in self.weights.items()}}
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")
        if not 0 <= self.alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")


def default_learning_rate(student: StudentSpec) -> float:
    """Students initialised from trained weights (teacher layers, a checkpoint) take
    1e-4; randomly initialised shapes (presets, custom) learn faster with 5e-4
    (SST-2, 20k examples, tinybert-4l-312: 73.3% accuracy at 1e-4, 79.7% at 5e-4)."""
    return 5e-4 if student.kind == "shape" else 1e-4


class Cancelled(Exception):
    """Raised internally when the cancel flag stops a run."""


class DistillModule(nn.Module):
    """The trainable part: the student plus TinyBERT's projection W_h that maps
    student hidden states to the teacher's width (one shared Linear, as in the
    official code); the projection is dropped when the student is saved."""

    def __init__(self, student, hidden_T: int):
        super().__init__()
        self.student = student
        hidden_S = student.config.hidden_size
        self.fit_dense = nn.Linear(hidden_S, hidden_T) if hidden_S != hidden_T else None

    def forward(self, **inputs):
        return self.student(**inputs)


class ProgressCallback(TrainerCallback):
    """Reports step/total/loss terms/examples per second and honours a cancel flag."""

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
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # keep the last checkpoint
        return control


class DistillTrainer(Trainer):
    """Trainer whose loss is the distillation loss of one stage."""

    def __init__(self, *args, teacher, stage: str, dcfg: DistillConfig, layer_map: list[int],
                 teacher_logits: torch.Tensor | None = None, terms: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device)
        self.stage, self.dcfg, self.layer_map = stage, dcfg, layer_map
        self.teacher_logits = teacher_logits
        self.terms = terms if terms is not None else {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx")
        labels = inputs.pop("labels", None)
        inputs.pop("length", None)
        module = model.module if hasattr(model, "module") else model  # DDP wrapper
        w = self.dcfg.weights
        if self.stage == "intermediate":
            out_S = adaptor(module.student(**inputs, output_hidden_states=True, output_attentions=True))
            with torch.no_grad():
                out_T = adaptor(self.teacher(**inputs, output_hidden_states=True, output_attentions=True))
            terms = intermediate_terms(out_S, out_T, inputs["attention_mask"], self.layer_map, module.fit_dense)
            loss = sum(w[k] * v for k, v in terms.items())
        else:
            logits_S = adaptor(module.student(**inputs))["logits"]
            if self.teacher_logits is not None:
                logits_T = self.teacher_logits[idx.cpu()].to(logits_S.device)
            else:
                with torch.no_grad():
                    logits_T = adaptor(self.teacher(**inputs))["logits"]
            pred = losses.prediction_loss(logits_S, logits_T, labels, self.dcfg.temperature, self.dcfg.alpha)
            terms = {"prediction": pred}
            loss = w["prediction"] * pred
        self.terms.clear()
        self.terms.update({k: float(v.detach()) for k, v in terms.items()})
        self.terms["total"] = float(loss.detach())
        return (loss, None) if return_outputs else loss


def intermediate_terms(out_S: dict, out_T: dict, attention_mask, layer_map: list[int], fit_dense) -> dict:
    """TinyBERT's intermediate losses for one batch, from adaptor outputs.

    hidden[0] is the embedding output; student layer m (1-based) learns from
    teacher layer layer_map[m-1]; attention tuples are 0-based per layer.
    """
    emb = losses.hidden_mse_loss(out_S["hidden"][0], out_T["hidden"][0], attention_mask, fit_dense)
    att = sum(
        losses.attention_mse_loss(out_S["attention"][m], out_T["attention"][t - 1], attention_mask)
        for m, t in enumerate(layer_map)
    )
    hid = sum(
        losses.hidden_mse_loss(out_S["hidden"][m + 1], out_T["hidden"][t], attention_mask, fit_dense)
        for m, t in enumerate(layer_map)
    )
    return {"embedding": emb, "attention": att, "hidden": hid}


@torch.inference_mode()
def teacher_logits_for(teacher, dataset, collator, batch_size: int = 64, progress: ProgressHook | None = None) -> torch.Tensor:
    """Teacher logits (N, C) for every training example, indexed by ``idx``."""
    teacher.eval()
    device = next(teacher.parameters()).device
    out = torch.empty(len(dataset), teacher.config.num_labels)
    cols = [c for c in dataset.column_names if c not in ("labels", "length")]
    for start in range(0, len(dataset), batch_size):
        batch = collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        idx = batch.pop("idx")
        batch = {k: v.to(device) for k, v in batch.items() if k in cols}
        out[idx] = teacher(**batch).logits.float().cpu()
        if progress:
            progress({"stage": "teacher-logits", "step": min(start + batch_size, len(dataset)), "total": len(dataset),
                      "losses": {}})
    return out


def _training_args(out: Path, cfg: TrainConfig, lr: float, epochs: float) -> TrainingArguments:
    return TrainingArguments(
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
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _check_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise FileExistsError(
            f"{out} already holds files; pass --resume to continue that run or --overwrite to replace it"
        )
    if overwrite and not resume and out.exists() and any(out.iterdir()):
        if not (out / "run.json").is_file():
            raise FileExistsError(f"{out} holds files but no run.json: not replacing a folder the hub did not write")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _write_card(out: Path, card: dict) -> None:
    """Write run.json atomically (a crash never leaves half a file)."""
    tmp = out / "run.json.tmp"
    tmp.write_text(json.dumps(card, indent=2, default=str))
    tmp.replace(out / "run.json")


def _base_card(kind: str, task: Task, data: ClassificationData, cfg: TrainConfig) -> dict:
    import transformers

    return {
        "kind": kind,
        "task": task.name,
        "status": "running",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": data.label_names,
        "data": data.source,
        "train": asdict(cfg),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "hardware": hardware_info(),
    }


def _run_stage(trainer: Trainer, stage_dir: Path, resume: bool, callback: ProgressCallback) -> float:
    """Train one stage (resuming from its last checkpoint); returns wall seconds."""
    ckpt = get_last_checkpoint(str(stage_dir)) if resume and stage_dir.is_dir() else None
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=ckpt)
    if callback.cancelled:
        raise Cancelled(stage_dir.name)
    return time.perf_counter() - t0


def finetune(
    task: Task,
    model_ref: str,
    data: ClassificationData,
    output_dir: str,
    cfg: TrainConfig | None = None,
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Train a task head (and the encoder) on ``data``; returns the run card."""
    cfg = cfg or TrainConfig(epochs=3, learning_rate=1e-4)
    out = Path(output_dir)
    _check_output_dir(out, resume, overwrite)
    tokenizer = load_tokenizer(model_ref)
    model, _ = load_model(model_ref, task, num_labels=len(data.label_names), id2label=data.id2label)
    card = _base_card("teacher", task, data, cfg)
    card.update(base_model=model_ref, params=model_size(model))
    train_ds = tokenize(tokenizer, data.train_texts, data.train_labels, cfg.max_length)
    terms: dict = {}

    class _Trainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs.pop("idx", None)
            inputs.pop("length", None)
            loss = model(**inputs).loss
            terms.clear()
            terms.update({"ce": float(loss.detach()), "total": float(loss.detach())})
            return (loss, None) if return_outputs else loss

    callback = ProgressCallback("finetune", progress, cancel, cfg.batch_size, terms)
    trainer = _Trainer(
        model=model, args=_training_args(out / "checkpoints", cfg, cfg.learning_rate, cfg.epochs),
        train_dataset=train_ds, data_collator=DataCollatorWithPadding(tokenizer), callbacks=[callback],
    )
    return _finish(card, out, model, tokenizer, data, lambda: _run_stage(trainer, out / "checkpoints", resume, callback),
                   n_train=len(train_ds) * cfg.epochs, progress=progress)


def distill(
    task: Task,
    teacher_ref: str,
    student: StudentSpec,
    data: ClassificationData,
    output_dir: str,
    cfg: TrainConfig | None = None,
    dcfg: DistillConfig | None = None,
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """TinyBERT task distillation of ``teacher_ref`` into ``student``; returns the run card."""
    cfg = cfg or TrainConfig(epochs=1, learning_rate=default_learning_rate(student))
    dcfg = dcfg or DistillConfig()
    teacher, trained = load_model(teacher_ref, task, eager_attention=True)
    if not trained:
        raise UntrainedHeadError(
            f"{teacher_ref} has no trained {task.head} head: its predictions would be random. "
            f"Fine-tune it first: python -m hub finetune --task {task.name} --model {teacher_ref} ..."
        )
    t_labels = [teacher.config.id2label[i] for i in range(teacher.config.num_labels)]
    if t_labels != data.label_names:
        raise ValueError(f"the teacher's labels {t_labels} differ from the data's {data.label_names}")
    student_model, default_map = build_student(student, teacher, task)
    n_S, n_T = student_model.config.num_hidden_layers, teacher.config.num_hidden_layers
    layer_map = losses.validate_layer_map(dcfg.layer_map, n_S, n_T) if dcfg.layer_map else default_map
    out = Path(output_dir)
    _check_output_dir(out, resume, overwrite)
    tokenizer = load_tokenizer(teacher_ref)
    module = DistillModule(student_model, teacher.config.hidden_size)
    train_ds = tokenize(tokenizer, data.train_texts, data.train_labels, cfg.max_length)
    collator = DataCollatorWithPadding(tokenizer)

    card = _base_card("student", task, data, cfg)
    card.update(
        teacher=teacher_ref, teacher_params=model_size(teacher), params=model_size(student_model),
        student={"spec": student.label, "layers": n_S, "hidden": student_model.config.hidden_size,
                 "heads": student_model.config.num_attention_heads,
                 "ffn": student_model.config.intermediate_size},
        layer_map=layer_map, stages=list(dcfg.stages), temperature=dcfg.temperature, alpha=dcfg.alpha,
        loss_weights=dcfg.weights, attention_target="probabilities (post-softmax), padding masked",
        projection=module.fit_dense is not None,
    )

    def run_stages() -> float:
        wall = 0.0
        for stage in dcfg.stages:
            stage_dir = out / "stages" / stage
            done = stage_dir / "final.safetensors"
            if resume and done.is_file():
                from safetensors.torch import load_file

                module.load_state_dict(load_file(str(done)))
                continue
            terms: dict = {}
            cached = None
            if stage == "prediction" and dcfg.alpha < 1.0:
                cached = teacher_logits_for(teacher, train_ds, collator, progress=progress)  # once, reused every epoch
            lr = dcfg.intermediate_lr if stage == "intermediate" and dcfg.intermediate_lr else cfg.learning_rate
            callback = ProgressCallback(stage, progress, cancel, cfg.batch_size, terms)
            trainer = DistillTrainer(
                model=module, args=_training_args(stage_dir, cfg, lr, cfg.epochs), train_dataset=train_ds,
                data_collator=collator, callbacks=[callback], teacher=teacher, stage=stage, dcfg=dcfg,
                layer_map=layer_map, teacher_logits=cached, terms=terms,
            )
            wall += _run_stage(trainer, stage_dir, resume, callback)
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(done))
        return wall

    n_train = len(train_ds) * cfg.epochs * len(dcfg.stages)
    return _finish(card, out, student_model, tokenizer, data, run_stages, n_train=n_train,
                   progress=progress, teacher=teacher)


def _finish(card, out: Path, model, tokenizer, data: ClassificationData, train_fn, n_train: float,
            progress: ProgressHook | None, teacher=None) -> dict:
    """Run training, then save the model, evaluate and write run.json — whatever happens."""
    _write_card(out, card)
    t0 = time.perf_counter()
    try:
        train_s = train_fn()
        card["status"] = "finished"
    except Cancelled:
        card["status"] = "stopped"
        train_s = time.perf_counter() - t0
    except BaseException as exc:
        card.update(status="failed", error=f"{type(exc).__name__}: {exc}", wall_time_s=time.perf_counter() - t0)
        _write_card(out, card)
        raise
    card["wall_time_s"] = round(time.perf_counter() - t0, 2)
    card["train_examples_per_s"] = round(n_train / max(train_s, 1e-9), 2) if card["status"] == "finished" else None
    model.save_pretrained(str(out))  # safetensors
    tokenizer.save_pretrained(str(out))
    if progress:
        progress({"stage": "evaluate", "step": 0, "total": 1, "losses": {}})
    card["eval"] = {"student" if teacher is not None else "model": _scores(model, tokenizer, data)}
    if teacher is not None:
        card["eval"]["teacher"] = _scores(teacher, tokenizer, data)
        t_acc, s_acc = card["eval"]["teacher"]["accuracy"], card["eval"]["student"]["accuracy"]
        card["eval"]["retention"] = s_acc / t_acc if t_acc else None
    _write_card(out, card)
    return card


def _scores(model, tokenizer, data: ClassificationData) -> dict:
    result = evaluate(model, tokenizer, data.eval_texts, data.eval_labels)
    result.pop("predictions")
    return {**result, "eval_size": len(data.eval_texts)}
