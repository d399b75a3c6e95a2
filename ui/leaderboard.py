"""The Leaderboard tab: the results table (filters by task, hardware, runtime and
protocol; the task's default columns; ranked by its headline metric in its
direction), the quality x latency plot with its Pareto front (rows of one
protocol compared with each other only), a row's run card, the CSV download and
a shareable link. Columns, labels and formats come from ``hub.leaderboard_columns``'s
schema; order, Pareto and redaction from ``hub.views``.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from hub import views
from hub.leaderboard import LeaderboardStore
from hub.leaderboard_columns import (
    COLUMNS_BY_NAME,
    DISPLAY_COLUMNS,
    JSON_COLUMNS,
    decode_json_columns,
    default_columns,
)
from hub.tasks import TASKS

from . import ALL, DEFAULT_TASK, PRIVATE, keyed, refuse
from .links import leaderboard_link_js

FILTERS = ("task", "hardware", "runtime", "protocol")
KIND_COLORS = {"teacher (full)": "#4d4d4d", "teacher (quick)": "#b0b0b0",
               "Pareto-optimal (full)": "#e4572e", "Pareto-optimal (quick)": "#f4a582",
               "other (full)": "#2f6fb0", "other (quick)": "#9ecae9"}
_EXPORT: list[Path] = []


def filter_values(rows: list[dict] | None = None) -> dict[str, list[str]]:
    """The values each filter offers: those present in the store."""
    rows = LeaderboardStore().rows() if rows is None else rows
    return {name: views.distinct(rows, name) for name in FILTERS}


def _chosen(value, known: list[str], what: str, strict: bool) -> str | None:
    if value in (None, "", ALL):
        return None
    if value in known or (what == "task" and value in TASKS):
        return value
    if strict:
        raise refuse(f"Unknown {what} filter; choose one from the list.")
    return None


def filtered_rows(task=ALL, hardware=ALL, runtime=ALL, protocol=ALL, ranked_only=False, strict=False,
                  history=False) -> list[dict]:
    """Rows matching the filters, in the leaderboard's order (``hub.views.sort_rows``).
    ``strict``: an unknown filter value is an error (the API), else it means All.
    ``history``: every run; else the newest row of each benchmarked variant
    (``hub.views.latest_rows``)."""
    store = LeaderboardStore()
    everything = store.rows()
    known = filter_values(everything)
    f = {name: _chosen(v, known[name], name, strict)
         for name, v in zip(FILTERS, (task, hardware, runtime, protocol))}
    rows = [r for r in everything if all(f[n] is None or str(r.get(n)) == f[n] for n in FILTERS)
            and (not ranked_only or r.get("ranked"))]
    return views.with_notes(views.sort_rows(rows if history else views.latest_rows(rows)))


# ---------------------------------------------------------------- API


def api_leaderboard(task: str = ALL, hardware: str = ALL, runtime: str = ALL, protocol: str = ALL,
                    history: bool = False) -> dict:
    """Leaderboard rows (display columns, numbers unformatted), filtered, ranked by each
    task's headline metric in its direction.

    Args:
        task: a task name, or "All".
        hardware: a hardware tag as shown in the rows, or "All".
        runtime: "torch", "onnx", or "All".
        protocol: "full", "quick", or "All".
        history: every benchmark run; by default only the newest row of each model
            variant (model, runtime, quantization, protocol, hardware).

    A row scored at a QA "no answer" threshold its model no longer has carries
    ``note`` (why its EM/F1 are out of date).
    """
    rows = filtered_rows(task, hardware, runtime, protocol, strict=True, history=bool(history))
    cols = ["row_id", *DISPLAY_COLUMNS]
    return {"columns": cols, "rows": [views.redact_paths({**{k: r.get(k) for k in cols},
                                                          **({"note": r["note"]} if r.get("note") else {})})
                                      for r in rows]}


def api_run_card(row_id: int) -> dict:
    """One leaderboard row with its run card and benchmark details.

    Args:
        row_id: the row's id (the "row_id" of /leaderboard).
    """
    try:
        row = LeaderboardStore().get(int(row_id))
    except (TypeError, ValueError, OverflowError):
        row = None
    if row is None:
        raise refuse("No leaderboard row with that id.")
    return views.redact_paths(views.with_notes([decode_json_columns(row)])[0])


API = {"leaderboard": api_leaderboard, "run_card": api_run_card}


# ---------------------------------------------------------------- views


def column_label(name: str) -> str:
    label = COLUMNS_BY_NAME[name].label
    return f"{label} %" if name in views.PERCENT_COLUMNS else label


def task_columns(task: str | None, rows: list[dict] | None = None) -> list[str]:
    """Default columns: the task's (``hub.leaderboard_columns.default_columns``); for All, those
    of the tasks present in the store, else of the default task."""
    if task in TASKS:
        return list(default_columns(TASKS[task]))
    present = [t for t in views.distinct(LeaderboardStore().rows() if rows is None else rows, "task") if t in TASKS]
    return list(dict.fromkeys(c for t in present or [DEFAULT_TASK] for c in default_columns(TASKS[t])))


def shown_columns(task: str | None, columns: list[str] | None) -> list[str]:
    """The chosen columns (else the task's defaults), the defaults first in their order."""
    defaults = task_columns(task)
    chosen = set(columns or defaults)
    return [c for c in dict.fromkeys([*defaults, *DISPLAY_COLUMNS]) if c in chosen and c in COLUMNS_BY_NAME]


def table_frame(rows: list[dict], cols: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The table (ID first, for the run card) and its datatypes; ratios as percentages."""
    frame = pd.DataFrame(
        [[r["row_id"], *(views.noted_name(r) if c == "name" and r.get("note")
                         else views.display_value(c, r.get(c), COLUMNS_BY_NAME[c].fmt) for c in cols)] for r in rows],
        columns=["ID", *(column_label(c) for c in cols)])
    numeric = ("REAL", "INTEGER")
    types = ["number", *("number" if COLUMNS_BY_NAME[c].sql_type.split()[0] in numeric else "str" for c in cols)]
    return frame, types


def plot_task(task: str | None, rows: list[dict]) -> str:
    """The task the plot shows: the filter's, else the default task when it has rows, else the first."""
    if task in TASKS:
        return task
    present = [r.get("task") for r in rows if r.get("task") in TASKS]
    return DEFAULT_TASK if DEFAULT_TASK in present or not present else present[0]


def plot_view(rows: list[dict], task_name: str) -> dict:
    """The quality x latency scatter: padded axes, teacher / Pareto-optimal / other per protocol."""
    task = TASKS[task_name]
    pts = views.pareto_points(rows, task)
    label = COLUMNS_BY_NAME[task.headline].label if task.headline in COLUMNS_BY_NAME else task.headline
    better = "up-left" if task.higher_is_better else "down-left"
    title = f"{task.name}: {label} vs p50 latency ({better} is better)"
    if not pts:
        return {"plot": gr.ScatterPlot(value=None, title=title),
                "plot_note": f"No ranked {task.name} rows with a latency yet."}
    frame = pd.DataFrame([{
        "latency_ms": round(p["latency"], 3), "quality": round(p["quality"], 4),
        "kind": f"{p['kind']} ({p['protocol']})", "model": p["model"],
        "retention": views.format_percent(p["retention"]) if p["kind"] != "teacher" else "100% (reference)",
    } for p in pts])
    kinds = [k for k in KIND_COLORS if k in set(frame["kind"])]
    protocols = sorted({p["protocol"] for p in pts})
    note = (f"Pareto front computed within each protocol ({' and '.join(protocols)}): a quick benchmark is "
            "never compared with a full one." if len(protocols) > 1 else
            f"All points measured with the {protocols[0]} protocol.")
    return {"plot": gr.ScatterPlot(value=frame, title=title, y_title=label, colors_in_legend=kinds,
                                   x_lim=list(views.axis_limits(frame["latency_ms"].tolist())),
                                   y_lim=list(views.axis_limits(frame["quality"].tolist()))),
            "plot_note": note}


def export_dir() -> Path:
    """A private temp folder for CSV exports (gradio copies them into its cache to serve)."""
    if not _EXPORT:
        _EXPORT.append(Path(tempfile.mkdtemp(prefix="distill-hub-export-")))
    for old in sorted(_EXPORT[0].iterdir(), key=lambda p: p.stat().st_mtime)[:-20]:  # keep it small
        shutil.rmtree(old, ignore_errors=True)
    return _EXPORT[0]


def view(task=ALL, hardware=ALL, runtime=ALL, protocol=ALL, columns=None, ranked_only=False, history=False) -> dict:
    """Everything the tab shows for its filters, by name."""
    rows = filtered_rows(task, hardware, runtime, protocol, ranked_only, history=history)
    known = filter_values()
    values = dict(zip(FILTERS, (task, hardware, runtime, protocol)))
    cols = shown_columns(task if task in TASKS else None, columns)
    frame, types = table_frame(rows, cols)
    notes = any(r.get("note") for r in rows)
    export = export_dir() / secrets.token_hex(4) / f"leaderboard-{task if task in TASKS else 'all'}.csv"
    views.write_csv(rows, export)
    ranked_by = sorted({r["task"] for r in rows if r.get("task") in TASKS})
    order = "; ".join(f"{t} by {TASKS[t].headline} ({'higher' if TASKS[t].higher_is_better else 'lower'} is better)"
                      for t in ranked_by)
    out = {
        "table": gr.Dataframe(value=frame, datatype=types,
                              label=f"Results{f', ranked: {order}' if order else ''} — click a row for its run card"
                                    + ("; ⚠ old threshold: EM/F1 made at a \"no answer\" threshold the model no "
                                       "longer has (calibrated since), benchmark it again" if notes else "")),
        "download": str(export),
        "empty": gr.Markdown("No results yet. Every finished run of the Distill tab is benchmarked and added here; "
                             "`python -m hub bench` adds models from the command line." if not rows else "",
                             visible=not rows),
        **{name: gr.Dropdown(choices=[ALL, *known[name], *([v] if name == "task" and v in TASKS
                                                             and v not in known[name] else [])],
                             value=v if v in known[name] or (name == "task" and v in TASKS) else ALL)
           for name, v in values.items()},
    }
    out.update(plot_view(rows, plot_task(task, rows)))
    return out


def task_view(task=ALL, hardware=ALL, runtime=ALL, protocol=ALL, ranked_only=False, history=False) -> dict:
    """A new task filter: that task's default columns, then the view."""
    cols = task_columns(task)
    return {"columns": cols, **view(task, hardware, runtime, protocol, cols, ranked_only, history)}


def run_card(row_id) -> dict | None:
    try:
        row = LeaderboardStore().get(int(row_id))
    except (TypeError, ValueError, OverflowError):
        return None
    if row is None:
        return None
    row = views.redact_paths(views.with_notes([decode_json_columns(row)])[0])
    return {**({"note": row.pop("note")} if row.get("note") else {}),
            "row": {k: v for k, v in row.items() if k not in JSON_COLUMNS and v is not None},
            "run_card": row.get("run_card"), "benchmark": row.get("bench_json")}


# ---------------------------------------------------------------- the tab


def build() -> dict:
    c: dict = {}
    with gr.Row():
        c["task"] = gr.Dropdown([ALL], value=ALL, label="Task", scale=1, elem_id="leaderboard-task")
        c["hardware"] = gr.Dropdown([ALL], value=ALL, label="Hardware", scale=3, elem_id="leaderboard-hardware")
        c["runtime"] = gr.Dropdown([ALL], value=ALL, label="Runtime", scale=1, elem_id="leaderboard-runtime")
        c["protocol"] = gr.Dropdown([ALL], value=ALL, label="Protocol", scale=1, elem_id="leaderboard-protocol")
        c["ranked"] = gr.Checkbox(False, label="Ranked runs only", scale=1, elem_id="leaderboard-ranked")
        c["history"] = gr.Checkbox(False, label="Earlier runs too", scale=1, elem_id="leaderboard-history",
                                   info="a re-run benchmark replaces its model's row unless this is on")
    with gr.Accordion("Columns", open=False):
        c["columns"] = gr.CheckboxGroup([(column_label(n), n) for n in DISPLAY_COLUMNS],
                                        value=task_columns(DEFAULT_TASK, []), label="Shown columns",
                                        info="each task shows its own metrics by default; the CSV has every column")
    c["empty"] = gr.Markdown(visible=False)
    c["table"] = gr.Dataframe(label="Results", interactive=False, max_height=420, elem_id="leaderboard-table")
    with gr.Row():
        c["refresh"] = gr.Button("Refresh", scale=0, min_width=120, size="md")
        c["download"] = gr.DownloadButton("Download CSV", scale=0, min_width=190, size="md",
                                          elem_id="leaderboard-download")
        c["copy"] = gr.Button("Copy link", scale=0, min_width=120, size="md", elem_id="leaderboard-copy")
        c["link"] = gr.Textbox(show_label=False, interactive=False, placeholder="shareable link", scale=3,
                               elem_id="leaderboard-link")
    with gr.Row():
        with gr.Column():
            c["plot"] = gr.ScatterPlot(None, x="latency_ms", y="quality", color="kind", height=360,
                                       x_title="p50 latency, ms (batch 1)", y_title="Accuracy",
                                       tooltip=["model", "quality", "latency_ms", "retention", "kind"],
                                       color_map=KIND_COLORS, elem_id="leaderboard-plot")
            c["plot_note"] = gr.Markdown(elem_id="leaderboard-plot-note")
        c["card"] = gr.JSON(label="Run card of the selected row", elem_id="leaderboard-card")
    with gr.Accordion("What the columns mean", open=False):
        gr.Markdown("\n".join(f"- **{column_label(n)}**: {COLUMNS_BY_NAME[n].description}" for n in DISPLAY_COLUMNS)
                    + "\n\nRatios (retention, agreement, …) are shown as percentages.")
    return c


VIEW_OUTPUTS = ("table", "download", "empty", *FILTERS, "plot", "plot_note")


def filter_inputs(c: dict) -> list:
    return [c[n] for n in FILTERS]


def refresh_event(c: dict):
    """(fn, inputs, outputs) of a refresh with the tab's current filters and columns."""
    return (lambda t, h, r, p, cols, ranked, history: keyed(c, view(t, h, r, p, cols, ranked, history)),
            [*filter_inputs(c), c["columns"], c["ranked"], c["history"]], [c[n] for n in VIEW_OUTPUTS])


def wire(c: dict) -> None:
    fn, inputs, outputs = refresh_event(c)
    gr.on([c[n].input for n in ("hardware", "runtime", "protocol", "columns", "ranked", "history")]
          + [c["refresh"].click],
          fn, inputs, outputs, **PRIVATE)
    c["task"].input(lambda t, h, r, p, ranked, history: keyed(c, task_view(t, h, r, p, ranked, history)),
                    [*filter_inputs(c), c["ranked"], c["history"]], [c["columns"], *outputs], **PRIVATE)

    def select(evt: gr.SelectData):
        try:
            return run_card((evt.row_value or [None])[0])
        except (TypeError, IndexError):
            return gr.skip()
    c["table"].select(select, None, c["card"], **PRIVATE)
    c["copy"].click(None, [*filter_inputs(c), c["ranked"], c["history"]], c["link"], js=leaderboard_link_js(),
                    **PRIVATE)
