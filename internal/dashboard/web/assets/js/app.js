// The dashboard's page: the session, the views behind #/name, and the
// live stream that keeps the overview and the map current.
import { get, post, setCSRF } from "./api.js";
import * as overview from "./views/overview.js";
import * as worldmap from "./views/map.js";
import * as networks from "./views/networks.js";
import * as cases from "./views/cases.js";
import * as domains from "./views/domains.js";
import * as usersView from "./views/users.js";

const views = { overview, map: worldmap, networks, cases, domains, users: usersView };
const main = document.getElementById("view");
let session = null;
let current = null; // { name, module }
let lastUpdate = null;

function route() {
  const m = location.hash.match(/^#\/([a-z]+)(?:\?(.*))?$/);
  const name = m && views[m[1]] ? m[1] : "overview";
  const params = new URLSearchParams(m && m[2] ? m[2] : "");
  return { name, params };
}

async function show() {
  const { name, params } = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const mod = views[name];
  current = { name, module: mod };
  main.innerHTML = "<p>Loading…</p>";
  document.title = `${name[0].toUpperCase() + name.slice(1)} — takedown`;
  try {
    await mod.render(main, { session, params, navigate });
  } catch (e) {
    main.innerHTML = "";
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    p.textContent = "Could not load: " + e.message;
    main.append(p);
  }
  main.dataset.view = name;
  main.dataset.loaded = String(Date.now());
}

// navigate changes the hash: the view and its parameters.
function navigate(name, params = {}) {
  const q = new URLSearchParams(params).toString();
  location.hash = `#/${name}${q ? "?" + q : ""}`;
}

function live() {
  const status = document.getElementById("live");
  const es = new EventSource("/ui/api/live");
  es.addEventListener("open", () => { status.classList.add("on"); status.textContent = "live"; });
  es.addEventListener("error", () => { status.classList.remove("on"); status.textContent = "reconnecting…"; });
  es.addEventListener("update", async (ev) => {
    const u = JSON.parse(ev.data);
    lastUpdate = u;
    status.classList.add("on");
    status.textContent = "live · data of " + new Date(u.as_of).toISOString().slice(11, 19) + " UTC";
    status.dataset.seq = u.seq;
    if (current && current.module.update) {
      try { await current.module.update(u); } catch (e) { console.warn("live update", e); }
    }
  });
}

async function start() {
  try {
    session = await get("session");
  } catch {
    return; // sent to the login page
  }
  setCSRF(session.csrf);
  document.getElementById("user").textContent = session.user;
  document.getElementById("role").textContent = session.role;
  document.getElementById("nav-users").hidden = !session.administers;
  document.getElementById("logout").addEventListener("click", async () => {
    try { await post("logout"); } finally { location.href = "/ui/login"; }
  });
  window.addEventListener("hashchange", show);
  await show();
  live();
}

start();
export { lastUpdate };
