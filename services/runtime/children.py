"""A role run in a child process of this one, kept running while this process runs.

``dag-service web`` serves the API here and runs its orchestrator as a child (``python -m services.cli
orchestrator``), so that no amount of API work (status reads of big runs, many waiters) can delay a
transition: they no longer share an event loop. The child stays in this process's group (a signal to
the group reaches both) and stops by itself if this process dies (it is given ``PARENT_PID_VARIABLE``
and watches it: ``stop_when_orphaned``; no code runs between fork and exec, which is unsafe in a
process with threads). When it exits on its own it is started again after a growing pause; when
this process stops, the child is asked to stop (SIGTERM) and killed after ``grace_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

MAX_RESTART_PAUSE_SECONDS = 30.0
OWN_STOP_SECONDS = 2.0
PARENT_PID_VARIABLE = "DAG_PARENT_PID"
ORPHAN_CHECK_SECONDS = 1.0


async def stop_when_orphaned(stop: asyncio.Event) -> None:
    """In a child role (``PARENT_PID_VARIABLE`` set): set ``stop`` once its parent is gone (this
    process then has another parent, init)."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not parent.isdigit():
        return
    while not stop.is_set():
        if os.getppid() != int(parent):
            log.warning("the parent process %s is gone: stopping", parent)
            stop.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ORPHAN_CHECK_SECONDS)


class ChildRole:
    def __init__(self, role: str, env: Mapping[str, str], grace_seconds: float) -> None:
        self.role = role
        self._env = dict(env)
        self._grace = grace_seconds
        self.process: asyncio.subprocess.Process | None = None

    @property
    def command(self) -> Sequence[str]:
        return (sys.executable, "-m", "services.cli", self.role)

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the child running until ``stop``, then stop it."""
        pause = 1.0
        while not stop.is_set():
            self.process = await asyncio.create_subprocess_exec(*self.command, env=self._env)
            log.info("%s running in process %d", self.role, self.process.pid)
            exited = asyncio.ensure_future(self.process.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not exited.done():
                exited.cancel()
                await self._stop_child()
                return
            log.error(
                "%s process %d exited with %s; starting it again in %.0f s",
                self.role,
                self.process.pid,
                self.process.returncode,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            pause = min(pause * 2, MAX_RESTART_PAUSE_SECONDS)

    async def _stop_child(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        # A signal to the process group (a terminal's Ctrl-C, a container's stop) reached the child
        # too: give it a moment to stop on its own; a second signal would stop it at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), OWN_STOP_SECONDS)
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), self._grace)
        except TimeoutError:
            log.warning(
                "%s process %d did not stop within %.0f s: killed", self.role, process.pid, self._grace
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def child_environment(overrides: Mapping[str, str | None]) -> dict[str, str]:
    """This process's environment with ``overrides`` (None: removed)."""
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env
