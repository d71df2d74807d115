"""The worker loop: receive tasks in batches, run up to ``concurrency`` at once, report results.

While attempts run, a heartbeat keeps their task entries claimed, so a long task is never taken
from a live worker. On stop the worker takes no more tasks and finishes what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any

from domain.errors import BackendError, RunNotActive, TemplateError
from domain.events import Event, NodeFailed, NodeStarted, NodeSucceeded
from domain.map_spec import split_key
from domain.messages import DEFAULT_QUEUE, Task
from domain.plan import NodeSpec, WorkflowPlan
from domain.ports import (
    AttemptLogStore,
    AttemptSignals,
    Clock,
    ConcurrencySlots,
    DefinitionRepository,
    Delivery,
    EventBus,
    RunRepository,
    StoredDefinition,
    TaskQueue,
    WorkerAnnouncement,
    WorkerDirectory,
)
from domain.reasons import TIMEOUT_ERROR, timeout_message
from domain.run_data import condition_verdict
from domain.secret_refs import SecretLookup, SecretUnavailable, no_secrets
from domain.templates import WORKFLOW_NAMESPACE
from services.runtime.faults import crash_point
from services.runtime.logs import bind_attempt, bind_worker
from services.runtime.resilience import Stopped, repeat_until, retrying
from services.worker.attempt_log import failure_message, install_capture, record_failure, start_attempt_log
from services.worker.cancels import AttemptCancelled, CancelWatch
from services.worker.heartbeats import HeartbeatReporter
from services.worker.map_inputs import MapInputs
from services.worker.redaction import Redactor, install_log_redaction
from services.worker.registry import (
    Handler,
    HandlerContext,
    HandlerRegistry,
    NonRetryableError,
    UnknownHandler,
)
from services.worker.secrets import SecretSource
from services.worker.slots import SlotKeeper

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_SECONDS = 30.0
START_REPORT_DELAY_SECONDS = 0.1
HAND_BACK_DELAY_SECONDS = 0.2
"""How long a worker holds a task it hands back (it lacks the handler) before requeueing it."""
LIVE_WORKERS_CACHE_SECONDS = 1.0


class _Refused(Exception):
    """The attempt cannot be made as given: retrying would not help, unless ``retryable`` (another
    worker may be able to)."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


class _TimedOut(Exception):
    """The attempt ran past the node's ``timeout_seconds``."""


class _HandlerRaised(Exception):
    """The handler raised ``error`` (whose traceback the attempt's error keeps)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _NotToStart(Exception):
    """The task's run is no longer running (cancelled): the attempt must not start."""


class _HandBack(Exception):
    """This worker lacks the task's handler, and another live worker of its queue has it."""


class Worker:
    def __init__(
        self,
        *,
        worker_id: str,
        registry: HandlerRegistry,
        definitions: DefinitionRepository,
        runs: RunRepository,
        tasks: TaskQueue,
        events: EventBus,
        clock: Clock,
        concurrency: int,
        max_output_bytes: int,
        visibility_timeout_seconds: float = 30.0,
        executor: Executor | None = None,
        idle_block_seconds: float = 1.0,
        attempt_logs: AttemptLogStore | None = None,
        signals: AttemptSignals | None = None,
        cancel_poll_seconds: float = 0.25,
        cancel_grace_seconds: float = 10.0,
        shutdown_grace_seconds: float = 30.0,
        heartbeat_interval_seconds: float = 5.0,
        max_heartbeat_details_bytes: int = 4096,
        secrets: SecretSource | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        directory: WorkerDirectory | None = None,
        slots: ConcurrencySlots | None = None,
        concurrency_limits: Mapping[str, int] | None = None,
        concurrency_poll_seconds: float = 0.05,
    ) -> None:
        # The values of secrets, once resolved, are hidden in whatever this worker reports or logs.
        self._secrets: SecretLookup = no_secrets if secrets is None else secrets.lookup
        self._redactor = Redactor() if secrets is None else secrets.redactor
        install_log_redaction(self._redactor)
        self._cancels = CancelWatch(signals, cancel_poll_seconds, cancel_grace_seconds)
        self._beats = HeartbeatReporter(
            events=events,
            clock=clock,
            worker_id=worker_id,
            interval_seconds=heartbeat_interval_seconds,
            max_details_bytes=max_heartbeat_details_bytes,
            redact=self._redactor.text,
        )
        self._attempt_logs = attempt_logs
        if attempt_logs is not None:
            install_capture()
        self.worker_id = worker_id
        self._registry = registry
        self._definitions = definitions
        self._runs = runs
        self.queues = tuple(dict.fromkeys(queues))
        self._tasks = tasks.serving(self.queues)
        self._directory = directory
        self._live_workers: tuple[float, list[WorkerAnnouncement]] = (-math.inf, [])
        """When the directory was last read, and what it said (tasks handed back in a burst ask once)."""
        self._visibility = visibility_timeout_seconds
        self._handing_back: set[str] = set()
        """Tasks this worker lacks the handler of, held briefly before they are requeued."""
        self._events = events
        self._clock = clock
        self._concurrency = concurrency
        self._max_output_bytes = max_output_bytes
        self._heartbeat_seconds = visibility_timeout_seconds / 3
        self._slots = SlotKeeper(
            slots,
            clock,
            concurrency_limits or {},
            visibility_timeout_seconds,
            concurrency_poll_seconds,
        )
        self._began: dict[str, float] = {}
        """When the handler of an attempt that waited for a slot began (its start, as reported)."""
        # Sync handlers get a pool as large as the concurrency limit, not the loop's small default.
        self._executor = executor or ThreadPoolExecutor(concurrency, thread_name_prefix=worker_id)
        self._idle_block = idle_block_seconds
        self._plans: dict[str, asyncio.Future[StoredDefinition]] = {}
        self._map_inputs = MapInputs()
        self._running: dict[asyncio.Task[None], Delivery[Task]] = {}
        self._waiting: list[Delivery[Task]] = []
        self._slot_freed = asyncio.Event()
        self._reports: set[asyncio.Future[None]] = set()
        self._shutdown_grace = shutdown_grace_seconds
        self._stop = asyncio.Event()  # the run's: a retry during an outage gives up once it is set

    async def run(self, stop: asyncio.Event) -> None:
        """Take tasks until ``stop`` is set, then let the attempts in hand finish, for at most
        ``shutdown_grace_seconds``: what is still running then (or cannot be reported because the
        backend is down) is handed back, left unacknowledged for another worker to take over after
        the visibility timeout."""
        self._stop = stop
        self._beats.start(stop)
        bind_worker(self.worker_id)
        helpers = [
            asyncio.create_task(self._announcements()),
            asyncio.create_task(self._heartbeat(stop)),
            asyncio.create_task(self._maintain(stop)),
            asyncio.create_task(self._cancels.watch()),
        ]
        try:
            await repeat_until(stop, lambda: self._take_tasks(stop), f"worker {self.worker_id}")
            if self._running:
                log.info("worker %s finishing %d attempt(s)", self.worker_id, len(self._running))
                await self._finish_or_hand_back()
        finally:
            for helper in [*helpers, *self._reports]:
                helper.cancel()
            for helper in helpers:
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            await self._beats.close()
            self._executor.shutdown(wait=False, cancel_futures=True)
            await self._withdraw()

    async def _announce(self) -> None:
        """Tell the directory what this worker serves, for a visibility timeout (renewed every
        third of it, as task claims are)."""
        if self._directory is not None:
            announcement = WorkerAnnouncement(self.worker_id, frozenset(self.queues), self._registry.names())
            await self._directory.announce(announcement, self._visibility)

    async def _announcements(self) -> None:
        if self._directory is None:
            return
        while True:
            await retrying(self._announce, "announcing this worker")
            await asyncio.sleep(self._heartbeat_seconds)

    async def _withdraw(self) -> None:
        """Leave the directory at once (without the backend, the announcement lapses by itself)."""
        if self._directory is None:
            return
        try:
            await self._directory.withdraw(self.worker_id)
        except BackendError as error:
            log.warning(
                "worker %s not withdrawn (its announcement lapses by itself): %s", self.worker_id, error
            )

    async def _finish_or_hand_back(self) -> None:
        _, unfinished = await asyncio.wait(list(self._running), timeout=self._shutdown_grace)
        if unfinished:
            log.warning(
                "worker %s handing back %d attempt(s) not finished within %g s: another worker "
                "takes them over after the visibility timeout",
                self.worker_id,
                len(unfinished),
                self._shutdown_grace,
            )
            for attempt in unfinished:
                attempt.cancel()
            await asyncio.wait(unfinished)

    async def _take_tasks(self, stop: asyncio.Event) -> None:
        free = self._concurrency - len(self._running)
        if free <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
            return
        deliveries = await self._tasks.receive(self.worker_id, free, self._idle_block)
        if stop.is_set():
            # Received while stopping: run them anyway rather than leave them to the timeout.
            log.info("worker %s stopping; running %d last task(s)", self.worker_id, len(deliveries))
        if not deliveries:
            return
        if deliveries[0].suspect:  # the queue hands a suspect over alone
            await self._run_alone(deliveries[0])
            return
        self._start(deliveries)
        # One turn of the loop before the next read: the attempts' first calls (start report,
        # input read), queued for this turn's pipeline, leave before the blocking read is sent,
        # not after it: a hop of a chain waits on them.
        await asyncio.sleep(0)

    async def _run_alone(self, suspect: Delivery[Task]) -> None:
        """Run a task that may be what killed its earlier workers with nothing else beside it: if it
        kills this one too, no other task is lost with it and pays a delivery for it."""
        log.warning(
            "worker %s running %s alone: its earlier workers went quiet while holding it",
            self.worker_id,
            suspect.message.idempotency_key,
        )
        self._waiting.append(suspect)  # kept claimed by the heartbeat while the others finish
        try:
            if self._running:
                await asyncio.wait(list(self._running))
        finally:
            self._waiting.remove(suspect)
        [attempt] = self._start([suspect])
        await asyncio.wait([attempt])

    def _start(self, deliveries: list[Delivery[Task]]) -> list[asyncio.Task[None]]:
        started_at = self._clock.now()
        # Eager: an attempt runs at once up to its first real wait; a quick one finishes here.
        loop = asyncio.get_running_loop()
        batch = [
            asyncio.Task(self._execute(delivery, started_at), loop=loop, eager_start=True)
            for delivery in deliveries
        ]
        for attempt, delivery in zip(batch, deliveries, strict=True):
            self._running[attempt] = delivery
            attempt.add_done_callback(self._release)
        report = asyncio.ensure_future(self._report_long_attempts(batch, started_at))
        self._reports.add(report)  # held so it is not collected; dropped when done
        report.add_done_callback(self._reports.discard)
        return batch

    async def _report_long_attempts(self, batch: list[asyncio.Task[None]], started_at: float) -> None:
        """Report RUNNING only for attempts that outlast a short delay: a result names its worker
        and start time anyway, and most attempts end before anyone could look."""
        await asyncio.sleep(START_REPORT_DELAY_SECONDS)
        waiting = self._slots.waiting
        started: list[Event] = [
            NodeStarted(task.run_id, task.node_id, task.attempt, self.worker_id, started_at)
            for task in (self._running[a].message for a in batch if a in self._running)
            if task.idempotency_key not in waiting
            and task.idempotency_key not in self._began
            and task.idempotency_key not in self._handing_back
        ]
        if started:
            with contextlib.suppress(Stopped):  # a start not reported: the result says it anyway
                await retrying(lambda: self._events.send(started), "reporting starts", self._stop)

    def _release(self, attempt: asyncio.Task[None]) -> None:
        self._running.pop(attempt, None)
        self._slot_freed.set()
        if not attempt.cancelled() and attempt.exception() is not None:
            log.error("attempt crashed: %r", attempt.exception())

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            if self._running or self._waiting:
                await retrying(self._extend_claims, "heartbeat")

    async def _extend_claims(self) -> None:
        await self._tasks.extend(self.worker_id, [*self._running.values(), *self._waiting])
        await self._slots.renew()

    async def _maintain(self, stop: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL_SECONDS)
            await retrying(self._tasks.maintain, "task stream housekeeping")

    async def _execute(self, delivery: Delivery[Task], started_at: float) -> None:
        try:
            await self._execute_and_report(delivery, started_at)
        except Stopped as stopped:
            # Stopping while the backend is down: left unacknowledged, another worker repeats it.
            log.warning("handing back %s: %s", delivery.message.idempotency_key, stopped)

    async def _execute_and_report(self, delivery: Delivery[Task], started_at: float) -> None:
        task = delivery.message
        bind_attempt(task.run_id, task.node_id, task.attempt, self.worker_id)  # this attempt's log lines
        lines = start_attempt_log()
        try:
            result = await self._attempt(task, started_at)
        except (_NotToStart, AttemptCancelled) as reason:
            doing = "starting" if isinstance(reason, _NotToStart) else "finishing (cancelled)"
            log.info("not %s %s: %s", doing, task.idempotency_key, reason)
            await retrying(lambda: self._tasks.ack([delivery]), "acknowledging a task", self._stop)
            return
        except _HandBack as reason:
            log.info("handing back %s: %s", task.idempotency_key, reason)
            # A pause first: the worker that has the handler may be busy, and this one must not
            # take the task back at once, again and again. It never started: no start is reported.
            self._handing_back.add(task.idempotency_key)
            try:
                await asyncio.sleep(HAND_BACK_DELAY_SECONDS)
                await retrying(lambda: self._tasks.requeue([delivery]), "handing back a task", self._stop)
            finally:
                self._handing_back.discard(task.idempotency_key)
            return
        if lines and self._attempt_logs is not None:  # stored before the result: readable once it shows
            store = self._attempt_logs
            append = lambda: store.append(task.run_id, task.node_id, task.attempt, lines)  # noqa: E731
            await retrying(append, "storing an attempt's log", self._stop)
        # The result is stored before the task is acknowledged: a crash in between repeats the
        # attempt, whose second result is then ignored. (Direct calls first: this is the hot path.)
        try:
            await self._events.send([result])
        except BackendError:
            await retrying(lambda: self._events.send([result]), "reporting a result", self._stop)
        crash_point("worker.after_result_before_ack")
        try:
            await self._tasks.ack([delivery])
        except BackendError:
            await retrying(lambda: self._tasks.ack([delivery]), "acknowledging a task", self._stop)

    async def _attempt(self, task: Task, started_at: float) -> Event:
        try:
            return await self._attempt_result(task, started_at)
        finally:
            self._began.pop(task.idempotency_key, None)

    async def _attempt_result(self, task: Task, started_at: float) -> Event:
        try:
            output = await self._run_handler(task, started_at)
        except _Refused as refusal:
            return self._failed(task, started_at, refusal.kind, str(refusal), retryable=refusal.retryable)
        except _TimedOut as timed_out:
            return self._failed(task, started_at, TIMEOUT_ERROR, str(timed_out))
        except (_NotToStart, AttemptCancelled, Stopped, _HandBack):
            raise
        except _HandlerRaised as raised:  # a handler's failure is the node's failure, whatever its type
            error = raised.error
            message = self._redactor.text(failure_message(error))
            record_failure(message)
            log.debug("attempt %s failed: %s", task.idempotency_key, message)
            retryable = not isinstance(error, NonRetryableError)
            return self._failed(task, started_at, type(error).__name__, message, retryable=retryable)
        except Exception as error:  # the attempt could not be made (its definition is gone ...)
            return self._failed(task, started_at, type(error).__name__, str(error))
        began = self._began.get(task.idempotency_key, started_at)
        return NodeSucceeded(
            task.run_id, task.node_id, task.attempt, output, self._clock.now(), self.worker_id, began
        )

    def _failed(
        self, task: Task, started_at: float, kind: str, message: str, *, retryable: bool = True
    ) -> NodeFailed:
        return NodeFailed(
            task.run_id,
            task.node_id,
            task.attempt,
            kind,
            self._redactor.text(message),
            self._clock.now(),
            retryable,
            self.worker_id,
            self._began.get(task.idempotency_key, started_at),  # a handler that waited for a slot
        )

    async def _run_handler(self, task: Task, started_at: float) -> Any:
        loaded = self._plans.get(task.definition_id)
        if loaded is not None and loaded.done() and loaded.exception() is None:
            plan = loaded.result().plan
        else:
            plan = await retrying(lambda: self._plan(task.definition_id), "loading a definition", self._stop)
        node_id, item = split_key(task.node_id)
        spec = plan.node(node_id)
        try:
            handler = self._registry.get(task.handler)
        except UnknownHandler as error:
            holder = await self._holder_of(task)
            if holder is not None:
                raise _HandBack(f"no handler '{task.handler}' here; worker {holder} has it") from None
            elsewhere = "" if self._directory is None else f", nor on any live worker of queue '{task.queue}'"
            raise _Refused("UnknownHandler", f"{error}{elsewhere}") from None
        try:
            if item is None:
                data = await self._read_data(task.run_id, spec)
            else:
                load = partial(self._read_data, task.run_id, spec)
                data = await self._map_inputs.for_item(task.run_id, spec, item, task.attempt, load)
                _check_item_condition(spec, data)
            config = spec.config.render(data, self._secrets)
        except RunNotActive as inactive:
            raise _NotToStart(str(inactive)) from None
        except SecretUnavailable as missing:
            # Retryable: workers need not all have the same secrets (or a mount may lag behind).
            raise _Refused("SecretUnavailable", str(missing), retryable=True) from None
        except TemplateError as error:
            raise _Refused("TemplateError", str(error)) from None
        context = HandlerContext(
            run_id=task.run_id,
            node_id=task.node_id,
            attempt=task.attempt,
            config=config,
            inputs={parent: data.get(parent) for parent in spec.parent_ids},
            run_input=data["workflow"]["input"],
            idempotency_key=task.idempotency_key,
            started_at=started_at,
            heartbeat_timeout_seconds=spec.heartbeat_timeout_seconds,
            heartbeats=self._beats,
        )
        if spec.concurrency is None:
            return await self._timed_call(handler, context, spec)
        key = spec.concurrency.render_key(data)
        limit = spec.concurrency.limit_of(key, self._slots.limits)
        async with self._slots.held(key, limit, task.idempotency_key):
            began = self._began[task.idempotency_key] = self._clock.now()
            started = NodeStarted(task.run_id, task.node_id, task.attempt, self.worker_id, began)
            with contextlib.suppress(Stopped):  # a start not reported: the result says it anyway
                await retrying(lambda: self._events.send([started]), "reporting a start", self._stop)
            return await self._timed_call(handler, context, spec)

    async def _timed_call(self, handler: Handler, context: HandlerContext, spec: NodeSpec) -> Any:
        if spec.timeout_seconds is None:
            return self._checked_output(await self._call(handler, context))
        try:
            async with asyncio.timeout(spec.timeout_seconds) as deadline:
                output = await self._call(handler, context)
        except TimeoutError:
            if not deadline.expired():
                raise  # the handler's own TimeoutError: report it as it is
            raise _TimedOut(timeout_message(context.attempt, spec.timeout_seconds)) from None
        return self._checked_output(output)

    async def _holder_of(self, task: Task) -> str | None:
        """Another live worker of the task's queue that announced its handler (None: none has)."""
        if self._directory is None:
            return None
        read_at, live = self._live_workers
        if time.monotonic() - read_at > LIVE_WORKERS_CACHE_SECONDS:
            live = await retrying(self._directory.live, "reading the live workers", self._stop)
            self._live_workers = (time.monotonic(), live)
        for worker in live:
            if (
                worker.worker_id != self.worker_id
                and task.queue in worker.queues
                and task.handler in worker.handlers
            ):
                return worker.worker_id
        return None

    async def _read_data(self, run_id: str, spec: NodeSpec) -> dict[str, Any]:
        try:
            return await self._runs.read_data(run_id, spec.reads)
        except BackendError:
            read = lambda: self._runs.read_data(run_id, spec.reads)  # noqa: E731
            return await retrying(read, "reading inputs", self._stop)

    async def _call(self, handler: Handler, context: HandlerContext) -> Any:
        attempt = (context.run_id, context.node_id, context.attempt)
        try:
            if handler.is_async:
                call = handler.function(context)
            else:
                # The thread runs in a copy of this attempt's context: its log lines name the
                # attempt and land in the attempt's log.
                attempt_context = contextvars.copy_context()
                run: Callable[[], Any] = lambda: attempt_context.run(handler.function, context)  # noqa: E731
                call = asyncio.get_running_loop().run_in_executor(self._executor, run)
            return await self._cancels.run(attempt, call, context.cancelled, not handler.is_async)
        except AttemptCancelled:
            raise
        except Exception as error:  # told apart from the worker's own failures: it has a traceback
            raise _HandlerRaised(error) from error
        finally:
            if context.beats is not None:  # it beat: no report of it after its end
                self._beats.end(context)

    def _checked_output(self, output: Any) -> Any:
        """The output with any secret's value hidden, if it is JSON within the size limit."""
        output = self._redactor.value(output)
        try:
            size = len(json.dumps(output, separators=(",", ":")))
        except (TypeError, ValueError) as error:
            raise _Refused("InvalidOutput", f"handler output is not JSON: {error}") from None
        if size > self._max_output_bytes:
            raise _Refused(
                "OutputTooLarge",
                f"handler output is {size} bytes, over the limit of {self._max_output_bytes} "
                "(MAX_OUTPUT_BYTES)",
            )
        return output

    async def _plan(self, definition_id: str) -> WorkflowPlan:
        """One load per definition, however many of its tasks arrive at once."""
        loading = self._plans.get(definition_id)
        if loading is None:
            loading = asyncio.ensure_future(self._definitions.get(definition_id))
            self._plans[definition_id] = loading
        try:
            return (await asyncio.shield(loading)).plan
        except BaseException:
            if loading.done() and (loading.cancelled() or loading.exception() is not None):
                self._plans.pop(definition_id, None)  # let the next task try again
            raise


def _check_item_condition(spec: NodeSpec, data: dict[str, Any]) -> None:
    """A map whose condition reads its item has it checked here, by the domain's rule, where the
    item is (``MapSpec.item_condition``): a false one is reported as ``ConditionFalse``, which the
    run records as the item SKIPPED; one that cannot be evaluated fails the item."""
    condition = None if spec.map is None else spec.map.item_condition
    if condition is None:
        return
    verdict = condition_verdict(condition, data, data[WORKFLOW_NAMESPACE]["input"])
    if verdict is not None:
        raise _Refused(verdict.type, verdict.message)
