"""Shareable links: the Compare state (``?tab=compare&task=sst2&a=...&b=...&text=...``)
and the Leaderboard filters (``?tab=leaderboard&task=sst2&hw=...&runtime=...&protocol=...&ranked=1&all=1``)
live in the URL. "Copy link" builds one in the browser (JS below); on load,
:func:`parse` checks every value and :func:`restore` applies them. A bad or
oversized value falls back to its default with a notice that never repeats it.
"""

from __future__ import annotations

import gradio as gr

from hub.tasks import TASKS

from . import ALL, DEFAULT_TASK, MAX_TEXT_CHARS, implemented_tasks

TABS = ("distill", "compare", "leaderboard")
# the tab a link without one opens: side-by-side querying (and, on an empty server, its Quick start)
DEFAULT_TAB = "compare"
FILTERS = {"hw": "hardware", "runtime": "runtime", "protocol": "protocol"}  # link key -> leaderboard filter


def parse(query: dict, models: set[str], known: dict[str, list[str]]) -> dict:
    """The page state a link asks for: ``{"tab", "compare": {task, a, b, text},
    "leaderboard": {task, hardware, runtime, protocol, ranked, history}, "notes"}``.

    ``models``: model names of the link's Compare task; ``known``: the values each
    leaderboard filter accepts (``task``, ``hardware``, ``runtime``, ``protocol``)."""
    q = {k: v for k, v in (query or {}).items() if isinstance(v, str)}
    notes = []
    tab = q.get("tab") or None
    if tab is not None and tab not in TABS:
        notes.append("unknown tab in the link")
        tab = None
    if tab is None and any(k in q for k in ("a", "b", "text")):
        tab = "compare"
    compare = {"task": DEFAULT_TASK, "a": None, "b": None, "text": ""}
    board = {"task": ALL, "hardware": ALL, "runtime": ALL, "protocol": ALL, "ranked": q.get("ranked") == "1",
             "history": q.get("all") == "1"}
    task = q.get("task")
    if tab == "leaderboard":
        if task and task != ALL:
            if task in known.get("task", []) or task in TASKS:
                board["task"] = task
            else:
                notes.append("unknown task in the link")
        for key, name in FILTERS.items():
            value = q.get(key)
            if value and value != ALL:
                if value in known.get(name, []):
                    board[name] = value
                else:
                    notes.append(f"unknown {name} in the link")
    else:
        if task:
            if task in implemented_tasks():
                compare["task"] = task
            else:
                notes.append("unknown task in the link")
        for which in ("a", "b"):
            value = q.get(which)
            if value and value in models:
                compare[which] = value
            elif value:
                notes.append(f"model {which.upper()} in the link is not on this server")
        text = q.get("text") or ""
        if len(text) > MAX_TEXT_CHARS:
            notes.append(f"the text in the link is longer than {MAX_TEXT_CHARS:,} characters")
            text = ""
        compare["text"] = text
    return {"tab": tab or DEFAULT_TAB, "compare": compare, "leaderboard": board, "notes": notes}


def notice(notes: list[str]) -> str:
    return ("Link: " + "; ".join(notes) + " — using the defaults instead.") if notes else ""


def compare_link_js() -> str:
    """Browser-side: the Compare link of (task, a, b, text), copied to the clipboard."""
    return """(task, a, b, text) => {
  const u = new URL(window.location.pathname, window.location.origin);
  u.searchParams.set('tab', 'compare');
  if (task) u.searchParams.set('task', task);
  if (a) u.searchParams.set('a', a);
  if (b) u.searchParams.set('b', b);
  if (text) u.searchParams.set('text', text.slice(0, %d));
  const s = u.toString();
  try { navigator.clipboard.writeText(s).catch(() => {}); } catch (e) {}
  return s;
}""" % MAX_TEXT_CHARS


def leaderboard_link_js() -> str:
    """Browser-side: the Leaderboard link of (task, hardware, runtime, protocol, ranked only, earlier runs too)."""
    return """(task, hw, runtime, protocol, ranked, history) => {
  const u = new URL(window.location.pathname, window.location.origin);
  u.searchParams.set('tab', 'leaderboard');
  const put = (k, v) => { if (v && v !== '%s') u.searchParams.set(k, v); };
  put('task', task); put('hw', hw); put('runtime', runtime); put('protocol', protocol);
  if (ranked) u.searchParams.set('ranked', '1');
  if (history) u.searchParams.set('all', '1');
  const s = u.toString();
  try { navigator.clipboard.writeText(s).catch(() => {}); } catch (e) {}
  return s;
}""" % ALL


def restore(request: gr.Request | None) -> dict:
    """The link's state, checked: ``parse`` with this server's models and filter values."""
    from .compare import compare_models
    from .leaderboard import filter_values

    q = dict(request.query_params) if request is not None else {}
    task = q.get("task") if q.get("task") in implemented_tasks() else DEFAULT_TASK
    state = parse(q, set(compare_models(task)), filter_values())
    if state["notes"]:
        gr.Warning(notice(state["notes"]))
    return state
