"""Our distillation loop timed against a reference loop written the way
TinyBERT's ``task_distill.py`` works (``python -m hub bench-distill``).

Both loops train the same student (two copies of one initial model) from the
same teacher on the same ``steps × batch_size`` training examples (one epoch),
with the same losses (``hub.losses`` through ``hub.distill``'s
``intermediate_terms``/``prediction_term``), optimiser settings and thread
count, so only the loop differs:

* **reference** (TinyBERT's ``task_distill.py``): every example padded to
  ``max_seq_length`` 128 (its ``convert_examples_to_features``), batches in
  random order (``RandomSampler``), a plain PyTorch loop with AdamW, linear
  warm-up and gradient clipping at 1.0, and the teacher run on every step with
  hidden states and attentions in both stages (its modified BERT always returns
  them; no logit cache, no length grouping);
* **ours**: the Trainer that :func:`hub.distill.distill` runs for each stage
  (:func:`hub.distill.stage_trainer`: length-grouped batches, dynamic padding;
  in the prediction stage the student alone, against teacher logits cached once
  by :func:`hub.teacher_cache.stage_cache` — that caching time is *included* in ours —
  and PyTorch's fused attention, SDPA, in the prediction stage: :func:`hub.distill.stage_attention`).

Stages run back to back in one process (reference, then ours, per stage, after
one untimed warm-up step of each model), each loop's prediction stage starting
from the student its own intermediate stage left. A stage's time runs from the
start of its first step to the end of its last (model and optimiser set-up and
the Trainer's final checkpoint are outside; our cache is inside).

Length grouping needs enough steps: the Trainer's sampler sorts megabatches of
``min(n / (4 × batch_size), 50)`` batches, so 20 steps group only 5 batches at a
time (SST-2, batch 32: 19.9 padded tokens per example against 14.7 for a full
sort), while 200 steps or more group 50, as a full SST-2 epoch does. The
result reports the tokens per example each loop actually processed.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainerCallback, get_linear_schedule_with_warmup, set_seed

from . import distill as D
from . import losses
from .config import DistillConfig, TrainConfig
from .hardware import hardware_info, hardware_tag
from .kinds import get_kind
from .models import StudentSpec, adaptor, build_student, load_model, load_tokenizer, set_attention_dropout

REFERENCE_LENGTH = 128  # TinyBERT's max_seq_length for GLUE tasks


class _StepTimer(TrainerCallback):
    """Seconds from the start of training to the end of the last step (before the
    Trainer's end-of-training checkpoint, which ``on_step_end`` precedes)."""

    def __init__(self):
        self.t0 = self.t_end = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.t_end = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.t_end - self.t0


def fixed_length_collator(collator, length: int = REFERENCE_LENGTH):
    """A copy of the kind's collator that pads every example to ``length`` tokens,
    as TinyBERT's feature conversion does (a ``DataCollatorWithPadding``)."""
    if not hasattr(collator, "padding") or not hasattr(collator, "max_length"):
        raise ValueError("bench-distill times classification tasks (their collator pads to a fixed length); "
                         f"this task's collator is a {type(collator).__name__}")
    fixed = copy.copy(collator)
    fixed.padding, fixed.max_length = "max_length", length
    return fixed


def _stage_lr(stage: str, cfg: TrainConfig, dcfg: DistillConfig) -> float:
    """The learning rate :func:`hub.distill.stage_trainer` gives a stage."""
    return dcfg.intermediate_learning_rate if stage == "intermediate" and dcfg.intermediate_learning_rate \
        else cfg.learning_rate


def reference_stage(stage: str, module: D.DistillModule, teacher, train_ds, collator, kind, cfg: TrainConfig,
                    dcfg: DistillConfig, layer_map: list[int], steps: int) -> float:
    """``steps`` optimisation steps of TinyBERT's ``task_distill.py`` loop on
    ``module``; returns the seconds from the first step's start to the last's end.
    ``collator`` pads to a fixed length (:func:`fixed_length_collator`)."""
    from torch.utils.data import DataLoader, RandomSampler

    sampler = RandomSampler(train_ds, generator=torch.Generator().manual_seed(cfg.seed))
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collator)
    optimizer = torch.optim.AdamW(module.parameters(), lr=_stage_lr(stage, cfg, dcfg), weight_decay=cfg.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    w = dcfg.weights
    module.train()
    done, t0 = 0, time.perf_counter()
    while done < steps:
        for batch in loader:  # (B, 128) every step
            batch.pop("idx")
            batch.pop("length", None)
            targets = kind.split_targets(batch)
            raw_S = module.student(**batch, output_hidden_states=True, output_attentions=True)
            with torch.no_grad():  # the teacher on every step, with everything its BERT returns
                raw_T = teacher(**batch, output_hidden_states=True, output_attentions=True)
            if stage == "intermediate":
                terms = D.intermediate_terms(adaptor(raw_S), adaptor(raw_T), batch["attention_mask"], layer_map,
                                             module.fit_dense)
                loss = sum(w[k] * v for k, v in terms.items())
            else:
                out_S = kind.adapt(raw_S, batch, targets)
                loss = w["prediction"] * D.prediction_term(out_S, kind.adapt(raw_T, batch, targets)["logits"], dcfg)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - t0


def our_stage(stage: str, module: D.DistillModule, teacher, train_ds, collator, kind, cfg: TrainConfig,
              dcfg: DistillConfig, layer_map: list[int], stage_dir: Path) -> dict:
    """One stage of :func:`hub.distill.distill`'s own loop (``cfg.max_steps``
    steps): seconds of the teacher-logit cache, of the training steps, and the
    mean padded length of the batches it trained on."""
    D.stage_attention(stage, module.student, teacher)  # as distill's stages run (SDPA in the prediction stage)
    try:
        t0 = time.perf_counter()
        cache = D.stage_cache(stage, teacher, train_ds, collator, kind, dcfg)
        cache_s = time.perf_counter() - t0
        trainer, _ = D.stage_trainer(stage, module, teacher, train_ds, collator, kind, cfg, dcfg, layer_map,
                                     stage_dir, cache)
        trainer.remove_callback(PrinterCallback)
        timer = _StepTimer()
        trainer.add_callback(timer)
        trainer.train()
    finally:  # the reference loop asks both models for attention maps: eager again
        D.stage_attention("intermediate", module.student, teacher)
    batches = [b["input_ids"].shape for _, b in zip(range(cfg.max_steps), trainer.get_train_dataloader())]
    tokens = sum(b.numel() for b in batches) / sum(b[0] for b in batches)  # the data order is seeded: the same batches
    return {"cache_s": cache_s if cache is not None else None, "train_s": timer.seconds,
            "seconds": cache_s + timer.seconds, "tokens_per_example": tokens}


def _setup(task, teacher_ref: str, student: StudentSpec, data, cfg: TrainConfig, dcfg: DistillConfig):
    """Teacher, initial DistillModule, layer map, tokenizer, kind and whether the
    teacher's head is trained, as :func:`hub.distill.distill` builds them. A
    teacher without a trained head (``minilm-l6``) gets a new head with the data's
    labels: its numbers would teach nothing, but its speed is the same."""
    kind = get_kind(task)
    D.check_distill_config(kind, task, dcfg)
    teacher, trained = load_model(teacher_ref, task, eager_attention=True)
    if not trained:
        teacher, _ = load_model(teacher_ref, task, eager_attention=True, **kind.head_kwargs(data))
    kind.check_teacher(teacher, data)
    teacher.eval().requires_grad_(False)
    set_seed(cfg.seed)
    student_model, default_map = build_student(student, teacher, task, kind.head_kwargs(data))
    n_S, n_T = student_model.config.num_hidden_layers, teacher.config.num_hidden_layers
    layer_map = losses.validate_layer_map(list(dcfg.layer_map), n_S, n_T) if dcfg.layer_map else default_map
    module = D.DistillModule(student_model, teacher.config.hidden_size)
    return kind, teacher, module, layer_map, load_tokenizer(teacher_ref), trained


def bench_distill(task, teacher_ref: str, student: StudentSpec, data, steps: int = 50,
                  cfg: TrainConfig | None = None, dcfg: DistillConfig | None = None, threads: int | None = None,
                  log=None) -> dict:
    """Examples/s of our loop and of the reference loop for each stage, and their
    ratio (ours / reference), on the first ``steps × batch_size`` training
    examples of ``data`` (see the module doc)."""
    log = log or (lambda msg: None)
    cfg = copy.copy(cfg or TrainConfig())
    if cfg.learning_rate is None:
        cfg.learning_rate = D.default_learning_rate(student, task.kind)
    cfg.max_steps = steps
    dcfg = dcfg or DistillConfig()
    if threads:
        torch.set_num_threads(threads)
    kind, teacher, initial, layer_map, tokenizer, trained = _setup(task, teacher_ref, student, data, cfg, dcfg)
    if not trained:
        log(f"{teacher_ref} has no trained {task.head} head: a new one is used (timing only, same speed)")
    n = steps * cfg.batch_size
    train_ds = kind.encode_train(tokenizer, data, cfg.max_length)
    if len(train_ds) < n:
        raise ValueError(f"{steps} steps of {cfg.batch_size} need {n} training examples; the data has "
                         f"{len(train_ds)}: lower --steps or --batch-size")
    train_ds = train_ds.select(range(n))
    collator = kind.collator(tokenizer)
    fixed = fixed_length_collator(collator, max(REFERENCE_LENGTH, cfg.max_length))
    log("warm-up step of each model ...")
    reference_stage("intermediate", copy.deepcopy(initial), teacher, train_ds, fixed, kind, cfg, dcfg, layer_map, 1)
    ours, ref = copy.deepcopy(initial), copy.deepcopy(initial)
    if cfg.attention_dropout is not None:  # ours only: the reference trains as TinyBERT's code does
        set_attention_dropout(ours.student, cfg.attention_dropout)
    stages = []
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as work:
        for stage in dcfg.stages:
            log(f"{stage}: reference loop, {steps} steps ...")
            ref_s = reference_stage(stage, ref, teacher, train_ds, fixed, kind, cfg, dcfg, layer_map, steps)
            log(f"{stage}: our loop, {steps} steps ...")
            our = our_stage(stage, ours, teacher, train_ds, collator, kind, cfg, dcfg, layer_map, Path(work) / stage)
            stages.append({
                "stage": stage, "ours_examples_per_s": n / our["seconds"], "reference_examples_per_s": n / ref_s,
                "ratio": ref_s / our["seconds"], "ours_s": our["seconds"], "reference_s": ref_s,
                "cache_s": our["cache_s"], "cache_included": our["cache_s"] is not None,
                "ours_tokens_per_example": our["tokens_per_example"],
                "reference_tokens_per_example": fixed.max_length,
            })
    hw = hardware_info()
    total_ref, total_ours = sum(s["reference_s"] for s in stages), sum(s["ours_s"] for s in stages)
    return {
        "task": task.name, "teacher": teacher_ref, "teacher_head_trained": trained, "student": student.label,
        "steps": steps,
        "batch_size": cfg.batch_size, "examples": n, "mean_length": sum(train_ds["length"]) / n,
        "threads": torch.get_num_threads(), "hardware": hardware_tag(hw), "stages": stages,
        "precision": cfg.precision, "attention_dropout": cfg.attention_dropout,
        "ratio": total_ref / total_ours,
    }


def format_result(result: dict) -> str:
    """A Markdown table, one row per stage, and a line with the overall ratio."""
    lines = ["| Stage | Ours ex/s | Reference ex/s | Ratio | Ours tokens/ex | Reference tokens/ex | Cache s (in ours) |",
             "|---|---|---|---|---|---|---|"]
    for s in result["stages"]:
        cache = f"{s['cache_s']:.2f}" if s["cache_included"] else "–"
        lines.append(f"| {s['stage']} | {s['ours_examples_per_s']:.1f} | {s['reference_examples_per_s']:.1f} | "
                     f"{s['ratio']:.2f}x | {s['ours_tokens_per_example']:.1f} | {s['reference_tokens_per_example']} | "
                     f"{cache} |")
    lines.append(f"\nboth stages: {result['ratio']:.2f}x; {result['steps']} steps of {result['batch_size']} "
                 f"({result['examples']} examples, mean {result['mean_length']:.1f} tokens); "
                 f"{result['threads']} threads; ours in {result.get('precision', 'fp32')}"
                 + (f", attention dropout {result['attention_dropout']:g}" if result.get("attention_dropout") is not None
                    else "") + f"; {result['hardware']}")
    return "\n".join(lines)
