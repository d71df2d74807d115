// A few DOM helpers: h() builds elements; text is always set as text (never parsed as HTML).

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "class") element.className = value;
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

export function badge(status) {
  return h("span", { class: `badge st-${status}`, "data-status": status }, status);
}

export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function seconds(startIso, endIso) {
  if (!startIso || !endIso) return "";
  const ms = new Date(endIso) - new Date(startIso);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

export function errorBox(error) {
  const box = h("div", { class: "error-box", role: "alert" }, error.message || String(error));
  for (const detail of error.details || []) {
    box.append(h("div", {}, `${detail.path || ""}: ${detail.message}`));
  }
  return box;
}

export function fields(pairs) {
  const list = h("dl", { class: "fields" });
  for (const [name, value] of pairs) {
    if (value === undefined || value === null || value === "") continue;
    list.append(h("dt", {}, name), h("dd", {}, value));
  }
  return list;
}

// Fields of an object that a page does not know (e.g. added by a newer engine): shown as they are.
export function extraFields(object, known) {
  const pairs = [];
  for (const [key, value] of Object.entries(object || {})) {
    if (known.has(key) || value === null || value === undefined) continue;
    if (Array.isArray(value) && value.length === 0) continue;
    pairs.push([key.replaceAll("_", " "), typeof value === "object" ? json(value) : String(value)]);
  }
  return pairs;
}
