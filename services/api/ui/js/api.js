// Talking to the API: JSON requests with the session's bearer token, and a run's events followed
// over Server-Sent Events. EventSource cannot send an Authorization header, so the stream is read
// with fetch and parsed here (the token never goes into a URL).

const API = document.querySelector('meta[name="dag-api"]').content;
const TOKEN_KEY = "dag-workflow-engine.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, body, text) {
    const error = body && body.error;
    super(error ? error.message : `HTTP ${status}: ${text || "no answer"}`);
    this.status = status;
    this.code = error ? error.code : null;
    this.details = error && Array.isArray(error.details) ? error.details : [];
  }
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const bearer = token();
  if (bearer) all.Authorization = `Bearer ${bearer}`;
  return all;
}

function unauthorized() {
  window.dispatchEvent(new CustomEvent("dag-unauthorized"));
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let response;
  try {
    response = await fetch(API + path, init);
  } catch (error) {
    throw new ApiError(0, null, `the API does not answer (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401) unauthorized();
    throw new ApiError(response.status, data, text);
  }
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function parseBlock(block) {
  const message = { id: null, event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") message.id = value;
    else if (field === "event") message.event = value;
    else if (field === "data") message.data.push(value);
  }
  return message.data.length ? message : null;
}

// Follow a run's events after event number `after`; onEvent(view) for each, onEnd() after the one
// that ends the run. A dropped connection resumes after the last event seen (Last-Event-ID).
export function followEvents(runId, { after = 0, onEvent, onEnd, onError }) {
  const controller = new AbortController();
  let last = after;
  let stopped = false;
  (async () => {
    let delay = 500;
    while (!stopped) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (last) extra["Last-Event-ID"] = String(last);
        const response = await fetch(`${API}/runs/${encodeURIComponent(runId)}/events`, {
          headers: headers(extra),
          signal: controller.signal,
        });
        if (!response.ok) {
          if (response.status === 401) unauthorized();
          throw new ApiError(response.status, await response.json().catch(() => null), "");
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = parseBlock(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!message) continue;
            const view = JSON.parse(message.data.join("\n"));
            last = Number(message.id) || last;
            delay = 500;
            onEvent(view);
            if (view.run_status) {
              stopped = true;
              if (onEnd) onEnd(view);
              return;
            }
          }
        }
      } catch (error) {
        if (stopped || controller.signal.aborted) return;
        if (onError) onError(error);
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) return;
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return {
    close() {
      stopped = true;
      controller.abort();
    },
  };
}
