// Overview: unique infected hosts today, in 7 and 30 days, per family;
// events per hour; the top 20 networks and countries.
import { get, query, n, h } from "../api.js";
import { bars, figure, tableHTML, barCell, sizeBars } from "../charts.js";

let state = null; // { root, family, span }

export async function render(root, { params }) {
  state = { root, family: params.get("family") || "", span: params.get("span") || "7" };
  root.innerHTML = `
    <h1>Overview</h1>
    <div class="controls">
      <label>Family <select id="ov-family"><option value="">All families</option></select></label>
      <label>Top lists over <select id="ov-span">
        <option value="1">today</option><option value="7">7 days</option><option value="30">30 days</option></select></label>
    </div>
    <section aria-labelledby="ov-hosts-h">
      <h2 id="ov-hosts-h">Unique infected hosts</h2>
      <div class="cards">
        <div class="card stat"><div class="value" id="total-today" data-value="">–</div><div class="label">today (UTC)</div></div>
        <div class="card stat"><div class="value" id="total-7d" data-value="">–</div><div class="label">last 7 days</div></div>
        <div class="card stat"><div class="value" id="total-30d" data-value="">–</div><div class="label">last 30 days</div></div>
      </div>
      <div id="ov-families" class="side"></div>
    </section>
    <section aria-labelledby="ov-hours-h" class="card side">
      <h2 id="ov-hours-h">Events per hour, last 48 hours</h2>
      <div id="ov-hours"></div>
    </section>
    <div class="grid2 side">
      <section class="card" aria-labelledby="ov-nets-h"><h2 id="ov-nets-h">Top 20 networks</h2><div id="ov-nets"></div></section>
      <section class="card" aria-labelledby="ov-ccs-h"><h2 id="ov-ccs-h">Top 20 countries</h2><div id="ov-ccs"></div></section>
    </div>
    <p class="muted" id="ov-asof"></p>`;
  root.querySelector("#ov-span").value = state.span;
  root.querySelector("#ov-family").addEventListener("change", (e) => { state.family = e.target.value; load(); });
  root.querySelector("#ov-span").addEventListener("change", (e) => { state.span = e.target.value; load(); });
  await load();
}

export async function update() {
  if (state && document.body.contains(state.root.querySelector("#total-today"))) await load();
}

async function load() {
  const { root } = state;
  const d = await get("overview" + query({ family: state.family, span: state.span }));
  const sel = root.querySelector("#ov-family");
  if (sel.options.length !== d.families.length + 1) {
    sel.innerHTML = `<option value="">All families</option>` + d.families.map((f) => `<option>${h(f)}</option>`).join("");
    sel.value = state.family;
  }
  const ids = ["total-today", "total-7d", "total-30d"];
  ids.forEach((id, i) => {
    const e = root.querySelector("#" + id);
    const v = (d.totals || [])[i] ?? 0;
    e.textContent = n(v);
    e.dataset.value = v;
  });
  root.querySelector("#ov-families").innerHTML = tableHTML("Unique infected hosts per family",
    [["Family", "family"], ["Today", (r) => r.hosts[0], true], ["7 days", (r) => r.hosts[1], true], ["30 days", (r) => r.hosts[2], true]],
    d.per_family, "ov-family-table");

  // Events per hour: every hour of the 48, none left out.
  const byHour = new Map(d.hours.map((x) => [new Date(x.hour).getTime(), x.events]));
  const end = Math.floor(Date.now() / 3600000) * 3600000;
  const hours = [];
  for (let t = end - 47 * 3600000; t <= end; t += 3600000) hours.push({ t, v: byHour.get(t) || 0 });
  const labels = hours.map((x) => new Date(x.t).toISOString().slice(0, 13).replace("T", " ") + ":00");
  const chart = bars(hours.map((x) => x.v), labels, { label: "Events per hour, last 48 hours (UTC)" });
  figure(root.querySelector("#ov-hours"), "Hours in UTC; an event is one DNS query, HTTP request or SMTP session of a bot at the sinkhole (a Waledac callback is two).", chart,
    tableHTML("Events per hour (UTC)", [["Hour", "hour"], ["Events", "v", true]], hours.map((x, i) => ({ hour: labels[i], v: x.v }))));

  const span = { 1: "today", 7: "7 days", 30: "30 days" }[d.top_span];
  const maxN = Math.max(0, ...d.top_networks.map((x) => x.hosts));
  const nets = root.querySelector("#ov-nets");
  nets.innerHTML = `<table id="ov-nets-table"><caption>Networks with the most unique hosts, ${h(span)}</caption>
    <thead><tr><th scope="col">Network</th><th scope="col">Name</th><th scope="col" class="num">Hosts</th><th aria-hidden="true"></th></tr></thead><tbody>` +
    d.top_networks.map((r) => `<tr><td><a href="#/networks?asn=${r.asn}">AS${r.asn}</a></td><td>${h(r.as_name)}</td>${barCell(r.hosts, maxN)}</tr>`).join("") +
    "</tbody></table>";
  const maxC = Math.max(0, ...d.top_countries.map((x) => x.hosts));
  const ccs = root.querySelector("#ov-ccs");
  ccs.innerHTML = `<table id="ov-ccs-table"><caption>Countries with the most unique hosts, ${h(span)}</caption>
    <thead><tr><th scope="col">Country</th><th scope="col" class="num">Hosts</th><th aria-hidden="true"></th></tr></thead><tbody>` +
    d.top_countries.map((r) => `<tr><td>${h(r.name)} (${h(r.cc || "–")})</td>${barCell(r.hosts, maxC)}</tr>`).join("") +
    "</tbody></table>";
  sizeBars(root);
  const asof = root.querySelector("#ov-asof");
  asof.textContent = `Counts of distinct infected source addresses, up to ${new Date(d.as_of).toISOString().slice(0, 19).replace("T", " ")} UTC.`;
  asof.dataset.asof = d.as_of;
}
