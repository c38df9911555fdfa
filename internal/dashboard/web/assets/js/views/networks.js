// Networks: each network with its hosts, today's, its 14-day trend and its
// subscribers; one network's 30-day remediation trend.
import { get, query, n, h } from "../api.js";
import { bars, figure, tableHTML, spark, trendText } from "../charts.js";
import { hostsTable } from "./hosts.js";

let state = null;

export async function render(root, { session, params, navigate }) {
  state = { root, session, navigate, span: params.get("span") || "7", family: params.get("family") || "" };
  const asn = params.get("asn");
  if (asn) return detail(root, asn);
  root.innerHTML = `
    <h1>Networks</h1>
    <div class="controls">
      <label>Hosts over <select id="net-span"><option value="1">today</option><option value="7">7 days</option><option value="30">30 days</option></select></label>
      <label>Family <input id="net-family" placeholder="all" size="12"></label>
    </div>
    <div id="net-list"></div>`;
  root.querySelector("#net-span").value = state.span;
  root.querySelector("#net-family").value = state.family;
  root.querySelector("#net-span").addEventListener("change", (e) => { state.span = e.target.value; list(); });
  root.querySelector("#net-family").addEventListener("change", (e) => { state.family = e.target.value.trim(); list(); });
  await list();
}

async function list() {
  const { root } = state;
  const d = await get("networks" + query({ span: state.span, family: state.family }));
  const box = root.querySelector("#net-list");
  box.innerHTML = `<table id="networks-table"><caption>The ${n(d.networks.length)} networks with the most unique infected hosts</caption>
    <thead><tr><th scope="col">Network</th><th scope="col">Name</th><th scope="col" class="num">Hosts</th><th scope="col" class="num">Today</th>
    <th scope="col">Trend, 14 days</th><th scope="col">Subscribers</th></tr></thead><tbody></tbody></table>`;
  const tbody = box.querySelector("tbody");
  for (const r of d.networks) {
    const tr = document.createElement("tr");
    const values = r.trend.map((x) => x.hosts);
    tr.innerHTML = `<td><a href="#/networks?asn=${r.asn}">AS${r.asn}</a></td><td>${h(r.as_name)}</td><td class="num">${n(r.hosts)}</td>
      <td class="num">${n(r.today)}</td><td class="trend"></td>
      <td>${r.subscribers.length ? r.subscribers.map((s) => h(s.org || s.name)).join(", ") : '<span class="muted">none</span>'}</td>`;
    const cell = tr.querySelector(".trend");
    cell.append(spark(values));
    const txt = document.createElement("span");
    txt.className = "sr-only";
    txt.textContent = trendText(values);
    cell.append(" ", txt);
    tbody.append(tr);
  }
}

async function detail(root, asn) {
  const d = await get("networks/" + encodeURIComponent(asn));
  const { session } = state;
  root.innerHTML = `<p><a href="#/networks">← All networks</a></p>
    <h1>AS${d.asn} ${h(d.as_name)}</h1>
    <p>${n(d.hosts)} unique infected hosts over the last ${d.trend.length} days (a host counted once per country).</p>
    <section class="card"><h2>Remediation trend</h2><div id="net-trend"></div></section>
    <div class="grid2 side">
      <section class="card"><h2>Subscribers</h2><div id="net-subs"></div></section>
      <section class="card"><h2>Countries</h2><div id="net-ccs"></div></section>
    </div>
    ${session.sees_addresses ? `<section class="card side"><h2>Infected hosts</h2>
      <label>Over <select id="net-hosts-span"><option value="1">today</option><option value="7">7 days</option><option value="30">30 days</option></select></label>
      <button type="button" id="net-hosts">List them</button><div id="net-hosts-list"></div></section>` : ""}`;
  const labels = d.trend.map((x) => x.day);
  figure(root.querySelector("#net-trend"), "Unique infected hosts per UTC day: remediation works when it goes down.",
    bars(d.trend.map((x) => x.hosts), labels, { label: `Unique infected hosts per day in AS${d.asn}` }),
    tableHTML(`Unique infected hosts per day, AS${d.asn}`, [["Day", "day"], ["Hosts", "hosts", true]], d.trend, "net-trend-table"));
  const subs = root.querySelector("#net-subs");
  if (!d.subscribers.length) subs.innerHTML = `<p class="muted">No subscriber has this network in its scope.</p>`;
  else subs.innerHTML = d.subscribers.map((s) => `<div><strong>${h(s.org)}</strong> (${h(s.name)})` +
    (s.contacts ? `<br>Contacts: ${s.contacts.map(h).join(", ")}<br>Formats: ${(s.formats || []).join(", ")} at ${h(s.send_at)} UTC, TLP:${h(s.tlp)}` +
      (s.cidrs ? `<br>CIDRs: ${s.cidrs.map(h).join(", ")}` : "") : "") + "</div>").join("");
  root.querySelector("#net-ccs").innerHTML = tableHTML("Hosts per country", [["Country", (r) => `${r.name} (${r.cc || "–"})`], ["Hosts", "hosts", true]], d.countries);
  root.querySelector("#net-hosts")?.addEventListener("click", () =>
    hostsTable(root.querySelector("#net-hosts-list"), { asn: d.asn, span: root.querySelector("#net-hosts-span").value }));
}
