"""Task kinds: what differs between classification, QA, masked-LM and generation.

A kind is one module with one object implementing :class:`TaskKind`, registered
in ``KINDS`` (a plain dict). ``distill``, evaluation, the benchmark, the job
runner and the CLI call the kind of a task's record and never branch on a task
name. A new task is a ``Task`` record (``hub/tasks.py``), a kind module here
(when no existing kind fits) and a Compare section (``ui/compare_<kind>.py``).

The interface, in the order the pipeline uses it:

``load_data(task, source, max_train, max_eval, need_train, reference)``
    Read and validate the data (clear errors naming file, column, rows) from a
    :class:`hub.data.DataSource`; returns a kind-specific data object with
    ``.source`` (a dict recorded in run cards) and ``eval_size``.
``head_kwargs(data)``
    Extra ``from_pretrained`` arguments for a model trained on ``data`` (the
    number of labels and their names for classification; nothing for QA).
``check_teacher(teacher, data)``
    Raise ``ValueError`` when a teacher cannot teach on this data (other labels).
``encode_train(tokenizer, data, max_length)``
    A ``datasets.Dataset`` of model inputs plus training targets, with ``idx``
    (stable example index: teacher outputs are cached by it) and ``length``
    (tokens; for length-grouped batches and cache trimming).
``collator(tokenizer)``
    Pads a list of encoded examples into a batch (dynamic padding).
``target_columns``
    The encoded columns that are training targets (``labels``; QA's
    ``start_positions``, ``end_positions``): never the teacher's input, so the
    teacher-logit cache key leaves them out.
``split_targets(batch)``
    Pops the ``target_columns`` out of a batch (and anything else the model
    must not see); returns the targets as a dict of tensors
    that ``model(**inputs, **targets)`` understands (its ``.loss`` is the
    fine-tuning loss).
``adapt(outputs, inputs, targets)``
    The adaptor for the prediction-layer loss: ``{"logits": [tensor, ...],
    "labels": [tensor or None, ...], "mask": (B, L) tensor or None}``. Each
    logits tensor is ``(B, C)`` (one distribution per example) or ``(B, L, C)``
    (one per position; ``mask`` says which positions count). Positions that must
    not take probability (QA's question tokens) are filled with a large negative
    value here, so losses need no task knowledge. Hidden states and attentions
    are read by :func:`hub.models.adaptor`, shared by every kind.
``evaluate(model, tokenizer, data, max_length, batch_size)``
    The task's metrics (keys as in ``Task.metrics``) plus ``predictions`` (a
    list, one per eval example, comparable between two models) and ``eval_size``.
``agreement(predictions_a, predictions_b)``
    Share of eval examples where two models agree (the teacher's view).
``latency_inputs(tokenizer, data, task, fixed_len)``
    Batch-1 encodings the benchmark times: the eval inputs at their natural
    length, or padded/truncated to ``fixed_len`` tokens.
``batches(tokenizer, data, task, batch_size)``
    Batched encodings for the throughput measurement.
``predictor(model, tokenizer, task)``
    An object with ``predict(...)`` for the demo (the kind's Compare section).

Optional attributes, read with ``getattr`` and a default: ``token_level`` and
``cache_logits`` (teacher-logit caching), ``default_max_length``, ``stages``
(the distillation stages the kind runs by default and at most; general
distillation: ``("intermediate",)``) with ``stages_reason``,
``needs_trained_head`` (False: ``distill`` accepts a teacher without a task head),
``bench_fixed_length`` (the fixed length the benchmark times beside the natural one;
default 128, QA its 384-token windows),
``kl_positions`` (the ``DistillConfig.kl_positions`` values it supports; "all"
needs the adaptor's ``mask_all``), ``topk_logit_cache`` (True: ``--logit-cache-topk``
applies; the teacher's logits are (B, L, V) and ``adapt`` only selects positions
of them, so it can select the same positions of cached (B, L, k) top-k values and
indices), ``evaluate_pair(student, teacher, ...)``
(scores a student by its distance to the teacher instead of ``evaluate``),
``first_examples(data, n)`` (the data with its first ``n`` training examples only:
``DistillConfig.intermediate_train_samples`` needs it), and
``eval_options`` (names of keyword settings that ``evaluate`` and ``predictor``
take and that ``evaluate`` returns with its scores; QA: ``null_threshold``). A run
card records the ones a run was given under ``eval_options``, and loaders pass
them back: see :func:`check_eval_options`.
"""

from __future__ import annotations

from typing import Any, Protocol


class TaskKind(Protocol):
    name: str
    head: str
    target_columns: tuple[str, ...]

    def load_data(self, task, source, max_train=None, max_eval=None, need_train=True, reference=None) -> Any: ...

    def head_kwargs(self, data) -> dict: ...

    def check_teacher(self, teacher, data) -> None: ...

    def encode_train(self, tokenizer, data, max_length: int): ...

    def collator(self, tokenizer): ...

    def split_targets(self, batch: dict) -> dict: ...

    def adapt(self, outputs, inputs: dict, targets: dict) -> dict: ...

    def evaluate(self, model, tokenizer, data, max_length: int, batch_size: int = 64) -> dict: ...

    def agreement(self, predictions_a: list, predictions_b: list) -> float: ...

    def latency_inputs(self, tokenizer, data, task, fixed_len: int | None) -> list[dict]: ...

    def batches(self, tokenizer, data, task, batch_size: int) -> list[dict]: ...

    def predictor(self, model, tokenizer, task): ...


_KINDS: dict[str, TaskKind] = {}  # kind name -> its object, filled on first use (kind modules import torch)


def get_kind(task) -> TaskKind:
    """The kind object of a task record (or of a kind name): ``hub.kinds.<name>.KIND``.

    The registry is this plain dict; a kind registers itself by being a module of
    this package named after the kind (``Task.kind``), so adding one touches no
    other file."""
    import importlib

    name = task if isinstance(task, str) else task.kind
    if name not in _KINDS:
        if not name.isidentifier():
            raise NotImplementedError(f"task kind {name!r} is not implemented")
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise NotImplementedError(f"task kind {name!r} is not implemented") from None
        _KINDS[name] = module.KIND
    return _KINDS[name]


def check_eval_options(task, options: dict | None) -> dict:
    """``options`` (``{name: value}``, None for none) checked against the kind's
    ``eval_options``; a name the kind does not take is a ``ValueError`` naming the
    task (``--null-threshold`` on a classification task, say)."""
    options = dict(options or {})
    kind = get_kind(task)
    allowed = tuple(getattr(kind, "eval_options", ()))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        name = task if isinstance(task, str) else task.name
        flags = ", ".join("--" + u.replace("_", "-") for u in unknown)
        raise ValueError(f"{flags} does not apply to task {name} ({kind.name} task); "
                         + (f"it takes {', '.join(allowed)}" if allowed else "it takes no evaluation options"))
    return options
