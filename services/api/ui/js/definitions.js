// Definitions: the list (by name, in cursor pages) and one definition: its versions, its DAG drawn
// from the definition alone (every node planned), its source, and "start a run" with an input.

import { api, query } from "./api.js";
import { errorBox, h, json, time } from "./dom.js";
import { GraphView } from "./graph.js";

const PAGE_SIZE = 50;

export function definitionsPage(root, params) {
  const state = { name: params.get("name") || "", cursors: [null] };
  let closed = false;
  const name = h("input", { name: "name", placeholder: "workflow name", value: state.name });
  const body = h("tbody");
  const message = h("div");
  const previous = h("button", { type: "button", class: "ghost", onclick: () => move(-1) }, "\u2190 Newer");
  const next = h("button", { type: "button", class: "ghost", onclick: () => move(1) }, "Older \u2192");
  root.append(
    h("h1", {}, "Definitions"),
    h(
      "form",
      { class: "filters", onsubmit: (event) => { event.preventDefault(); state.name = name.value.trim(); state.cursors = [null]; load(); } },
      name,
      h("button", { type: "submit" }, "Filter"),
    ),
    message,
    h(
      "table",
      { id: "definitions" },
      h("thead", {}, h("tr", {}, ["Workflow", "Version", "Nodes", "Registered", "Id"].map((t) => h("th", {}, t)))),
      body,
    ),
    h("div", { class: "pager" }, previous, next),
  );

  function move(step) {
    if (step < 0 && state.cursors.length > 1) state.cursors.pop();
    if (step > 0 && state.next) state.cursors.push(state.next);
    load();
  }

  async function load() {
    try {
      const cursor = state.cursors[state.cursors.length - 1];
      const page = await api(`/definitions${query({ name: state.name, cursor, limit: PAGE_SIZE })}`);
      if (closed) return;
      message.replaceChildren();
      state.next = page.next_cursor;
      body.replaceChildren(
        ...page.items.map((item) => {
          const href = `#/definitions/${encodeURIComponent(item.definition_id)}`;
          return h(
            "tr",
            { class: "link", onclick: () => { location.hash = href; }, "data-definition": item.definition_id },
            h("td", {}, h("a", { href }, item.name)),
            h("td", {}, `v${item.version}`),
            h("td", {}, String(item.node_count)),
            h("td", {}, time(item.created_at)),
            h("td", { class: "mono" }, item.definition_id),
          );
        }),
      );
      if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "notice" }, "No definitions registered yet.")));
      previous.disabled = state.cursors.length <= 1;
      next.disabled = !page.next_cursor;
    } catch (error) {
      if (!closed) message.replaceChildren(errorBox(error));
    }
  }

  load();
  return { close() { closed = true; } };
}

export function definitionPage(root, definitionId) {
  root.className = "full";
  let closed = false;
  const head = h("div", { class: "run-head" }, h("span", { class: "notice" }, "Loading definition\u2026"));
  const graphBox = h("div", { class: "graph-box", id: "graph" });
  const side = h("aside", { class: "side" });
  root.append(head, h("div", { class: "run-body" }, graphBox, side));

  async function start() {
    try {
      const definition = await api(`/definitions/${encodeURIComponent(definitionId)}`);
      const layout = await api(`/definitions/${encodeURIComponent(definitionId)}/graph`);
      if (closed) return;
      head.replaceChildren(
        h("span", { class: "title" }, definition.name),
        h("span", {}, `version ${definition.version}`),
        h("span", {}, `${definition.node_count} nodes`),
        h("span", { class: "mono notice" }, definition.definition_id),
        h("a", { href: `#/runs?workflow=${encodeURIComponent(definition.name)}` }, "its runs"),
      );
      new GraphView(graphBox, layout, {});
      const versions = h("ul", { id: "versions" });
      side.append(startForm(definition), h("h3", {}, "Versions"), versions, h("h3", {}, "Source"), json(definition.definition));
      const page = await api(`/definitions${query({ name: definition.name, limit: 20 })}`);
      versions.replaceChildren(
        ...page.items.map((item) =>
          h(
            "li",
            {},
            item.definition_id === definitionId
              ? h("strong", {}, `v${item.version} (this one)`)
              : h("a", { href: `#/definitions/${encodeURIComponent(item.definition_id)}` }, `v${item.version}`),
            ` \u00b7 ${time(item.created_at)}`,
          ),
        ),
      );
    } catch (error) {
      if (!closed) head.replaceChildren(errorBox(error));
    }
  }

  function startForm(definition) {
    const source = definition.definition || {};
    const schema = source.input_schema || null;
    const input = h("textarea", { id: "run-input", spellcheck: "false" }, "{}");
    const message = h("div");
    const form = h(
      "form",
      {
        id: "start-run",
        onsubmit: async (event) => {
          event.preventDefault();
          message.replaceChildren();
          let value;
          try {
            value = JSON.parse(input.value || "{}");
          } catch (error) {
            message.replaceChildren(errorBox({ message: `the input is not valid JSON: ${error.message}` }));
            return;
          }
          if (value === null || typeof value !== "object" || Array.isArray(value)) {
            message.replaceChildren(errorBox({ message: "the input must be a JSON object" }));
            return;
          }
          try {
            const run = await api("/runs", { method: "POST", body: { definition_id: definitionId, input: value } });
            location.hash = `#/runs/${encodeURIComponent(run.run_id)}`;
          } catch (error) {
            message.replaceChildren(errorBox(error));
          }
        },
      },
      h("h3", {}, "Start a run"),
      schema ? h("details", {}, h("summary", {}, "Input schema"), json(schema)) : null,
      h("label", { for: "run-input" }, "Input (a JSON object; the API checks it against the definition)"),
      input,
      h("button", { type: "submit" }, "Start run"),
      message,
    );
    return form;
  }

  start();
  return { close() { closed = true; } };
}
