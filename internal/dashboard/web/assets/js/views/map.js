// World map: the choropleth of a day's unique infected hosts per country
// (drawn by the server with the same code as `takedown map`), cities as
// proportional circles, hover for numbers, click a country for its
// networks, a slider for the day and a family filter.
import { get, query, n, h } from "../api.js";
import { tableHTML } from "../charts.js";
import { hostsTable } from "./hosts.js";

let state = null;

export async function render(root, { session, params }) {
  state = { root, session, family: params.get("family") || "", day: params.get("day") || "", selected: params.get("cc") || "" };
  root.innerHTML = `
    <h1>World map of infected hosts</h1>
    <div class="controls">
      <label>Family <select id="map-family"><option value="">All families</option></select></label>
      <label>Day <input id="map-day" type="range" min="0" max="0" value="0" aria-describedby="map-day-text"></label>
      <output id="map-day-text" for="map-day"></output>
      <button type="button" class="secondary" id="map-today">Today</button>
      <a id="map-download" href="#">Download SVG</a>
    </div>
    <p id="map-summary" aria-live="polite"></p>
    <div class="map-wrap" id="map"></div>
    <div class="grid2 side">
      <section class="card" id="map-country" aria-live="polite"><p class="muted">Click a country (or a row below) for its networks.</p></section>
      <section class="card"><h2>Countries</h2><div id="map-table" class="scroll"></div></section>
    </div>
    <section class="card side"><h2>Cities</h2><p class="muted">Circles: area in proportion to the city's hosts.</p><div id="map-cities" class="scroll"></div></section>`;
  const fam = root.querySelector("#map-family");
  fam.addEventListener("change", () => { state.family = fam.value; load(); });
  const slider = root.querySelector("#map-day");
  slider.addEventListener("input", () => { root.querySelector("#map-day-text").textContent = state.days[slider.value]; });
  slider.addEventListener("change", () => { state.day = state.days[slider.value]; load(); });
  root.querySelector("#map-today").addEventListener("click", () => { state.day = ""; load(); });
  const map = root.querySelector("#map");
  const tip = document.getElementById("tooltip");
  map.addEventListener("mousemove", (ev) => {
    const t = ev.target.closest("path.country, circle.city, circle.dot");
    if (!t) { tip.hidden = true; return; }
    tip.textContent = t.matches("circle.city")
      ? `${t.dataset.city} (${t.dataset.cc}): ${n(+t.dataset.hosts)} hosts`
      : `${t.dataset.name || t.dataset.cc}: ${n(+t.dataset.hosts)} hosts`;
    tip.hidden = false;
    tip.style.left = ev.clientX + 12 + "px";
    tip.style.top = ev.clientY + 12 + "px";
  });
  map.addEventListener("mouseleave", () => { tip.hidden = true; });
  map.addEventListener("click", (ev) => {
    const t = ev.target.closest("[data-cc]");
    if (t && t.dataset.cc) selectCountry(t.dataset.cc);
  });
  root.querySelector("#map-table").addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-cc]");
    if (b) selectCountry(b.dataset.cc);
  });
  await load();
}

export async function update() {
  if (!state || !document.body.contains(state.root.querySelector("#map"))) return;
  if (!state.day || state.day === state.today) await load(true);
}

async function load(live = false) {
  const { root } = state;
  const d = await get("map" + query({ day: state.day, family: state.family }));
  state.days = d.days;
  state.today = d.days[d.days.length - 1];
  const sel = root.querySelector("#map-family");
  if (sel.options.length !== d.families.length + 1) {
    sel.innerHTML = `<option value="">All families</option>` + d.families.map((f) => `<option>${h(f)}</option>`).join("");
    sel.value = state.family;
  }
  const slider = root.querySelector("#map-day");
  slider.max = d.days.length - 1;
  slider.value = Math.max(0, d.days.indexOf(d.day));
  root.querySelector("#map-day-text").textContent = d.day;
  root.querySelector("#map-download").href = "/ui/api/map.svg" + query({ day: d.day, family: state.family });

  const map = root.querySelector("#map");
  map.innerHTML = d.svg.replace(/^<\?xml[^>]*>\s*/, "");
  const svgEl = map.querySelector("svg");
  svgEl.removeAttribute("width");
  svgEl.removeAttribute("height");
  const names = new Map(d.countries.map((c) => [c.cc, c.name]));
  for (const p of svgEl.querySelectorAll("path.country")) {
    const t = p.querySelector("title");
    p.dataset.name = t ? t.textContent.replace(/:.*$/, "") : names.get(p.dataset.cc) || p.dataset.cc;
  }
  const g = document.createElementNS("http://www.w3.org/2000/svg", "g");
  g.id = "cities";
  for (const c of d.cities) {
    const ci = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    ci.setAttribute("class", "city");
    ci.setAttribute("cx", c.x);
    ci.setAttribute("cy", c.y);
    ci.setAttribute("r", c.r);
    ci.dataset.city = c.city;
    ci.dataset.cc = c.cc;
    ci.dataset.hosts = c.hosts;
    g.append(ci);
  }
  svgEl.append(g);
  if (state.selected) svgEl.querySelector(`path.country[data-cc="${CSS.escape(state.selected)}"]`)?.classList.add("selected");

  const summary = root.querySelector("#map-summary");
  summary.innerHTML = `<strong id="map-total" data-value="${d.total}">${n(d.total)}</strong> unique infected hosts on ${h(d.day)}
    (${h(d.family || "all families")}) in <span id="map-countries" data-value="${d.countries.length}">${n(d.countries.length)}</span> countries,
    <span id="map-coloured" data-value="${d.coloured}">${n(d.coloured)}</span> coloured on the map` +
    (d.unknown ? `; ${n(d.unknown)} of unknown country` : "") + ".";
  summary.dataset.asof = d.as_of;
  summary.dataset.day = d.day;

  const cls = (c) => (c.class ? `${n(d.classes[c.class - 1].min)}–${n(d.classes[c.class - 1].max)}` : "not on the map");
  root.querySelector("#map-table").innerHTML = `<table id="map-countries-table"><caption>Unique infected hosts per country, ${h(d.day)}</caption>
    <thead><tr><th scope="col">Country</th><th scope="col" class="num">Hosts</th><th scope="col">Colour class</th><th scope="col"><span class="sr-only">Details</span></th></tr></thead><tbody>` +
    d.countries.map((c) => `<tr data-cc="${h(c.cc)}"><td>${h(c.name)} (${h(c.cc)})</td><td class="num">${n(c.hosts)}</td><td>${cls(c)}</td>
      <td><button type="button" class="secondary" data-cc="${h(c.cc)}">Networks<span class="sr-only"> of ${h(c.name)}</span></button></td></tr>`).join("") +
    "</tbody></table>";
  root.querySelector("#map-cities").innerHTML = tableHTML(`Unique infected hosts per city, ${d.day}`,
    [["City", "city"], ["Country", "cc"], ["Hosts", "hosts", true]], d.cities.slice(0, 50), "map-cities-table");
  root.dataset.mapDay = d.day;
  if (state.selected && !live) await selectCountry(state.selected);
}

async function selectCountry(cc) {
  const { root, session } = state;
  state.selected = cc;
  for (const p of root.querySelectorAll("path.country.selected")) p.classList.remove("selected");
  root.querySelector(`path.country[data-cc="${CSS.escape(cc)}"]`)?.classList.add("selected");
  const box = root.querySelector("#map-country");
  const d = await get(`countries/${encodeURIComponent(cc)}` + query({ day: state.day, family: state.family }));
  box.innerHTML = `<h2>${h(d.name)} (${h(d.cc)}): ${n(d.hosts)} hosts on ${h(d.day)}</h2>` +
    tableHTML(`Networks of ${d.name}`, [["Network", (r) => "AS" + r.asn], ["Name", "as_name"], ["Hosts", "hosts", true]], d.networks, "country-networks") +
    (session.sees_addresses ? `<p><button type="button" id="country-hosts">List the infected hosts</button></p><div id="country-hosts-list"></div>` : "");
  box.querySelector("#country-hosts")?.addEventListener("click", () =>
    hostsTable(box.querySelector("#country-hosts-list"), { country: cc, day: d.day, family: state.family }));
}
