// The DAG drawn on a canvas from the server's layout (GET /definitions/{id}/graph): zoom (wheel,
// buttons) and pan (drag); only what lies in view is drawn, labels only when they can be read.
// A canvas rather than SVG: a 20,000-node SVG is 60,000 elements that the browser lays out and
// paints again whenever one node changes colour; here a change costs one redraw in the next frame.
//
// For tests and tools the canvas carries data-node-count, data-drawn-nodes (drawn in the last
// frame), data-status-counts (JSON) and the view's transform (data-scale, data-tx, data-ty).

const LABEL_CHARS = 22;
const LABEL_SCALE = 0.45;
const ZOOM_STEP = 1.2;
const STATUSES = ["PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"];

function short(text) {
  return text.length <= LABEL_CHARS ? text : `${text.slice(0, LABEL_CHARS - 1)}\u2026`;
}

function palette() {
  const style = getComputedStyle(document.documentElement);
  const colour = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const fills = { other: colour("--st-other", "#e0e0e0") };
  for (const status of STATUSES) fills[status] = colour(`--st-${status}`, fills.other);
  return fills;
}

const STROKES = {
  RUNNING: ["#b7791f", 2, []],
  FAILED: ["#b71c1c", 3, []],
  SKIPPED: ["#8a94a6", 1, [4, 3]],
};
const DEFAULT_STROKE = ["#5b6475", 1, []];

export class GraphView {
  constructor(container, graph, { onSelect } = {}) {
    this.graph = graph;
    this.onSelect = onSelect;
    this.index = new Map(graph.nodes.map((node, i) => [node.id, i]));
    this.statuses = new Array(graph.nodes.length).fill("PENDING");
    this.parentsOf = graph.nodes.map(() => []);
    for (const [parent, child] of graph.edges) this.parentsOf[child].push(parent);
    this.fills = palette();
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.selected = null;
    this.frame = 0;
    this.canvas = document.createElement("canvas");
    this.canvas.className = "graph";
    this.canvas.dataset.nodeCount = String(graph.nodes.length);
    this.canvas.graphView = this; // for tests and the console: no global
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", `graph of ${graph.nodes.length} nodes`);
    container.append(this.canvas, this._tools());
    this._listen();
    new ResizeObserver(() => {
      if (!this.fitted) this.fit();
      else this.redraw();
    }).observe(this.canvas);
  }

  _tools() {
    const tools = document.createElement("div");
    tools.className = "graph-tools";
    for (const [label, title, action] of [
      ["+", "Zoom in", () => this.zoomBy(ZOOM_STEP)],
      ["\u2212", "Zoom out", () => this.zoomBy(1 / ZOOM_STEP)],
      ["Fit", "Show the whole graph", () => this.fit()],
    ]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "ghost";
      button.title = title;
      button.textContent = label;
      button.addEventListener("click", action);
      tools.append(button);
    }
    return tools;
  }

  fit() {
    const box = this.canvas.getBoundingClientRect();
    if (!box.width || !box.height) return;
    this.fitted = true;
    const scale = Math.min(box.width / this.graph.width, box.height / this.graph.height, 1.5);
    this.scale = scale;
    this.tx = (box.width - this.graph.width * scale) / 2;
    this.ty = (box.height - this.graph.height * scale) / 2;
    this.redraw();
  }

  zoomBy(factor, cx, cy) {
    const box = this.canvas.getBoundingClientRect();
    const x = cx ?? box.width / 2;
    const y = cy ?? box.height / 2;
    const scale = Math.min(Math.max(this.scale * factor, 0.002), 8);
    this.tx = x - ((x - this.tx) * scale) / this.scale;
    this.ty = y - ((y - this.ty) * scale) / this.scale;
    this.scale = scale;
    this.redraw();
  }

  centerOn(nodeId) {
    const i = this.index.get(nodeId);
    if (i === undefined) return;
    const node = this.graph.nodes[i];
    const box = this.canvas.getBoundingClientRect();
    if (this.scale < 0.8) this.scale = 1;
    this.tx = box.width / 2 - (node.x + this.graph.node_width / 2) * this.scale;
    this.ty = box.height / 2 - (node.y + this.graph.node_height / 2) * this.scale;
    this.redraw();
  }

  // Where a node's centre is on the page (for tests that click it).
  screenPoint(nodeId) {
    const node = this.graph.nodes[this.index.get(nodeId)];
    const box = this.canvas.getBoundingClientRect();
    return {
      x: box.left + this.tx + (node.x + this.graph.node_width / 2) * this.scale,
      y: box.top + this.ty + (node.y + this.graph.node_height / 2) * this.scale,
    };
  }

  nodeAt(clientX, clientY) {
    const box = this.canvas.getBoundingClientRect();
    const x = (clientX - box.left - this.tx) / this.scale;
    const y = (clientY - box.top - this.ty) / this.scale;
    const { node_width: w, node_height: hgt } = this.graph;
    const nodes = this.graph.nodes;
    for (let i = 0; i < nodes.length; i++) {
      const node = nodes[i];
      if (x >= node.x && x <= node.x + w && y >= node.y && y <= node.y + hgt) return node.id;
    }
    return null;
  }

  _listen() {
    let drag = null;
    const canvas = this.canvas;
    canvas.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const box = canvas.getBoundingClientRect();
        this.zoomBy(event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, event.clientX - box.left, event.clientY - box.top);
      },
      { passive: false },
    );
    canvas.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, tx: this.tx, ty: this.ty, moved: false };
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drag) {
        canvas.style.cursor = this.nodeAt(event.clientX, event.clientY) ? "pointer" : "grab";
        return;
      }
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
      if (!drag.moved) canvas.setPointerCapture(event.pointerId);
      drag.moved = true;
      canvas.style.cursor = "grabbing";
      this.tx = drag.tx + dx;
      this.ty = drag.ty + dy;
      this.redraw();
    });
    canvas.addEventListener("pointerup", (event) => {
      const wasClick = drag && !drag.moved;
      drag = null;
      canvas.style.cursor = "grab";
      if (!wasClick) return;
      const id = this.nodeAt(event.clientX, event.clientY);
      if (id !== null && this.onSelect) this.onSelect(id);
    });
    canvas.addEventListener("pointercancel", () => {
      drag = null;
    });
  }

  status(nodeId) {
    const i = this.index.get(nodeId);
    return i === undefined ? undefined : this.statuses[i];
  }

  setStatus(nodeId, status) {
    const i = this.index.get(nodeId);
    if (i === undefined || this.statuses[i] === status) return false;
    this.statuses[i] = status;
    this.redraw();
    return true;
  }

  select(nodeId) {
    this.selected = nodeId;
    this.redraw();
  }

  parents(nodeId) {
    const i = this.index.get(nodeId);
    return i === undefined ? [] : this.parentsOf[i].map((p) => this.graph.nodes[p].id);
  }

  redraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this._draw());
  }

  _draw() {
    this.frame = 0;
    const canvas = this.canvas;
    const box = canvas.getBoundingClientRect();
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(box.width * ratio));
    const height = Math.max(1, Math.round(box.height * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.setTransform(ratio * this.scale, 0, 0, ratio * this.scale, ratio * this.tx, ratio * this.ty);
    // The part of the layout in view, in layout coordinates.
    const left = -this.tx / this.scale;
    const top = -this.ty / this.scale;
    const right = left + box.width / this.scale;
    const bottom = top + box.height / this.scale;
    const { node_width: w, node_height: hgt, nodes, edges } = this.graph;

    ctx.beginPath();
    let edgesDrawn = 0;
    for (const [parent, child] of edges) {
      const a = nodes[parent];
      const b = nodes[child];
      const x1 = a.x + w;
      const x2 = b.x;
      const y1 = a.y + hgt / 2;
      const y2 = b.y + hgt / 2;
      if (x2 < left || x1 > right || (y1 < top && y2 < top) || (y1 > bottom && y2 > bottom)) continue;
      const bend = Math.max((x2 - x1) / 2, 20);
      ctx.moveTo(x1, y1);
      ctx.bezierCurveTo(x1 + bend, y1, x2 - bend, y2, x2, y2);
      edgesDrawn++;
    }
    // Thousands of edges in view are a texture, not lines to follow: fainter, the nodes stay clear.
    ctx.strokeStyle = edgesDrawn > 2000 ? "rgba(154, 163, 178, 0.35)" : "#9aa3b2";
    ctx.lineWidth = 1.2;
    ctx.setLineDash([]);
    ctx.stroke();

    const visible = new Map();
    const counts = {};
    for (let i = 0; i < nodes.length; i++) {
      const status = this.statuses[i];
      counts[status] = (counts[status] || 0) + 1;
      const node = nodes[i];
      if (node.x > right || node.x + w < left || node.y > bottom || node.y + hgt < top) continue;
      if (!visible.has(status)) visible.set(status, []);
      visible.get(status).push(i);
    }
    let drawn = 0;
    const radius = this.scale * hgt < 6 ? 0 : 6;
    for (const [status, members] of visible) {
      ctx.beginPath();
      for (const i of members) {
        if (radius) ctx.roundRect(nodes[i].x, nodes[i].y, w, hgt, radius);
        else ctx.rect(nodes[i].x, nodes[i].y, w, hgt);
      }
      drawn += members.length;
      ctx.fillStyle = this.fills[status] || this.fills.other;
      ctx.fill();
      const [stroke, lineWidth, dash] = STROKES[status] || DEFAULT_STROKE;
      ctx.strokeStyle = stroke;
      ctx.lineWidth = lineWidth;
      ctx.setLineDash(dash);
      ctx.stroke();
    }
    ctx.setLineDash([]);
    const selected = this.selected === null ? undefined : this.index.get(this.selected);
    if (selected !== undefined) {
      ctx.beginPath();
      ctx.roundRect(nodes[selected].x - 3, nodes[selected].y - 3, w + 6, hgt + 6, 8);
      ctx.strokeStyle = "#2f6fed";
      ctx.lineWidth = 3;
      ctx.stroke();
    }
    if (this.scale >= LABEL_SCALE) {
      for (const [status, members] of visible) {
        ctx.fillStyle = status === "SKIPPED" ? "#8a94a6" : "#1d2330";
        ctx.font = "12px system-ui, sans-serif";
        for (const i of members) ctx.fillText(short(nodes[i].id), nodes[i].x + 8, nodes[i].y + 15);
        ctx.fillStyle = "#5b6475";
        ctx.font = "10px system-ui, sans-serif";
        for (const i of members) ctx.fillText(short(nodes[i].handler), nodes[i].x + 8, nodes[i].y + 29);
      }
    }
    canvas.dataset.drawnNodes = String(drawn);
    canvas.dataset.statusCounts = JSON.stringify(counts);
    canvas.dataset.scale = this.scale.toFixed(4);
    canvas.dataset.tx = this.tx.toFixed(1);
    canvas.dataset.ty = this.ty.toFixed(1);
  }
}
