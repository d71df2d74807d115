// The runs page: newest first, filtered by workflow and status, in cursor pages; the page in view is
// read again every few seconds while any of its runs is still going.

import { api, query } from "./api.js";
import { badge, errorBox, h, time } from "./dom.js";

const STATUSES = ["", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const REFRESH_MS = 2000;
const PAGE_SIZE = 50;

export function runsPage(root, params) {
  const state = { workflow: params.get("workflow") || "", status: params.get("status") || "", cursors: [null] };
  let timer = null;
  let closed = false;

  const workflow = h("input", { name: "workflow", placeholder: "workflow name", value: state.workflow });
  const status = h("select", { name: "status" }, STATUSES.map((s) => h("option", { value: s }, s || "any status")));
  status.value = state.status;
  const form = h(
    "form",
    { class: "filters", onsubmit: (event) => { event.preventDefault(); apply(); } },
    workflow,
    status,
    h("button", { type: "submit" }, "Filter"),
  );
  const body = h("tbody");
  const message = h("div");
  const previous = h("button", { type: "button", class: "ghost", onclick: () => move(-1) }, "\u2190 Newer");
  const next = h("button", { type: "button", class: "ghost", onclick: () => move(1) }, "Older \u2192");
  root.append(
    h("h1", {}, "Runs"),
    form,
    message,
    h(
      "table",
      { id: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Created", "Started", "Finished"].map((t) => h("th", {}, t)))),
      body,
    ),
    h("div", { class: "pager" }, previous, next),
  );

  function apply() {
    state.workflow = workflow.value.trim();
    state.status = status.value;
    state.cursors = [null];
    load();
  }

  function move(step) {
    if (step < 0 && state.cursors.length > 1) state.cursors.pop();
    if (step > 0 && state.next) state.cursors.push(state.next);
    load();
  }

  async function load() {
    clearTimeout(timer);
    const cursor = state.cursors[state.cursors.length - 1];
    try {
      const page = await api(`/runs${query({ workflow: state.workflow, status: state.status, cursor, limit: PAGE_SIZE })}`);
      if (closed) return;
      message.replaceChildren();
      state.next = page.next_cursor;
      body.replaceChildren(...page.items.map(row));
      if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "notice" }, "No runs here yet.")));
      previous.disabled = state.cursors.length <= 1;
      next.disabled = !page.next_cursor;
      if (page.items.some((run) => !FINAL.has(run.status))) timer = setTimeout(load, REFRESH_MS);
    } catch (error) {
      if (closed) return;
      message.replaceChildren(errorBox(error));
      timer = setTimeout(load, REFRESH_MS * 2);
    }
  }

  function row(run) {
    const open = () => { location.hash = `#/runs/${encodeURIComponent(run.run_id)}`; };
    return h(
      "tr",
      { class: "link", onclick: open, "data-run": run.run_id },
      h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(run.run_id)}` }, run.run_id)),
      h("td", {}, run.workflow),
      h("td", {}, badge(run.status)),
      h("td", {}, time(run.created_at)),
      h("td", {}, time(run.started_at)),
      h("td", {}, time(run.finished_at)),
    );
  }

  load();
  return { close() { closed = true; clearTimeout(timer); } };
}
