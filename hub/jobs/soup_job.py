"""A model-soup job (the Distill tab's "Average students"): the uniform weight
average of finished students of one task (``hub.soup``: distilled from one start,
e.g. several seeds or learning rates), written to ``models_dir()/<job name>/student``,
evaluated on the evaluation data its ingredients were scored on and benchmarked
against their teacher (quick protocol, a fresh process) like any distilled student.

``validate_soup_params`` runs on the server (no torch); ``run_soup`` in the job's
child process (``hub.jobs.runner``), which checks that the ingredients can be
averaged (``hub.soup.check_ingredients``) before writing anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..paths import models_dir
from .params import ParamsError, safe_name
from .registry import short_name, trained_models
from .uploads import uploads_root

MAX_INGREDIENTS = 16
SOUP_KEYS = ("task", "models", "name", "benchmark", "calibrate_null", "select_file", "select_teacher")
FINISHED = "finished"
SELECT_NAMES = ("select.json", "select.jsonl")  # what hub.jobs.uploads.stage_selection_upload writes


def soup_students(task: str, root: str | Path | None = None) -> list:
    """The finished students of ``task`` this server wrote (``hub.jobs.registry``), newest first:
    what a soup may average."""
    return [e for e in trained_models(task, root=root) if e.role == "student" and e.status == FINISHED]


def validate_soup_params(params: dict) -> dict:
    """``{task, models: [2..16 model keys], name, benchmark, calibrate_null}`` checked: a known
    task, distinct finished students of that task (keys of this server's models, never paths), a
    folder-safe name, ``calibrate_null`` for extractive QA only. Raises :class:`ParamsError` (a
    ``ValueError``)."""
    from ..tasks import TASKS

    if not isinstance(params, dict):
        raise ParamsError("soup parameters must be a dict")
    unknown = sorted(set(params) - set(SOUP_KEYS))
    if unknown:
        raise ParamsError(f"unknown soup parameter(s) {unknown}; use {list(SOUP_KEYS)}")
    task = TASKS.get(params.get("task"))
    if task is None or not task.implemented:
        raise ParamsError(f"task must be one of {[n for n, t in TASKS.items() if t.implemented]}")
    models = params.get("models")
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) for m in models):
        raise ParamsError("models must be a list of model names")
    models = list(dict.fromkeys(models))
    if not 2 <= len(models) <= MAX_INGREDIENTS:
        raise ParamsError(f"pick between 2 and {MAX_INGREDIENTS} different students to average")
    known = {e.key for e in soup_students(task.name)}
    missing = [m for m in models if m not in known]
    if missing:
        raise ParamsError(f"not a finished {task.name} student of this server: {', '.join(missing)}")
    flags = {k: params.get(k, default) for k, default in (("benchmark", True), ("calibrate_null", False))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ParamsError(f"{key} must be true or false")
    if flags["calibrate_null"] and task.kind != "qa":
        raise ParamsError(f"calibrate_null sets an extractive-QA soup's \"no answer\" threshold; task {task.name} "
                          f"is {task.kind}")
    select = params.get("select_file")
    if select is not None:  # a greedy soup: only a selection file this server staged (never any server path)
        from ..soup_select import check_greedy

        try:
            check_greedy(task)
        except ValueError as exc:
            raise ParamsError(str(exc)) from None
        uploads = uploads_root().resolve()
        staged = Path(select).resolve() if isinstance(select, str) else None
        if staged is None or staged.parent.parent != uploads or staged.name not in SELECT_NAMES \
                or not staged.is_file():
            raise ParamsError("select_file must be a selection file uploaded to this server")
    teacher = params.get("select_teacher", True)
    if not isinstance(teacher, bool):
        raise ParamsError("select_teacher must be true or false")
    return {"task": task.name, "models": models, "name": safe_name(params.get("name") or f"{task.name}-soup"),
            **flags, **({"select_file": select, "select_teacher": teacher} if select is not None else {})}


def run_soup(ctx) -> dict:
    """Average, evaluate, benchmark; returns the job's result (``hub.jobs.runner``)."""
    from ..data import DataSource
    from ..inference import trained_length
    from ..kinds import get_kind
    from ..models import load_model, load_tokenizer
    from ..runs import read_card
    from ..soup import check_ingredients, eval_source, make_soup, trained_options
    from ..tasks import get_task
    from ..training import eval_scores
    from .pipeline import GENERAL_BENCH, benchmark_in_child, summary

    p = validate_soup_params(ctx.params)
    task = get_task(p["task"])
    entries = {e.key: e for e in soup_students(task.name)}
    folders = [entries[k].path for k in p["models"]]
    check_ingredients(folders, task.name)  # refused (one start, one shape) before anything is written
    cards = [read_card(f) or {} for f in folders]
    out = models_dir() / ctx.name / "student"
    ctx.output("student", out)
    result: dict = {"name": ctx.name, "status": FINISHED, "ingredients": p["models"], "student": None, "rows": []}
    source = eval_source(cards)
    kind = get_kind(task)

    # as the ingredients were scored (hub.training.eval_scores): their training length and evaluation options
    lengths = [trained_length(f, getattr(kind, "default_max_length", 128)) for f in folders]
    # as inference.eval_options reads them, less a threshold calibrated to one of them
    options = [trained_options(c, getattr(kind, "eval_options", ())) for c in cards]
    if len(set(lengths)) > 1 or any(o != options[0] for o in options):
        ctx.log(f"the students were scored at lengths {sorted(set(lengths))} with options {options}: the soup is "
                f"scored at the first one's, {lengths[0]} tokens, {options[0]}")

    teacher = entries[p["models"][0]].teacher  # resolved (a CLI card may name it relative to where it ran)
    calibration = _calibration_questions(task, cards[0], teacher) if p["calibrate_null"] else None  # before writing

    def evaluate(folder, null_threshold: float | None = None) -> dict:
        ctx.end_phase()
        ctx.phase("evaluate" if null_threshold is None else "rescore")  # rescore: at a calibrated threshold
        ref = str(folder)
        model, _ = load_model(ref, task)
        data = kind.load_data(task, DataSource(**source[0]), max_eval=source[1], need_train=False, reference=model)
        scored = options[0] if null_threshold is None else {**options[0], "null_threshold": null_threshold}
        scores = eval_scores(kind, model, load_tokenizer(ref), data, lengths[0], scored)
        ctx.end_phase()
        return scores

    selection = None
    if p.get("select_file"):
        from ..training import Cancelled

        try:
            folders, selection = _select(ctx, task, folders, cards, options[0], lengths[0], teacher,
                                         p["select_teacher"])
        except BaseException as exc:  # nothing written: the upload goes too (a rerun uploads it again)
            shutil.rmtree(Path(p["select_file"]).parent, ignore_errors=True)
            if isinstance(exc, Cancelled):
                ctx.log(f"{exc}: nothing was written")
                return {**result, "status": "stopped"}
            raise
        result["ingredients"] = [r["name"] for r in selection["ingredients"] if r["kept"]]  # in the order added
    ctx.phase("soup", 0, len(folders))  # its time grows with the ingredients
    ctx.log(f"averaging the weights of {len(folders)} students: {', '.join(result['ingredients'])}" if len(folders) > 1
            else f"the soup is {result['ingredients'][0]} alone (a copy of its weights)")
    if source is None:
        ctx.log("the students were not all scored on one evaluation set: the soup is saved without scores")
    try:
        make_soup(folders, out, task.name, evaluate=evaluate if source and task.head else None, selection=selection,
                  eval_options=options[0] if selection else None)
    finally:
        ctx.end_phase()
        result["student"] = summary(out)
    if calibration is not None and not ctx.cancel.is_set() and (result["student"] or {}).get("status") == FINISHED:
        result["calibration"] = _calibrate(ctx, task, out, teacher, calibration,
                                           rescore=(lambda t: evaluate(out, t)) if source and task.head else None)
        result["student"] = summary(out)
    if ctx.cancel.is_set():
        ctx.log("stop requested: the soup is kept; the benchmark is skipped")
        result["benchmark"] = "skipped: stop requested"
        return result
    if not p["benchmark"]:
        return result
    if len(result["ingredients"]) == 1:  # a greedy soup that kept one: a copy of a benchmarked student
        ctx.log(f"no benchmark: the soup is {result['ingredients'][0]} alone, whose rows it would repeat")
        result["benchmark"] = "skipped: the soup is one of its students"
        return result
    if not task.head:
        ctx.log(f"no benchmark: {GENERAL_BENCH}")
        result["benchmark"] = "skipped: a student without a task head"
        return result
    if not (source and _teacher_found(teacher)):
        ctx.log("no benchmark: the students share no teacher and evaluation set to time the soup against")
        result["benchmark"] = "skipped: no teacher or evaluation set in common"
        return result
    result["rows"] = benchmark_in_child(ctx, task.name, teacher, [str(out)], source[0], source[1], result)
    ctx.log(f"soup written: {short_name(out)}")
    return result


def _teacher_found(teacher: str | None) -> bool:
    """Whether the students' teacher (a folder or Hub id) can be loaded from here."""
    from ..config import is_hub_id

    return bool(teacher) and (Path(teacher).is_dir() or is_hub_id(teacher))


def _selection_data(task, folders: list, cards: list[dict], select_file: str, teacher: str | None,
                    by_teacher: bool):
    """A greedy soup's selection set read as the task's data (a classifier's labels: the first
    student's) and checked before any scoring: the students' ``teacher`` found here when the choice
    is ``by_teacher`` (agreement), no example shared with the students' evaluation sets. Returns
    (the data, those sets)."""
    from ..data import DataError, DataSource
    from ..kinds import get_kind
    from ..models import load_model
    from ..soup_select import check_held_out, ingredient_evaluations

    if by_teacher and not _teacher_found(teacher):
        raise DataError("choosing by agreement with the teacher needs the students' teacher, and their run cards "
                        "name none found here: choose by the selection file's labels")
    reference = load_model(str(folders[0]), task)[0]
    selection = get_kind(task).load_data(task, DataSource(eval_file=select_file), need_train=False,
                                         reference=reference)
    evaluations = ingredient_evaluations(task, cards, reference)
    check_held_out(task, selection, evaluations)
    return selection, evaluations


def check_selection(task_name: str, models: list[str], select_file: str, select_teacher: bool) -> None:
    """The server's check, before queueing, of a greedy soup's selection file (:func:`_selection_data`)."""
    from ..runs import read_card
    from ..tasks import get_task

    entries = {e.key: e for e in soup_students(task_name)}
    folders = [entries[k].path for k in models]
    _selection_data(get_task(task_name), folders, [read_card(f) or {} for f in folders], select_file,
                    entries[models[0]].teacher, select_teacher)


def _select(ctx, task, folders: list, cards: list[dict], options: dict, length: int, teacher: str | None,
            by_teacher: bool):
    """A greedy soup's ingredients (``hub.soup_select.choose``) chosen on the job's selection file,
    scored as the soup will be (the first ingredient's length and options) against ``teacher``'s
    predictions when ``by_teacher``, else the file's labels: (the chosen folders, the record for
    the soup's card, whose ingredients are named as the page names them). Refused before any
    scoring as :func:`_selection_data` says; a stop ends it at the next pass (``hub.training.Cancelled``)."""
    from ..soup_select import choose, score_name, selection_passes, selection_size
    from ..training import Cancelled

    selection, evaluations = _selection_data(task, folders, cards, ctx.params["select_file"], teacher, by_teacher)
    teacher = teacher if by_teacher else None
    size = selection_size(task, selection)
    total = selection_passes(len(folders), teacher is not None) * size
    done = [0]

    def step(line: str) -> None:
        done[0] += size * (2 if line.startswith("the teacher") else 1)  # as selection_passes counts them
        ctx.phase("select", min(done[0], total), total)
        ctx.log(line)
        if ctx.cancel.is_set():
            raise Cancelled("stopped while choosing the students")

    ctx.phase("select", 0, total)
    ctx.log(f"choosing the students greedily on the selection file ({size:,} examples; "
            f"{score_name(task, teacher)}) ...")
    names = {str(f): k for k, f in zip(ctx.params["models"], folders)}  # the page's keys, never server paths
    chosen, record = choose(task, folders, options, selection, str(Path(ctx.params["select_file"]).resolve()),
                            label=lambda f: names.get(str(f), Path(f).name), teacher=teacher, max_length=length,
                            progress=step)
    ctx.end_phase()
    ctx.log(f"greedy soup: {len(chosen)} of {len(folders)} students kept")
    return chosen, record


def check_calibration(task_name: str, models: list[str]) -> None:
    """The server's check, before queueing, that a soup of ``models`` (keys) can be calibrated."""
    from ..tasks import get_task

    entries = {e.key: e for e in soup_students(task_name)}
    first = entries[models[0]]
    _calibration_questions(get_task(task_name), first.card, first.teacher)


def _calibration_questions(task, card: dict, teacher: str | None) -> tuple[list[dict], dict]:
    """(questions, their source as calibrate-null flags) a soup's null threshold is calibrated on
    (``calibrate_null``): the real training questions its first ingredient trained on
    (``hub.soup.trained_sizes``: not the rest of a larger file or Hub split). Refused before
    the soup is written when there is no teacher, no training data found from here, or too
    few articles."""
    from ..augment import training_questions
    from ..data import DataError, DataSource
    from ..null_calibration import calibration_questions
    from ..soup import train_source, trained_sizes

    if not _teacher_found(teacher):
        raise DataError("calibrating the soup's \"no answer\" needs its students' teacher, and their run cards "
                        "name none found here")
    kw = train_source(card)
    if kw is None:
        raise DataError("calibrating the soup's \"no answer\" reads its students' training questions, and their "
                        "training data is not found here")
    read, own = trained_sizes(card)
    questions, _ = training_questions(task, DataSource(**kw), read)
    return calibration_questions(questions)[:own], {**kw, "max_train_samples": read}


def _calibrate(ctx, task, out: Path, teacher: str, calibration: tuple[list[dict], dict], rescore) -> str:
    """The soup's null threshold calibrated to its teacher's "no answer" decisions
    (``hub.null_calibration``) and recorded as its own, its scores redone at it, as
    ``calibrate-null --apply`` does; a failure leaves the soup as it was scored (a warning in
    the log). Returns what happened, for the job's result."""
    from ..null_calibration import calibrate_saved, record_calibration

    questions, source = calibration
    ctx.phase("calibrate", 0, 2 * len(questions))
    ctx.log(f"calibrating the soup's null threshold to the teacher's \"no answer\" decisions on {len(questions):,} "
            "training questions, each with its own paragraph and another article's ...")
    try:
        result = calibrate_saved(task, teacher, str(out), questions)  # the soup's own threshold and length
        ctx.end_phase()
        where = source.get("train_file") or source.get("dataset")
        record_calibration(out, result, teacher, str(where), rescore=rescore, source=source)
    except Exception as exc:  # the soup stays as it was written and scored
        ctx.end_phase()
        message = f"calibration failed ({type(exc).__name__}: {exc}): the soup keeps its threshold"
        ctx.progress({"stage": "warning", "message": message})
        return f"failed: {exc}"
    ctx.log(f"null threshold {result['threshold']:.4g}: agreement with the teacher {result['agreement']:.3f} "
            f"(was {result['agreement_at_prefer']:.3f}); the soup is scored at it")
    return f"threshold {result['threshold']:.4g}"


def soup_estimate(params: dict, jobs_root: str | Path | None = None, select_size: int | None = None) -> dict:
    """Seconds a soup job will take, phase by phase, before it starts: a greedy soup's choice
    (``select_size`` examples of its selection file scored about twice per student), averaging (per
    ingredient), the evaluation (the ingredients' evaluation set), the calibration (two
    pairs per real training question of the first ingredient) and the benchmark, each
    from the newest finished soup job of the task on this machine (``earlier_phases``),
    else the default guesses. Returns ``seconds``, ``phases`` (name -> seconds, basis,
    source), ``overhead_s`` and ``basis``; run cards are read as JSON, nothing is loaded."""
    from ..soup import trained_sizes
    from ..tasks import get_task
    from .estimate_rates import DEFAULT_GUESS, MEASURED, OVERHEAD_S, _phase_seconds, earlier_phases

    p = validate_soup_params(params)
    task = get_task(p["task"])
    entries = {e.key: e for e in soup_students(task.name)}
    cards = [entries[k].card for k in p["models"]]
    earlier = earlier_phases(p, jobs_root)
    data = [(c.get("data") or {}) for c in cards]
    n_eval = int(data[0].get("eval_size") or data[0].get("eval_blocks") or 0)
    phases = {}
    if select_size:
        from ..soup_select import selection_passes

        passes = selection_passes(len(cards), params.get("select_teacher", True))  # as _select counts them
        phases["select"] = _phase_seconds("select", passes * select_size, earlier, task.kind)
    phases["soup"] = _phase_seconds("soup", len(cards), earlier, task.kind)
    if n_eval and task.head:
        phases["evaluate"] = _phase_seconds("evaluate", n_eval, earlier, task.kind)
    if p["calibrate_null"]:
        questions = int(trained_sizes(cards[0])[1] or 0)
        phases["calibrate"] = _phase_seconds("calibrate", 2 * questions, earlier, task.kind)
        if n_eval and task.head:  # scored again at the new threshold
            phases["rescore"] = _phase_seconds("rescore", n_eval, earlier, task.kind)
    if p["benchmark"] and task.head and n_eval:
        phases["benchmark"] = _phase_seconds("benchmark", n_eval, earlier, task.kind)
    return {"seconds": round(sum(ph["seconds"] for ph in phases.values()) + OVERHEAD_S, 1), "phases": phases,
            "overhead_s": OVERHEAD_S,
            "basis": MEASURED if all(ph["basis"] == MEASURED for ph in phases.values()) else DEFAULT_GUESS}
