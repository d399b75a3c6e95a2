"""Distill Hub web app: distill a teacher into a student, compare them side by
side, and browse the quality x speed leaderboard.

This file only composes: ``build_demo()`` puts the tabs of ``ui/`` together
(Distill, Compare with one section per task kind, Leaderboard), wires what
crosses tabs (the job poll, the page load with its shareable link) and
registers the public API; ``launch_kwargs()`` holds the safe launch settings;
``launch()`` serves it. Nothing heavy happens at import or build time: models
load on the first comparison, training runs in ``hub.jobs``' child process.

Public API endpoints (``gradio_client``): ``/compare``, ``/compare_batch``,
``/models``, ``/leaderboard``, ``/run_card``, ``/estimate``, ``/job_status``, and
those of later Compare sections (``/compare_qa``, ``/compare_fill_mask``,
``/compare_generate``).
"""

from __future__ import annotations

import os

import gradio as gr

from hub.paths import hub_home
from hub.tasks import TASKS
from ui import DEFAULT_TASK, PRIVATE, compare, distill, distill_form, keyed, leaderboard, links, run_status

CSS = """
.hub-bar {height: 14px; border-radius: 7px; background: var(--neutral-200); overflow: hidden; margin: 6px 0;}
.hub-bar > div {height: 100%; background: var(--color-accent); transition: width .5s;}
.hub-status {font-size: 0.95em; line-height: 1.5;}
.hub-status .muted {color: var(--body-text-color-subdued);}
.hub-caption {font-size: 0.85em; color: var(--body-text-color-subdued);}
#link-notice {border-left: 4px solid var(--color-accent); padding-left: 8px;}
"""


def launch_kwargs() -> dict:
    """Safe settings for ``launch()``: local address, upload cap, the hub's home
    blocked from the file route, no extra allowed paths, no share link, no monitoring, no MCP."""
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "max_file_size": f"{distill_form.MAX_UPLOAD_MB}mb",
        "blocked_paths": [str(hub_home())],
        "allowed_paths": [],
        "enable_monitoring": False,
        "show_error": True,
        "share": False,
        "run_history": False,
        "mcp_server": False,
        "footer_links": ["api", "gradio"],
        "css": CSS,
    }


def _wire_poll(d: dict, c: dict, session: dict) -> None:
    """The job poll updates the Distill tab and the Compare header (Quick start, model lists)."""
    def tick(job_id, owned, seen):
        updates, mine, ended = run_status.poll(job_id, owned, seen)
        return {**keyed({**d, **session}, updates), **keyed(c, compare.job_updates(mine, ended))}

    outputs = [*(d[k] for k in run_status.POLL_OUTPUTS), session["timer"], session["seen"],
               *(c[k] for k in compare.POLL_OUTPUTS)]
    session["timer"].tick(tick, [session["watch"], session["owned"], session["seen"]], outputs, **PRIVATE,
                          show_progress="hidden", concurrency_limit=None)


def _wire_load(demo: gr.Blocks, tabs: gr.Tabs, notice: gr.Markdown, d: dict, c: dict, lb: dict,
               session: dict) -> None:
    """Page load: this browser's run, then the link's tab, Compare state and Leaderboard
    filters (checked; a shared comparison runs at once)."""
    link_inputs = compare.link_inputs()

    def on_load(owned, request: gr.Request):
        state = links.restore(request)
        out = keyed({**d, **session}, run_status.init_session(owned))
        out[d["teacher"]] = gr.Dropdown(choices=distill_form.teacher_choices(DEFAULT_TASK))
        out[d["student"]] = gr.Dropdown(choices=distill_form.student_choices(DEFAULT_TASK))
        cmp, board = state["compare"], state["leaderboard"]
        header = {"task": cmp["task"], **compare.task_updates(cmp["task"], cmp["a"], cmp["b"]),
                  **compare.job_updates(distill_form.owned_status(owned), False)}
        kind = TASKS[cmp["task"]].kind
        if kind in link_inputs and cmp["text"]:  # a link's text; never blank what a visitor typed before the load
            header[link_inputs[kind]] = cmp["text"]
        out.update(keyed(c, {k: v for k, v in header.items() if k in c}))
        lb_view = leaderboard.task_view(board["task"], board["hardware"], board["runtime"], board["protocol"],
                                        board["ranked"], board["history"])
        out.update(keyed(lb, {**lb_view, "ranked": board["ranked"], "history": board["history"]}))
        text = links.notice(state["notes"])
        out[tabs] = gr.Tabs(selected=state["tab"])
        out[notice] = gr.Markdown(text, visible=bool(text))
        return out

    lb_outputs = [lb[k] for k in ("columns", "ranked", "history", *leaderboard.VIEW_OUTPUTS)]
    outputs = [tabs, notice, *(d[k] for k in ("runs", "teacher", "student")), *session.values(), *c.values(), *lb_outputs]
    loaded = demo.load(on_load, session["owned"], outputs, **PRIVATE, show_progress="hidden")
    kinds = list(link_inputs)

    def from_link(request: gr.Request, task, a, b, *texts):
        q = dict(request.query_params) if request is not None else {}
        kind = TASKS[task].kind if task in TASKS else None
        text = dict(zip(kinds, texts)).get(kind)
        if q.get("tab") not in (None, "compare") or not q.get("text") or not (a and b and text):
            return gr.skip()
        return keyed(c, compare.from_link(task, a, b, text))

    loaded.then(from_link, [c["task"], c["model_a"], c["model_b"], *(c[link_inputs[k]] for k in kinds)],
                [c[n] for n in compare.link_outputs()], **PRIVATE, concurrency_limit=2)


def build_demo() -> gr.Blocks:
    """The app. Cheap: lists folders and reads the store, loads no model."""
    with gr.Blocks(title="Distill Hub", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Distill Hub\nDistill Transformer teachers into small students, compare them side by "
                    "side, and rank them by quality × speed.")
        notice = gr.Markdown(visible=False, elem_id="link-notice")
        session = {"watch": gr.State(None), "seen": gr.State(None),
                   "owned": gr.BrowserState({}, storage_key="distill-hub-owner"),
                   "timer": gr.Timer(run_status.POLL_S, active=False)}
        with gr.Tabs(selected=links.DEFAULT_TAB) as tabs:
            with gr.Tab("Distill", id="distill") as distill_tab:
                d = distill.build()
            with gr.Tab("Compare", id="compare"):
                c = compare.build()
            with gr.Tab("Leaderboard", id="leaderboard"):
                lb = leaderboard.build()
        # the public API first (its names are taken before any UI event's): typed functions for gradio_client
        apis = {"models": compare.api_models, **compare.section_apis(), **leaderboard.API, **distill.API}
        for name, fn in apis.items():
            gr.api(fn, api_name=name)
        events = distill.wire(d, session, demo)
        compare.wire(c, session)
        # deleted models leave the Compare lists
        events["deleted"].then(lambda task: keyed(c, compare.model_updates(task)), c["task"],
                               [c[k] for k in ("model_a", "model_b", "notice", "qs_row")], **PRIVATE)
        leaderboard.wire(lb)
        _wire_poll(d, c, session)
        _wire_load(demo, tabs, notice, d, c, lb, session)
        distill_tab.select(None, None, None, js=run_status.SCROLL_LOG_JS, **PRIVATE)
    demo.queue(max_size=64, default_concurrency_limit=1)
    return demo


def launch() -> None:
    build_demo().launch(**launch_kwargs())


if __name__ == "__main__":
    launch()
