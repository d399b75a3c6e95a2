"""Files a browser uploads as a job's data: checked on the server (type, rows),
copied into a folder of the hub's data home, split when there is no eval file.
Messages name the file's role, never a server path. No torch.
"""

from __future__ import annotations

from pathlib import Path

from ..config import UPLOAD_SUFFIXES

MAX_UPLOAD_ROWS = 50_000
EVAL_FRACTION, MAX_SPLIT_EVAL = 0.1, 1000
MIN_SPLIT_ROWS = 20


def stage_upload(train_path: str | Path, eval_path: str | Path | None, dest: str | Path,
                 max_rows: int = MAX_UPLOAD_ROWS, seed: int = 42) -> dict:
    """Copy uploaded table(s) into ``dest`` (JSON lines) and return the job's data source
    ``{"train_file", "eval_file"}``.

    Only CSV/TSV/JSONL/Parquet, at most ``max_rows`` rows each; without an eval
    file, a seeded 10% (at most 1,000 rows) of the training file is held out.
    Raises ``hub.data.DataError`` with a message that names no server path.
    """
    from ..data import DataError, read_table

    frames = []
    for label, path in (("training file", train_path), ("evaluation file", eval_path)):
        if path is None:
            frames.append(None)
            continue
        path = Path(path)
        if path.suffix.lower() not in UPLOAD_SUFFIXES:
            raise DataError(f"the {label} must be one of {', '.join(UPLOAD_SUFFIXES)}")
        try:
            df = read_table(path)
        except DataError as exc:
            raise DataError(f"the {label} could not be read: {str(exc).replace(str(path), path.suffix)}") from None
        if len(df) > max_rows:
            raise DataError(f"the {label} has {len(df):,} rows; the limit is {max_rows:,}")
        frames.append(df)
    train_df, eval_df = frames
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
