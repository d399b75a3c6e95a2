"""TinyBERT task distillation on top of ``transformers.Trainer`` (the run's life —
folder, progress, cards, finish — and fine-tuning are :mod:`hub.training`'s).

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
import os
import threading
from pathlib import Path

import torch
from torch import nn
from transformers import Trainer, set_seed

from . import losses
from .config import STAGES, DistillConfig, TrainConfig
from .config import default_learning_rate as _default_lr
from .kinds import check_eval_options, get_kind
from .models import (StudentSpec, UntrainedHeadError, adaptor, build_student, ffn_size, load_model, load_tokenizer,
                     model_size, set_attention_dropout)
from .null_calibration import null_calibrator
from .teacher_cache import LogitCache, ProgressHook, TopKLogitCache, stage_cache
from .tasks import Task
from .training import (ProgressCallback, base_card, check_output_dir, check_resume, eval_scores, finish, run_trainer,
                       training_args)

LOSS_TERMS = ("embedding", "attention", "hidden", "prediction")
log = logging.getLogger(__name__)
CHANCE_MARGIN = 0.05  # a teacher within 5 points of the majority-class rate is "near chance"


def default_learning_rate(student: StudentSpec, kind: str | None = None) -> float:
    """See :func:`hub.config.default_learning_rate` (by the task kind, else the student's initialisation)."""
    return _default_lr("custom" if student.kind == "shape" else student.label, kind)


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
        # the Trainer's autocast (--precision bf16) wraps the prepared model's forward; the losses call the
        # student and the teacher directly, so they enter it here (a no-op in fp32); hub.losses work in fp32
        with self.accelerator.autocast():
            loss = self._loss(model, inputs)
        return (loss, None) if return_outputs else loss

    def _loss(self, model, inputs) -> torch.Tensor:
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
        return loss


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
    teacher_cache: str | Path | None = None,
    calibrate_null: bool = False,
) -> dict:
    """TinyBERT task distillation of ``teacher_ref`` into ``student``; returns the run card.
    ``eval_options`` as for :func:`finetune` (the teacher is scored with them too);
    ``teacher_cache``: a folder keeping the teacher's cached logits between runs
    (see :func:`hub.teacher_cache.stage_cache`); ``calibrate_null`` (QA): the finished
    student's null threshold is calibrated to the teacher's "no answer" decisions on
    the real training questions before it is scored (:func:`null_calibrator`)."""
    cfg = cfg or TrainConfig(epochs=1, learning_rate=default_learning_rate(student, task.kind))
    if cfg.learning_rate is None:
        cfg.learning_rate = default_learning_rate(student, task.kind)
    kind = get_kind(task)
    eval_options = check_eval_options(task, eval_options)
    dcfg = dcfg or DistillConfig(stages=kind_stages(kind))
    check_distill_config(kind, task, dcfg)
    if dcfg.negative_target != "label":  # refused here (no made negatives), before anything loads or is deleted
        data = kind.negatives_teacher_only(data)
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
    if cfg.attention_dropout is not None:
        set_attention_dropout(student_model, cfg.attention_dropout)
    n_S, n_T = student_model.config.num_hidden_layers, teacher.config.num_hidden_layers
    layer_map = losses.validate_layer_map(list(dcfg.layer_map), n_S, n_T) if dcfg.layer_map else default_map
    tokenizer = load_tokenizer(teacher_ref)
    # refused here, before --overwrite empties the folder, when it cannot run
    calibrate = null_calibrator(kind, task, teacher_ref, teacher, tokenizer, data, cfg.max_length, eval_options,
                                progress) if calibrate_null else None
    out = Path(output_dir)
    check_output_dir(out, resume, overwrite)
    module = DistillModule(student_model, teacher.config.hidden_size)
    card = base_card("student", task, data, cfg, eval_options)
    card.update(
        teacher=teacher_ref, teacher_params=model_size(teacher), params=model_size(student_model),
        student={"spec": student.label, "layers": n_S, "hidden": student_model.config.hidden_size,
                 "heads": student_model.config.num_attention_heads, "ffn": ffn_size(student_model.config),
                 **({"prune_ffn": student.prune_ffn} if student.prune_ffn else {})},
        layer_map=layer_map, stages=list(dcfg.stages), temperature=dcfg.temperature, alpha=dcfg.alpha,
        divergence=dcfg.divergence, jsd_beta=dcfg.jsd_beta, kl_positions=dcfg.kl_positions, loss_weights=dcfg.weights,
        logit_cache_topk=dcfg.logit_cache_topk,
        negative_target=dcfg.negative_target,
        intermediate_learning_rate=dcfg.intermediate_learning_rate,
        intermediate_train_samples=_stage_size(kind, data, dcfg),
        attention_target="probabilities (post-softmax), padding masked",
        projection=module.fit_dense is not None,
    )
    if resume:
        check_resume(out, card)
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

    if teacher_scores.get("warning"):
        card.setdefault("warnings", []).append(teacher_scores["warning"])

    def run_stages() -> list[dict]:
        speeds = []
        for stage in dcfg.stages:
            stage_dir = out / "stages" / stage
            done = stage_dir / "final.safetensors"
            card.setdefault("attention", {})[stage] = stage_attention(stage, module.student, teacher)
            if resume and done.is_file():
                from safetensors.torch import load_file

                module.load_state_dict(load_file(str(done)))
                continue
            n = card["intermediate_train_samples"] if stage == "intermediate" else None
            stage_ds = train_ds if n is None else kind.encode_train(tokenizer, kind.first_examples(data, n),
                                                                     cfg.max_length)
            cache = stage_cache(stage, teacher, stage_ds, collator, kind, dcfg, progress, card, cfg.batch_size,
                                teacher_cache)
            trainer, callback = stage_trainer(stage, module, teacher, stage_ds, collator, kind, cfg, dcfg, layer_map,
                                              stage_dir, cache, progress, cancel)
            speeds.append({**run_trainer(trainer, stage_dir, resume, callback), "stage": stage})
            from safetensors.torch import save_file

            save_file(_unshared(module.state_dict()), str(done))
        return speeds

    return finish(card, out, student_model, tokenizer, data, task, cfg, run_stages, progress=progress,
                   teacher=teacher, teacher_scores=teacher_scores, evaluate_fn=evaluate_fn, eval_options=eval_options,
                   calibrate=calibrate)


def stage_attention(stage: str, student, teacher) -> dict:
    """Set the attention kernel of both models for ``stage`` and return them: the
    intermediate stage matches attention maps, which only the eager kernel returns;
    the prediction stage needs logits alone and runs PyTorch's SDPA where the
    architecture has it (the same arithmetic; with ``--attention-dropout 0`` its fused
    kernel: a training step on 32 windows of 384 tokens 2.1x faster than eager in fp32
    on this CPU, with BERT's dropout 0.1 a few percent). A saved model does not record
    it (each load chooses)."""
    want = "eager" if stage == "intermediate" else "sdpa"
    used = {}
    for name, model in (("student", student), ("teacher", teacher)):
        if getattr(model.config, "_attn_implementation", None) != want:
            try:
                model.set_attn_implementation(want)
            except (ValueError, ImportError, AttributeError):  # an architecture without SDPA keeps eager
                pass
        used[name] = getattr(model.config, "_attn_implementation", None) or "eager"
    return used


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
        model=module, args=training_args(stage_dir, cfg, lr, cfg.epochs), train_dataset=train_ds,
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
    if dcfg.negative_target != "label":
        if not hasattr(kind, "negatives_teacher_only"):
            raise ValueError(f"--negative-target {dcfg.negative_target} does not apply to task {task.name!r}: only "
                             "extractive QA has made negatives (cloze --negatives)")
        if "prediction" not in dcfg.stages:
            raise ValueError(f"--negative-target {dcfg.negative_target} sets what made negatives teach in the "
                             f"prediction stage, which this run does not run (stages: {', '.join(dcfg.stages)})")
        if dcfg.alpha == 1.0:
            raise ValueError(f"--negative-target {dcfg.negative_target} leaves made negatives to the teacher's term, "
                             "which --alpha 1 weighs 0: they would teach nothing (use an alpha below 1)")
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


def _same_file(a: str | None, b: str | None) -> bool:
    """Whether two recorded paths name one file: the same text, or both found from here and the same file
    (``runs/x.json`` against ``/work/main/runs/x.json``). A relative path written from another folder and not
    found from here is not the same: the teacher is evaluated again rather than trusted."""
    if not a or not b:
        return False
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


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
                and _same_file(card.get("data", {}).get("eval_file"), data.source.get("eval_file")):
            scores = {k: v for k, v in ev.items()}
    if scores is None:
        if progress:
            progress({"stage": "evaluate-teacher", "step": 0, "total": 1, "losses": {}})
        scores = eval_scores(kind, teacher, tokenizer, data, cfg.max_length, options)
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

