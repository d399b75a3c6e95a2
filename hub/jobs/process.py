"""The job runner's child process as the queue sees it: a tag that survives pid
reuse, liveness (zombies and later processes with the same pid excluded), the
reason a child ended without a result, and :class:`_Child` (our own ``Popen``, or
a process adopted after a server restart). POSIX ``/proc``; no torch."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def process_tag(pid: int) -> str:
    """``pid:start-time``: a pid alone can be reused by a later process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def process_alive(tag: str | None) -> bool:
    """Whether the process of a tag runs (not a zombie, not a later process with its pid)."""
    try:
        pid = int(str(tag).split(":", 1)[0])
    except ValueError:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own ended child
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        state = None
    if state == "Z":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return process_tag(pid) == tag


def _signal_name(code: int | None) -> str:
    if code is None:
        return "ended while the server was down"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code} without a result"


class _Child:
    """The running job's process: our own child (``popen``) or, after a restart,
    one adopted by its process tag. Its process group has its pid as id."""

    def __init__(self, pid: int, tag: str, popen: subprocess.Popen | None = None):
        self.pid, self.tag, self.popen = pid, tag, popen

    def wait(self, timeout: float) -> bool:
        """Whether it has ended (waiting up to ``timeout`` seconds)."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        if process_alive(self.tag):
            time.sleep(timeout)
            return not process_alive(self.tag)
        return True

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode if self.popen is not None else None

    def signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (its benchmark child too)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
