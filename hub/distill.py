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
up by example index in every epoch (torchdistill-style caching, ``hub.teacher_cache``). Kinds with a
vocabulary per token (generation, MLM) are too big to cache in full; with
``--logit-cache-topk K`` they keep the teacher's K largest logits per token
(:class:`TopKLogitCache`) and the KD term becomes :func:`hub.losses.sparse_kl`.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from . import losses
from .config import STAGES, DistillConfig, TrainConfig
from .config import default_learning_rate as _default_lr
from .hardware import hardware_info, training_device
from .kinds import check_eval_options, get_kind
from .models import (StudentSpec, UntrainedHeadError, adaptor, build_student, ffn_size, load_model, load_tokenizer,
                     model_size)
from .runs import write_card
from .teacher_cache import LogitCache, ProgressHook, TopKLogitCache, stage_cache
from .tasks import Task, retention

LOSS_TERMS = ("embedding", "attention", "hidden", "prediction")
log = logging.getLogger(__name__)
CHANCE_MARGIN = 0.05  # a teacher within 5 points of the majority-class rate is "near chance"


def default_learning_rate(student: StudentSpec, kind: str | None = None) -> float:
    """See :func:`hub.config.default_learning_rate` (by the task kind, else the student's initialisation)."""
    return _default_lr("custom" if student.kind == "shape" else student.label, kind)


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


class DistillTrainer(Trainer):
    """Trainer whose loss is the distillation loss of one stage, for any task kind."""

    def __init__(self, *args, teacher, stage: str, dcfg: DistillConfig, layer_map: list[int], kind,
                 cache: LogitCache | None = None, terms: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device)
        self.stage, self.dcfg, self.layer_map, self.kind = stage, dcfg, layer_map, kind
        self.cache = cache
        self.terms = terms if terms is not None else {}

    def _save(self, output_dir=None, state_dict=None):
        """Checkpoints of the DistillModule (not a PreTrainedModel: the Trainer writes
        its state dict with safetensors, which refuses tied weights)."""
        super()._save(output_dir, state_dict=_unshared(state_dict if state_dict is not None else self.model.state_dict()))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        idx = inputs.pop("idx")
        inputs.pop("length", None)
        targets = self.kind.split_targets(inputs)
        module = model.module if hasattr(model, "module") else model  # DDP wrapper
        w = self.dcfg.weights
        if self.stage == "intermediate":
            out_S = adaptor(module.student(**inputs, output_hidden_states=True, output_attentions=True))
            with torch.no_grad():
                out_T = adaptor(self.teacher(**inputs, output_hidden_states=True, output_attentions=True))
            terms = intermediate_terms(out_S, out_T, inputs["attention_mask"], self.layer_map, module.fit_dense)
            loss = sum(w[k] * v for k, v in terms.items())
        elif isinstance(self.cache, TopKLogitCache):
            out_S = self.kind.adapt(module.student(**inputs), inputs, targets)
            values, indices = self.cache.get(idx.tolist(), inputs["input_ids"].shape[1], out_S["logits"][0].device)
            # the kind's adaptor picks the positions (generation: 0..L-2) of both, as it does for logits
            values_T = self.kind.adapt(_Logits([values]), inputs, targets)["logits"][0]  # (B, L', k)
            indices_T = self.kind.adapt(_Logits([indices]), inputs, targets)["logits"][0]  # (B, L', k)
            mask = out_S["mask_all"] if self.dcfg.kl_positions == "all" else out_S["mask"]
            pred = losses.sparse_prediction_loss(out_S["logits"][0], values_T, indices_T, out_S["labels"][0],
                                                 self.dcfg.temperature, self.dcfg.alpha, mask)
            terms = {"prediction": pred}
            loss = w["prediction"] * pred
        else:
            out_S = self.kind.adapt(module.student(**inputs), inputs, targets)
            if self.cache is not None:
                logits_T = self.cache.get(idx.tolist(), inputs["input_ids"].shape[1], out_S["logits"][0].device)
                logits_T = self.kind.adapt(_Logits(logits_T), inputs, targets)["logits"]
            else:
                with torch.no_grad():
                    logits_T = self.kind.adapt(self.teacher(**inputs), inputs, targets)["logits"]
            pred = prediction_term(out_S, logits_T, self.dcfg)
            terms = {"prediction": pred}
            loss = w["prediction"] * pred
        self.terms.clear()
        self.terms.update({k: float(v.detach()) for k, v in terms.items()})
        self.terms["total"] = float(loss.detach())
        return (loss, None) if return_outputs else loss


class _Logits:
    """Cached teacher logits dressed as a model output, for the kind's adaptor
    (``logits`` or QA's ``start_logits``/``end_logits``)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.logits = tensors[0]
        if len(tensors) == 2:
            self.start_logits, self.end_logits = tensors


def prediction_term(out_S: dict, logits_T: list[torch.Tensor], dcfg: DistillConfig) -> torch.Tensor:
    """The prediction-layer loss of one batch from the kind's adaptor output of the
    student and the teacher's logits (one tensor per head, shaped like the
    student's); several heads (QA's start and end) are averaged."""
    # --kl-positions all: the KD term on every real token (the kind's mask_all); CE keeps its labels
    mask = out_S["mask_all"] if dcfg.kl_positions == "all" else out_S["mask"]
    return sum(
        losses.prediction_loss(s, t, y, dcfg.temperature, dcfg.alpha, mask, dcfg.divergence, dcfg.jsd_beta)
        for s, t, y in zip(out_S["logits"], logits_T, out_S["labels"])
    ) / len(out_S["logits"])


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
        log_level="warning",  # the Trainer's raw log dicts stay out of the CLI's output
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


def _base_card(kind: str, task: Task, data, cfg: TrainConfig, eval_options: dict | None = None) -> dict:
    import transformers

    card = {
        "kind": kind,
        "task": task.name,
        "status": "running",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": data.source,
        "train": asdict(cfg),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "hardware": hardware_info(training_device()),
    }
    if getattr(data, "label_names", None) is not None:
        card["labels"] = data.label_names
    if eval_options:  # read back by every later load (hub.inference.eval_options)
        card["eval_options"] = dict(eval_options)
    return card


def _run_stage(trainer: Trainer, stage_dir: Path, resume: bool, callback: ProgressCallback) -> dict:
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
    _check_output_dir(out, resume, overwrite)
    tokenizer = load_tokenizer(model_ref)
    set_seed(cfg.seed)  # the new head's initialisation is part of the run: same seed, same weights
    model, _ = load_model(model_ref, task, **kind.head_kwargs(data))
    card = _base_card("teacher", task, data, cfg, eval_options)
    card.update(base_model=model_ref, params=model_size(model))
    train_ds = kind.encode_train(tokenizer, data, cfg.max_length)
    terms: dict = {}
    callback = ProgressCallback("finetune", progress, cancel, cfg.batch_size, terms)
    trainer = _FinetuneTrainer(
        model=model, args=_training_args(out / "checkpoints", cfg, cfg.learning_rate, cfg.epochs),
        train_dataset=train_ds, data_collator=kind.collator(tokenizer), callbacks=[callback], terms=terms, kind=kind,
    )
    return _finish(card, out, model, tokenizer, data, task, cfg,
                   lambda: [_run_stage(trainer, out / "checkpoints", resume, callback)], progress=progress,
                   eval_options=eval_options)


def distill(
    task: Task,
    teacher_ref: str,
    student: StudentSpec,
    data,
    output_dir: str,
    cfg: TrainConfig | None = None,
    dcfg: DistillConfig | None = None,
    progress: ProgressHook | None = None,
    cancel: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    eval_options: dict | None = None,
) -> dict:
    """TinyBERT task distillation of ``teacher_ref`` into ``student``; returns the run card.
    ``eval_options`` as for :func:`finetune` (the teacher is scored with them too)."""
    cfg = cfg or TrainConfig(epochs=1, learning_rate=default_learning_rate(student, task.kind))
    if cfg.learning_rate is None:
        cfg.learning_rate = default_learning_rate(student, task.kind)
    kind = get_kind(task)
    eval_options = check_eval_options(task, eval_options)
    dcfg = dcfg or DistillConfig(stages=kind_stages(kind))
    check_distill_config(kind, task, dcfg)
    teacher, trained = load_model(teacher_ref, task, eager_attention=True)
    if not trained and getattr(kind, "needs_trained_head", True):
        raise UntrainedHeadError(
            f"{teacher_ref} has no trained {task.head} head: its predictions would be random. "
            f"Fine-tune it first: python -m hub finetune --task {task.name} --model {teacher_ref} ..."
        )
    kind.check_teacher(teacher, data)
    vocab = teacher.config.vocab_size
    if dcfg.logit_cache_topk > vocab:
        raise ValueError(f"--logit-cache-topk {dcfg.logit_cache_topk} exceeds the teacher's vocabulary of {vocab} "
                         "tokens; use at most that (k = vocabulary size is the full KL)")
    set_seed(cfg.seed)  # random-init students and heads: same seed, same initial weights
    student_model, default_map = build_student(student, teacher, task, kind.head_kwargs(data))
    n_S, n_T = student_model.config.num_hidden_layers, teacher.config.num_hidden_layers
    layer_map = losses.validate_layer_map(list(dcfg.layer_map), n_S, n_T) if dcfg.layer_map else default_map
    out = Path(output_dir)
    _check_output_dir(out, resume, overwrite)
    tokenizer = load_tokenizer(teacher_ref)
    module = DistillModule(student_model, teacher.config.hidden_size)
    evaluate_fn = None
    if hasattr(kind, "evaluate_pair"):  # scored by the student's distance to the teacher (general distillation)
        teacher_scores: dict = {}

        def pair_scores() -> dict:
            return kind.evaluate_pair(module.student, teacher, tokenizer, data, cfg.max_length, layer_map,
                                      module.fit_dense)

        if progress:
            progress({"stage": "evaluate", "step": 0, "total": 1, "losses": {}})
        initial = pair_scores()  # the same measure before training: what distillation changed

        def distance_scores() -> dict:
            return {"student": pair_scores(), "student_initial": initial, "retention": None, "headline": task.headline}

        evaluate_fn = distance_scores
    else:
        teacher_scores = _teacher_check(teacher_ref, teacher, tokenizer, kind, data, task, cfg, progress,
                                        eval_options)
    train_ds = kind.encode_train(tokenizer, data, cfg.max_length)
    collator = kind.collator(tokenizer)

    card = _base_card("student", task, data, cfg, eval_options)
    card.update(
        teacher=teacher_ref, teacher_params=model_size(teacher), params=model_size(student_model),
        student={"spec": student.label, "layers": n_S, "hidden": student_model.config.hidden_size,
                 "heads": student_model.config.num_attention_heads, "ffn": ffn_size(student_model.config),
                 **({"prune_ffn": student.prune_ffn} if student.prune_ffn else {})},
        layer_map=layer_map, stages=list(dcfg.stages), temperature=dcfg.temperature, alpha=dcfg.alpha,
        divergence=dcfg.divergence, jsd_beta=dcfg.jsd_beta, kl_positions=dcfg.kl_positions, loss_weights=dcfg.weights,
        logit_cache_topk=dcfg.logit_cache_topk,
        intermediate_learning_rate=dcfg.intermediate_learning_rate,
        intermediate_train_samples=_stage_size(kind, data, dcfg),
        attention_target="probabilities (post-softmax), padding masked",
        projection=module.fit_dense is not None,
    )
    if teacher_scores.get("warning"):
        card["warnings"] = [teacher_scores["warning"]]

    def run_stages() -> list[dict]:
        speeds = []
        for stage in dcfg.stages:
            stage_dir = out / "stages" / stage
            done = stage_dir / "final.safetensors"
            if resume and done.is_file():
                from safetensors.torch import load_file

                module.load_state_dict(load_file(str(done)))
                continue
            n = card["intermediate_train_samples"] if stage == "intermediate" else None
            stage_ds = train_ds if n is None else kind.encode_train(tokenizer, kind.first_examples(data, n),
                                                                     cfg.max_length)
            cache = stage_cache(stage, teacher, stage_ds, collator, kind, dcfg, progress, card, cfg.batch_size)
            trainer, callback = stage_trainer(stage, module, teacher, stage_ds, collator, kind, cfg, dcfg, layer_map,
                                              stage_dir, cache, progress, cancel)
            speeds.append({**_run_stage(trainer, stage_dir, resume, callback), "stage": stage})
            from safetensors.torch import save_file

            save_file(_unshared(module.state_dict()), str(done))
        return speeds

    return _finish(card, out, student_model, tokenizer, data, task, cfg, run_stages, progress=progress,
                   teacher=teacher, teacher_scores=teacher_scores, evaluate_fn=evaluate_fn, eval_options=eval_options)


def _stage_size(kind, data, dcfg: DistillConfig) -> int | None:
    """The training examples of the intermediate stage when fewer than all
    (``dcfg.intermediate_train_samples`` below the data's size), else None."""
    n = dcfg.intermediate_train_samples
    total = int((getattr(data, "source", None) or {}).get("train_size") or 0)
    return n if n is not None and (not total or n < total) else None


def stage_trainer(stage: str, module: DistillModule, teacher, train_ds, collator, kind, cfg: TrainConfig,
                  dcfg: DistillConfig, layer_map: list[int], stage_dir: Path, cache: LogitCache | None = None,
                  progress: ProgressHook | None = None,
                  cancel: threading.Event | None = None) -> tuple[DistillTrainer, ProgressCallback]:
    """The Trainer of one distillation stage exactly as :func:`distill` runs it
    (length-grouped batches, dynamic padding, ``cache`` from :func:`stage_cache`);
    also used by ``hub.bench_loop`` to time this loop against a reference."""
    lr = dcfg.intermediate_learning_rate if stage == "intermediate" and dcfg.intermediate_learning_rate \
        else cfg.learning_rate
    terms: dict = {}
    callback = ProgressCallback(stage, progress, cancel, cfg.batch_size, terms)
    trainer = DistillTrainer(
        model=module, args=_training_args(stage_dir, cfg, lr, cfg.epochs), train_dataset=train_ds,
        data_collator=collator, callbacks=[callback], teacher=teacher, stage=stage, dcfg=dcfg,
        layer_map=layer_map, kind=kind, cache=cache, terms=terms,
    )
    return trainer, callback


def kind_stages(kind) -> tuple[str, ...]:
    """The stages a task kind runs by default (and at most): its ``stages``
    attribute (general distillation: intermediate only), else both."""
    return tuple(getattr(kind, "stages", STAGES))


def check_distill_config(kind, task: Task, dcfg: DistillConfig) -> None:
    """Refuse settings the task kind cannot run, before anything is loaded: a stage
    outside its ``stages``, ``kl_positions`` outside its ``kl_positions``
    (a token-level kind whose targets cover only some positions, the MLM), or a
    top-k logit cache for a kind without ``topk_logit_cache`` or with a divergence
    it cannot compute (k > the teacher's vocabulary is checked once it is loaded)."""
    allowed = kind_stages(kind)
    extra = [s for s in dcfg.stages if s not in allowed]
    if extra:
        raise ValueError(
            f"task {task.name!r} runs only the {', '.join(allowed)} stage(s), not {', '.join(extra)}: "
            + getattr(kind, "stages_reason", "its kind has no such stage"))
    if dcfg.kl_positions not in getattr(kind, "kl_positions", ("targets",)):
        raise ValueError(f"--kl-positions {dcfg.kl_positions} does not apply to task {task.name!r}: its KD term "
                         "already covers every position it predicts")
    if dcfg.intermediate_train_samples is not None:
        if "intermediate" not in dcfg.stages:
            raise ValueError("--intermediate-train-samples limits the intermediate stage, which this run does not "
                             f"run (stages: {', '.join(dcfg.stages)})")
        if not hasattr(kind, "first_examples"):
            raise ValueError(f"--intermediate-train-samples does not apply to task {task.name!r}: its training "
                             "text is packed into blocks, not a list of examples (use --max-train-samples)")
    if dcfg.logit_cache_topk:
        if not getattr(kind, "topk_logit_cache", False):
            why = ("its teacher logits are cached in full already" if getattr(kind, "cache_logits", True)
                   else "its teacher gives no vocabulary logits per token")
            raise ValueError(f"--logit-cache-topk does not apply to task {task.name!r}: {why}")
        if dcfg.divergence != "forward":
            raise ValueError(f"--logit-cache-topk needs --divergence forward, not {dcfg.divergence}: the reverse KL "
                             "and the JSD weigh every token by the teacher's probability, and a top-k cache holds "
                             "only k of them; use --logit-cache-topk 0 for those")


def _unshared(state: dict) -> dict:
    """A state dict safetensors can write: contiguous tensors, each stored once
    (tied weights, e.g. an LM head tied to the embeddings, are copied)."""
    seen, out = set(), {}
    for key, value in state.items():
        value = value.contiguous()
        if value.data_ptr() in seen:
            value = value.clone()
        seen.add(value.data_ptr())
        out[key] = value
    return out


def _teacher_check(ref, teacher, tokenizer, kind, data, task: Task, cfg: TrainConfig, progress,
                   eval_options: dict | None = None) -> dict:
    """The teacher's scores on the eval set, before distilling (read from its run
    card when it was evaluated there at the same length with the same evaluation
    settings); a warning when it is near chance (a teacher fine-tuned on too
    little data teaches nothing)."""
    card_path = Path(str(ref)) / "run.json"
    scores = None
    options = eval_options or {}
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        ev = (card.get("eval") or {}).get("model")
        same_settings = ev and all(ev.get(k) == options.get(k, getattr(kind, k, None))
                                   for k in getattr(kind, "eval_options", ()))
        if ev and card.get("status") == "finished" and ev.get("max_length") == cfg.max_length and same_settings \
                and ev.get("eval_size") == data.source.get("eval_size") and data.source.get("eval_file") \
                and card.get("data", {}).get("eval_file") == data.source.get("eval_file"):
            scores = {k: v for k, v in ev.items()}
    if scores is None:
        if progress:
            progress({"stage": "evaluate-teacher", "step": 0, "total": 1, "losses": {}})
        scores = _scores(kind, teacher, tokenizer, data, cfg.max_length, options)
    chance = kind.chance_level(data) if hasattr(kind, "chance_level") else None
    head = task.headline
    if chance is not None and scores.get(head) is not None:
        near = scores[head] <= chance + CHANCE_MARGIN if task.higher_is_better else scores[head] >= chance
        if near:
            below = scores[head] < chance if task.higher_is_better else scores[head] > chance
            where = f"below {kind.chance_name}" if below and hasattr(kind, "chance_name") else "near chance"
            scores["warning"] = (
                f"the teacher's {head} on the eval set ({scores[head]:.4f}) is {where} ({chance:.4f}): "
                "it will teach little, and retention against it means little; fine-tune it on more data first"
            )
            if progress:  # the CLI prints it, a job shows it
                progress({"stage": "warning", "message": scores["warning"], "step": 0, "total": 0, "losses": {}})
            else:
                log.warning(scores["warning"])
    return scores


def _finish(card, out: Path, model, tokenizer, data, task: Task, cfg: TrainConfig, train_fn,
            progress: ProgressHook | None, teacher=None, teacher_scores: dict | None = None,
            evaluate_fn: Callable[[], dict] | None = None, eval_options: dict | None = None) -> dict:
    """Run training, then save the model, evaluate and write run.json — whatever happens.
    ``evaluate_fn`` replaces the evaluation (the card's ``eval``) for kinds scored
    against the teacher (general distillation)."""
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
    if progress:
        progress({"stage": "evaluate", "step": 0, "total": 1, "losses": {}})
    if evaluate_fn is not None:
        card["eval"] = evaluate_fn()
    else:
        card["eval"] = {"student" if teacher is not None else "model": _scores(kind, model, tokenizer, data,
                                                                                cfg.max_length, eval_options)}
    if teacher is not None and evaluate_fn is None:
        t_scores = {k: v for k, v in (teacher_scores or {}).items() if k != "warning"} \
            or _scores(kind, teacher, tokenizer, data, cfg.max_length, eval_options)
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


def _scores(kind, model, tokenizer, data, max_length: int, eval_options: dict | None = None) -> dict:
    """The kind's metrics at the training length (recorded with them), with the
    kind's evaluation settings ``eval_options`` (QA: ``null_threshold``)."""
    result = kind.evaluate(model, tokenizer, data, max_length=max_length, **(eval_options or {}))
    result.pop("predictions", None)
    return {**result, "max_length": max_length}
