// A run's page: the whole planned DAG coloured by node status, live from the run's event stream;
// the run's status, input, output and event history; a node panel; the cancel and redrive buttons.
//
// Colours follow the events as they arrive (a hint: started -> RUNNING, succeeded -> COMPLETED ...)
// and the run's read model (GET /runs/{id}) is read again shortly after, which decides: the page
// never has to know every rule of the engine, and states or fields it does not know still show.

import { ApiError, api, followEvents } from "./api.js";
import { badge, errorBox, extraFields, fields, h, json, seconds, time } from "./dom.js";
import { GraphView } from "./graph.js";

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const EVENTS_SHOWN = 200;
const KNOWN_NODE_FIELDS = new Set([
  "node_id", "handler", "parents", "status", "attempts", "queued_at", "started_at", "finished_at",
  "worker_id", "error", "failed_attempts", "has_output", "output", "reason", "items",
]);
const KNOWN_RUN_FIELDS = new Set([
  "run_id", "definition_id", "workflow", "status", "input", "created_at", "started_at", "finished_at", "nodes",
  "error", "output",
]);
const HINTS = { node_started: "RUNNING", node_succeeded: "COMPLETED" };

function reconcileDelay(nodeCount) {
  // Reading a 20,000-node run costs more than a 10-node one: read it less often.
  return Math.min(250 + nodeCount / 4, 5000);
}

export function runPage(root, runId) {
  root.className = "full";
  let closed = false;
  let stream = null;
  let graph = null;
  let run = null;
  let reconcileTimer = null;
  let selected = null;
  const events = [];

  const head = h("div", { class: "run-head" }, h("span", { class: "notice" }, "Loading run\u2026"));
  const graphBox = h("div", { class: "graph-box", id: "graph" });
  const side = h("aside", { class: "side" });
  const nodePanel = h("section", { id: "node-panel" });
  const runPanel = h("section", { id: "run-panel" });
  const eventList = h("ol", { class: "events", id: "events" });
  side.append(nodePanel, runPanel, h("h3", {}, "Events (newest first)"), eventList);
  root.append(head, h("div", { class: "run-body" }, graphBox, side));

  async function start() {
    try {
      run = await api(`/runs/${encodeURIComponent(runId)}`);
      const layout = await api(`/definitions/${encodeURIComponent(run.definition_id)}/graph`);
      if (closed) return;
      graph = new GraphView(graphBox, layout, { onSelect: selectNode });
      showRun();
      // The run's state came with it: show only its newest events, then follow from there.
      const tail = await api(`/runs/${encodeURIComponent(runId)}/events/tail?limit=${EVENTS_SHOWN}`);
      if (closed) return;
      events.push(...tail.events);
      scheduleEvents();
      if (FINAL.has(run.status)) return;
      stream = followEvents(runId, {
        after: tail.last_seq,
        onEvent: onEvent,
        onEnd: () => reconcileSoon(0),
        onError: (error) => head.append(errorBox(error)),
      });
      reconcileSoon(0); // anything that happened between reading the run and its events
    } catch (error) {
      if (closed) return;
      head.replaceChildren(errorBox(error));
    }
  }

  function onEvent(event) {
    events.push(event);
    if (events.length > 2 * EVENTS_SHOWN) events.splice(0, events.length - EVENTS_SHOWN);
    if (graph) {
      if (event.node_id && HINTS[event.kind]) graph.setStatus(event.node_id, HINTS[event.kind]);
      if (event.kind === "node_failed" && !event.retry_at && event.node_id) graph.setStatus(event.node_id, "FAILED");
      for (const id of event.dispatched || []) graph.setStatus(id, "QUEUED");
      for (const id of event.skipped || []) graph.setStatus(id, "SKIPPED");
    }
    scheduleEvents();
    reconcileSoon(event.run_status ? 0 : reconcileDelay(graph ? graph.graph.nodes.length : 0));
  }

  let eventsFrame = 0;
  function scheduleEvents() {
    if (eventsFrame) return;
    eventsFrame = requestAnimationFrame(() => {
      eventsFrame = 0;
      const newest = events.slice(-EVENTS_SHOWN).reverse();
      eventList.replaceChildren(...newest.map(eventItem));
    });
  }

  function eventItem(event) {
    const parts = [h("span", { class: "kind" }, event.kind.replaceAll("_", " "))];
    if (event.node_id) parts.push(" ", nodeLink(event.node_id), event.attempt ? ` #${event.attempt}` : "");
    if (event.error) parts.push(h("div", { class: "error-box" }, `${event.error.type}: ${event.error.message}`));
    if (event.retry_at) parts.push(h("div", {}, `retry at ${time(event.retry_at)}`));
    if (event.redriven && event.redriven.length) parts.push(h("div", {}, `runs again: ${shortList(event.redriven)}`));
    if (event.dispatched && event.dispatched.length) parts.push(h("div", {}, `queued: ${shortList(event.dispatched)}`));
    if (event.skipped && event.skipped.length) parts.push(h("div", {}, `skipped: ${shortList(event.skipped)}`));
    if (event.run_status) parts.push(h("div", {}, "run ended ", badge(event.run_status)));
    return h("li", { "data-seq": event.seq }, h("span", { class: "notice" }, `${event.seq} \u00b7 ${time(event.at)} `), ...parts);
  }

  function reconcileSoon(delay) {
    if (reconcileTimer !== null && delay > 0) return;
    clearTimeout(reconcileTimer);
    reconcileTimer = setTimeout(reconcile, delay);
  }

  async function reconcile() {
    reconcileTimer = null;
    try {
      const fresh = await api(`/runs/${encodeURIComponent(runId)}`);
      if (closed) return;
      run = fresh;
      showRun();
    } catch (error) {
      if (!closed && !(error instanceof ApiError && error.status === 0)) head.append(errorBox(error));
    }
  }

  function showRun() {
    const counts = {};
    const failed = [];
    let selectedChanged = false;
    for (const [id, node] of Object.entries(run.nodes)) {
      counts[node.status] = (counts[node.status] || 0) + 1;
      if (node.status === "FAILED") failed.push(id);
      if (graph.setStatus(id, node.status) && id === selected) selectedChanged = true;
    }
    const cancel = h(
      "button",
      { type: "button", class: "danger", id: "cancel", disabled: FINAL.has(run.status), onclick: cancelRun },
      "Cancel run",
    );
    head.replaceChildren(
      ...[
      h("span", { class: "title" }, run.workflow),
      h("span", { id: "run-status" }, badge(run.status)),
      h("span", { class: "mono notice" }, run.run_id),
      h("span", { class: "counts", id: "counts" }, Object.entries(counts).map(([s, n]) => h("span", { class: `badge st-${s}` }, `${s} ${n}`))),
      failed.length
        ? h("span", { id: "failed-nodes" }, "failed: ", failed.slice(0, 5).flatMap((id, i) => [i ? ", " : "", nodeLink(id)]), failed.length > 5 ? ` and ${failed.length - 5} more` : "")
        : null,
      cancel,
      run.status === "FAILED" || run.status === "CANCELLED"
        ? h("button", { type: "button", id: "redrive", onclick: redriveRun }, "Redrive")
        : null,
      ].filter(Boolean),
    );
    runPanel.replaceChildren(
      h("h3", {}, "Run"),
      fields([
        ["definition", h("a", { href: `#/definitions/${encodeURIComponent(run.definition_id)}` }, run.definition_id)],
        ["created", time(run.created_at)],
        ["started", time(run.started_at)],
        ["finished", time(run.finished_at)],
        ["duration", seconds(run.started_at, run.finished_at)],
        ...extraFields(run, KNOWN_RUN_FIELDS),
      ]),
      ...[run.error ? h("div", { class: "error-box", id: "run-error" }, `${run.error.type}: ${run.error.message}`) : null].filter(Boolean),
      h("h3", {}, "Input"),
      json(run.input),
      ...(run.output !== undefined && run.output !== null ? [h("h3", {}, "Run output"), json(run.output)] : []),
      ...[results()].filter(Boolean),
    );
    if (selectedChanged) selectNode(selected);
  }

  function results() {
    if (!FINAL.has(run.status)) return null;
    const box = h("div", {}, h("h3", {}, "Output (completed nodes)"), h("span", { class: "notice" }, "loading\u2026"));
    api(`/runs/${encodeURIComponent(runId)}/results`)
      .then((answer) => box.replaceChildren(h("h3", {}, "Output (completed nodes)"), json(answer.results)))
      .catch((error) => box.replaceChildren(errorBox(error)));
    return box;
  }

  async function cancelRun(event) {
    event.target.disabled = true;
    try {
      await api(`/runs/${encodeURIComponent(runId)}/cancel`, { method: "POST" });
      reconcileSoon(0);
    } catch (error) {
      head.append(errorBox(error));
    }
  }

  // Run the failed, cancelled and skipped nodes again (completed outputs are kept), then follow
  // the run's events from the last one shown.
  async function redriveRun(event) {
    event.target.disabled = true;
    try {
      await api(`/runs/${encodeURIComponent(runId)}/redrive`, { method: "POST" });
      if (stream) stream.close();
      const last = events.length ? events[events.length - 1].seq : 0;
      stream = followEvents(runId, {
        after: last,
        onEvent: onEvent,
        onEnd: () => reconcileSoon(0),
        onError: (error) => head.append(errorBox(error)),
      });
      reconcileSoon(0);
    } catch (error) {
      event.target.disabled = false;
      head.append(errorBox(error));
    }
  }

  function nodeLink(id) {
    return h("a", { class: "node-link", "data-node-link": id, onclick: () => { selectNode(id); graph.centerOn(id); } }, id);
  }

  function shortList(ids) {
    return ids.length <= 6 ? ids.join(", ") : `${ids.slice(0, 6).join(", ")} and ${ids.length - 6} more`;
  }

  async function selectNode(id) {
    selected = id;
    graph.select(id);
    try {
      const node = await api(`/runs/${encodeURIComponent(runId)}/nodes/${encodeURIComponent(id)}`);
      if (closed || selected !== id) return;
      nodePanel.replaceChildren(...nodeDetail(node));
    } catch (error) {
      if (!closed) nodePanel.replaceChildren(errorBox(error));
    }
  }

  // A map node's items by status; each item is at /runs/{id}/nodes/{node}/items.
  function itemsSummary(items) {
    if (!items) return null;
    const inFlight = items.queued + items.running + items.retrying;
    return `${items.completed} of ${items.total} completed, ${items.failed} failed, ${inFlight} in flight, ${items.waiting} waiting`;
  }

  function nodeDetail(node) {
    const parts = [
      h("h3", {}, "Node"),
      h("div", { class: "title mono", id: "node-title" }, node.node_id, " ", badge(node.status)),
      fields([
        ["why", node.reason],
        ["handler", node.handler],
        ["attempts", String(node.attempts)],
        ["items", itemsSummary(node.items)],
        ["worker", node.worker_id],
        ["queued", time(node.queued_at)],
        ["started", time(node.started_at)],
        ["finished", time(node.finished_at)],
        ["duration", seconds(node.started_at, node.finished_at)],
        ["parents", node.parents.length ? node.parents.flatMap((p, i) => [i ? ", " : "", nodeLink(p)]) : "none (a root)"],
        ...extraFields(node, KNOWN_NODE_FIELDS),
      ]),
    ];
    if (!node.reason && node.status === "PENDING" && node.parents.length) {
      const waiting = node.parents.filter((p) => run.nodes[p] && run.nodes[p].status !== "COMPLETED");
      if (waiting.length) parts.push(h("div", { class: "notice", id: "waiting-for" }, `waiting for: ${shortList(waiting)}`));
    }
    if (node.error) {
      const why = node.status === "SKIPPED" ? "Why it was skipped" : "Error";
      parts.push(h("h3", {}, why), h("div", { class: "error-box", id: "node-error" }, `${node.error.type}: ${node.error.message}`));
    }
    if (node.failed_attempts.length) {
      parts.push(h("h3", {}, "Earlier attempts"));
      for (const attempt of node.failed_attempts) {
        parts.push(
          h("div", {}, `#${attempt.attempt} ${time(attempt.started_at)} \u2192 ${time(attempt.finished_at)}`),
          h("div", { class: "error-box" }, `${attempt.error.type}: ${attempt.error.message}`),
        );
      }
    }
    if (node.has_output) parts.push(h("h3", {}, "Output"), json(node.output));
    return parts;
  }

  start();
  return {
    close() {
      closed = true;
      clearTimeout(reconcileTimer);
      if (stream) stream.close();
    },
  };
}
