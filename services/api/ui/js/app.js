// The web UI: a hash router over the pages, and the token dialog.
// #/runs  #/runs/{id}  #/definitions  #/definitions/{id}

import { setToken, token } from "./api.js";
import { definitionPage, definitionsPage } from "./definitions.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

const page = document.getElementById("page");
let current = null;

function route() {
  if (current && current.close) current.close();
  current = null;
  page.replaceChildren();
  page.className = "";
  const [path, search] = (location.hash.slice(1) || "/runs").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search || "");
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === parts[0]);
  }
  if (parts[0] === "runs" && parts[1]) current = runPage(page, parts[1]);
  else if (parts[0] === "definitions" && parts[1]) current = definitionPage(page, parts[1]);
  else if (parts[0] === "definitions") current = definitionsPage(page, params);
  else current = runsPage(page, params);
}

const dialog = document.getElementById("token-dialog");
const input = document.getElementById("token-input");
function askToken() {
  if (dialog.open) return;
  input.value = token();
  dialog.showModal();
}
dialog.addEventListener("close", () => {
  if (dialog.returnValue === "save") setToken(input.value.trim());
  else if (dialog.returnValue === "clear") setToken("");
  else return;
  route();
});
document.getElementById("token-button").addEventListener("click", askToken);
window.addEventListener("dag-unauthorized", askToken);
window.addEventListener("hashchange", route);
route();
