"""Files a browser uploads as a job's data: checked on the server (type, rows),
copied into a folder of the hub's data home, split when there is no eval file.
Messages name the file's role, never a server path. No torch.
"""

from __future__ import annotations

from pathlib import Path

from ..config import QA_UPLOAD_SUFFIXES, UPLOAD_SUFFIXES

MAX_UPLOAD_ROWS = 50_000
UPLOADS = "uploads"  # under the hub's home: one folder per staged upload
EVAL_FRACTION, MAX_SPLIT_EVAL = 0.1, 1000
MIN_SPLIT_ROWS = 20


def uploads_root() -> Path:
    """The folder of staged uploads (``HUB_HOME/uploads``)."""
    from ..paths import hub_home

    return hub_home() / UPLOADS


def new_upload_dir() -> Path:
    """A fresh folder name under :func:`uploads_root` for one staged upload (created when written)."""
    import secrets

    return uploads_root() / secrets.token_hex(8)


def read_upload(path: str | Path, qa: bool):
    """An uploaded file read as a task's data: SQuAD questions (``.json`` SQuAD, else Hub-style
    rows) for extractive QA, a table otherwise (``hub.data.DataError`` when it is not)."""
    from ..data import read_table
    from ..squad import read_squad, squad_from_records

    path = Path(path)
    if not qa:
        return read_table(path)
    return read_squad(path) if path.suffix.lower() == ".json" else squad_from_records(read_table(path), path.name)


def _read_uploads(train_path, eval_path, suffixes: tuple[str, ...], read, limit: int, unit: str, failure: str,
                  labels: tuple[str, str] = ("training file", "evaluation file")) -> list:
    """The training and evaluation uploads read by ``read`` (an absent one stays None),
    each refused for a type outside ``suffixes``, a read error (``failure``: how the
    message says it; the file named, never its server path) or more than ``limit``
    ``unit`` (its ``len``). ``labels``: what the messages call the two."""
    from ..data import DataError

    out = []
    for label, path in zip(labels, (train_path, eval_path)):
        if path is None:
            out.append(None)
            continue
        path = Path(path)
        if path.suffix.lower() not in suffixes:
            raise DataError(f"the {label} must be one of {', '.join(suffixes)}")
        try:
            data = read(path)
        except DataError as exc:
            raise DataError(f"the {label} {failure}: {str(exc).replace(str(path), path.name)}") from None
        if len(data) > limit:
            raise DataError(f"the {label} has {len(data):,} {unit}; the limit is {limit:,}")
        out.append(data)
    return out


def stage_upload(train_path: str | Path, eval_path: str | Path | None, dest: str | Path,
                 max_rows: int = MAX_UPLOAD_ROWS, seed: int = 42) -> dict:
    """Copy uploaded table(s) into ``dest`` (JSON lines) and return the job's data source
    ``{"train_file", "eval_file"}``.

    Only CSV/TSV/JSONL/Parquet, at most ``max_rows`` rows each; without an eval
    file, a seeded 10% (at most 1,000 rows) of the training file is held out.
    Raises ``hub.data.DataError`` with a message that names no server path.
    """
    from ..data import DataError, read_table

    train_df, eval_df = _read_uploads(train_path, eval_path, UPLOAD_SUFFIXES, read_table, max_rows, "rows",
                                      "could not be read")
    if eval_df is None:
        if len(train_df) < MIN_SPLIT_ROWS:
            raise DataError(f"the training file needs at least {MIN_SPLIT_ROWS} rows to hold out an evaluation split")
        n_eval = min(MAX_SPLIT_EVAL, max(1, int(len(train_df) * EVAL_FRACTION)))
        shuffled = train_df.sample(frac=1.0, random_state=seed)
        eval_df, train_df = shuffled.iloc[:n_eval], shuffled.iloc[n_eval:]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, df in (("train_file", train_df), ("eval_file", eval_df)):
        f = dest / f"{key.split('_')[0]}.jsonl"
        df.to_json(f, orient="records", lines=True, force_ascii=False)
        out[key] = str(f)
    return out


def stage_squad_upload(train_path: str | Path, eval_path: str | Path | None, dest: str | Path,
                       max_questions: int = MAX_UPLOAD_ROWS, seed: int = 42) -> dict:
    """Extractive QA: copy uploaded SQuAD data into ``dest`` as SQuAD 2.0 JSON files and
    return the job's data source ``{"train_file", "eval_file"}``.

    A file is SQuAD JSON (v1.1 or v2.0, ``.json``) or Hub-style rows (``.jsonl``/
    ``.parquet``: id, title, context, question, answers), validated before any training
    (``hub.squad``: the message names the file, article and question at fault); at most
    ``max_questions`` questions each. Without an eval file, whole *paragraphs* are held
    out (seeded, about 10% of the questions, at most 1,000; a paragraph that would take
    the split further from that is skipped): questions about one context never fall on
    both sides.
    """
    import json
    import random

    from ..data import DataError
    from ..squad import squad_document

    train, held = _read_uploads(train_path, eval_path, QA_UPLOAD_SUFFIXES, lambda p: read_upload(p, qa=True),
                                max_questions, "questions", "is not valid SQuAD data")
    if held is None:
        contexts = list(dict.fromkeys(ex["context"] for ex in train))
        if len(contexts) < 2 or len(train) < MIN_SPLIT_ROWS:
            raise DataError(f"the training file needs at least {MIN_SPLIT_ROWS} questions about at least 2 contexts "
                            "to hold out an evaluation split (or upload an evaluation file)")
        random.Random(seed).shuffle(contexts)
        target = min(MAX_SPLIT_EVAL, max(1, int(len(train) * EVAL_FRACTION)))
        per_context: dict[str, int] = {}
        for ex in train:
            per_context[ex["context"]] = per_context.get(ex["context"], 0) + 1
        chosen, n = set(), 0
        for context in contexts:  # a paragraph that would take the split further from its target is skipped
            if n >= target:
                break
            if abs(n + per_context[context] - target) <= abs(n - target) and len(chosen) < len(contexts) - 1:
                chosen.add(context)
                n += per_context[context]
        if not chosen:  # every paragraph is larger than twice the target: the smallest
            chosen.add(min(contexts, key=per_context.__getitem__))
        held = [ex for ex in train if ex["context"] in chosen]
        train = [ex for ex in train if ex["context"] not in chosen]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, examples in (("train_file", train), ("eval_file", held)):
        f = dest / f"{key.split('_')[0]}.json"
        f.write_text(json.dumps(squad_document(examples), ensure_ascii=False))
        out[key] = str(f)
    return out


def stage_selection_upload(path: str | Path, qa: bool, dest: str | Path, max_rows: int | None = None) -> dict:
    """A greedy soup's selection file (``hub.soup_select``): checked as the task's data (SQuAD
    data for extractive QA, a table otherwise; at most ``max_rows``), copied into ``dest``.
    Returns ``{"select_file": its path, "size": its examples}``; ``hub.data.DataError`` with a
    message that names no server path."""
    import json

    from ..soup_select import MAX_SELECT
    from ..squad import squad_document

    max_rows = MAX_SELECT if max_rows is None else max_rows
    suffixes = QA_UPLOAD_SUFFIXES if qa else UPLOAD_SUFFIXES
    data, _ = _read_uploads(path, None, suffixes, lambda p: read_upload(p, qa), max_rows,
                            "questions" if qa else "rows", "is not valid SQuAD data" if qa else "could not be read",
                            labels=("selection file", ""))
    if len(data) == 0:
        from ..data import DataError

        raise DataError("the selection file has no examples")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if qa:
        f = dest / "select.json"
        f.write_text(json.dumps(squad_document(data), ensure_ascii=False))
    else:
        f = dest / "select.jsonl"
        data.to_json(f, orient="records", lines=True, force_ascii=False)
    return {"select_file": str(f), "size": len(data)}
