"""The Distill tab's cost estimate: a form's job (and the Quick start's) in
seconds on this server, phase by phase, with what the number rests on; and the
``/estimate`` API.
"""

from __future__ import annotations

from hub import jobs, views

from . import DEFAULT_TASK, MESSAGE_LABELS, esc, implemented_tasks, log, refuse
from .distill_form import (CUSTOM_SHAPE, HUB, LOCAL, UPLOAD, _teacher_trained, job_params, local_datasets,
                           quick_start_params)

# ---------------------------------------------------------------- the estimate


ESTIMATE_PHASES = {"evaluate-teacher": "evaluate the teacher", "augment": "augment the training data",
                   "cloze": "make cloze questions",
                   "teacher-logits": "cache the teacher's logits",
                   "calibrate": "calibrate \"no answer\" to the teacher",
                   "rescore": "score again at the new threshold",
                   "evaluate": "evaluate the student", "benchmark": "benchmark both"}


def basis_text(e: dict) -> str:
    """What an estimate rests on: "measured on N earlier runs on this machine" or "default guess"."""
    used = list(e["phases"].values())
    measured = [ph for ph in used if ph.get("basis") == "measured"]
    if not measured:
        return "default guess: no earlier run like this one on this machine"
    runs = {ph["source"].split(",")[0].removeprefix("measured: ") for ph in measured}
    guess = "" if len(measured) == len(used) else ", the rest a default guess"
    return f"measured on {len(runs)} earlier run{'s' if len(runs) > 1 else ''} on this machine{guess}"


def estimate_markdown(form: dict) -> str:
    """The cost estimate of the form's job, with its basis, before it starts."""
    task, teacher = form.get("task"), form.get("teacher")
    source, data = form.get("source"), None
    if source == LOCAL and form.get("local_name") in local_datasets(task or DEFAULT_TASK):
        data = local_datasets(task)[form["local_name"]]
    elif source == HUB and form.get("hub_id"):
        data = {"dataset": form["hub_id"].strip(), "dataset_config": (form.get("hub_config") or "").strip() or None}
    elif source == UPLOAD and form.get("upload_train"):  # gradio's own upload paths: rows are counted
        data = {"train_file": form["upload_train"], "eval_file": form.get("upload_eval") or form["upload_train"]}
    # the parameters Start would queue (but the upload paths), so the estimate finds earlier jobs like this one
    params = job_params(form, data)
    params.pop("name")  # the run's name is checked when it starts
    if form.get("student") == "custom":  # an empty shape field: its default, as the fields show
        params.update({k: form.get(k) or v for k, v in CUSTOM_SHAPE.items()})
    try:
        e = jobs.estimate(params, teacher_trained=_teacher_trained(teacher, task) if teacher else None)
    except ValueError as exc:
        return f"**Cannot estimate yet:** {esc(views.page_message(str(exc), MESSAGE_LABELS))}"
    parts = []
    for name, ph in e["phases"].items():
        took = views.format_seconds(ph["seconds"])
        if name in ("finetune", "distill"):
            r, tokens = e["rates"][name], e.get("block_tokens")
            if tokens:  # packed text: count and rate in tokens
                n = (e["finetune_examples"] if name == "finetune" else e["distill_examples"]) * tokens
                what = f"{'fine-tune' if name == 'finetune' else 'distill'} {n:,.0f} tokens ({e['unit']})"
                parts.append(f"{what} at {r['examples_per_s'] * tokens:.0f} tokens/s ≈ {took}")
                continue
            what = (f"fine-tune {e['finetune_examples']:,.0f} examples" if name == "finetune" else
                    f"distill {e['distill_examples']:,.0f} example-passes")
            parts.append(f"{what} at {r['examples_per_s']:.0f}/s ≈ {took}")
        elif ph.get("cached"):  # an earlier job on the same windows left the teacher's logits on disk
            parts.append(f"read the teacher's logits an earlier job cached ≈ {took}")
        else:
            parts.append(f"{ESTIMATE_PHASES.get(name, name)} ≈ {took}")
    parts.append(f"start-up and loading ≈ {views.format_seconds(e.get('overhead_s'))}")
    note = "" if _teacher_trained(teacher, task) is not None else " (plus fine-tuning if this Hub model has no head)"
    return (f"**Estimated time: ~{views.format_seconds(e['seconds'])}**{note} · basis: "
            f"{esc(basis_text(e))}<br>" + esc("; ".join(parts)) + ".")


def quick_start_estimate() -> str:
    """The Quick start's expected time on this server (``hub.jobs.estimate`` of its own params)."""
    try:
        e = jobs.estimate(quick_start_params(), teacher_trained=False)
    except ValueError as exc:
        log.info("no quick start estimate: %s", exc)
        return ""
    return f"about {views.format_seconds(e['seconds'])} here ({basis_text(e)})"


# ---------------------------------------------------------------- API


def api_estimate(task: str, teacher: str, student: str, finetune_samples: int, train_samples: int,
                 finetune_epochs: float, epochs: float, stages: list[str], precision: str = "fp32",
                 attention_dropout: float | None = None) -> dict:
    """Seconds a distillation job would take on this server, before starting it, and
    what the number rests on (``basis``: "measured" or "default guess").

    Args:
        task: a task name, e.g. "sst2".
        teacher: "minilm-l6" (fine-tuned first), a teacher name from /models, or a Hub id.
        student: tinybert-4l-312, tinybert-6l-768, teacher-layers:K or custom.
        finetune_samples: training examples for fine-tuning a teacher without a head (16 to 100,000).
        train_samples: training examples for distillation (16 to 100,000).
        finetune_epochs: epochs of fine-tuning (0.1 to 10).
        epochs: epochs per distillation stage (0.1 to 10).
        stages: a subset of ["intermediate", "prediction"].
        precision: "fp32" (default) or "bf16" (training arithmetic).
        attention_dropout: dropout on the attention probabilities while training; None: the model's own.
    """
    if task not in implemented_tasks():
        raise refuse(f"Unknown task; choose one of {', '.join(implemented_tasks())}.")
    params = {"task": task, "teacher": teacher, "student": student, "finetune_samples": finetune_samples,
              "train_samples": train_samples, "finetune_epochs": finetune_epochs, "epochs": epochs,
              "stages": stages, "precision": precision, "attention_dropout": attention_dropout, **CUSTOM_SHAPE}
    try:
        return jobs.estimate(params, teacher_trained=_teacher_trained(teacher, task) if isinstance(teacher, str)
                             else None)
    except ValueError as exc:
        raise refuse(views.redact_text(str(exc))) from None
