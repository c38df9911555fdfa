// Charts as SVG, each with a table that says the same for screen readers
// (and for anyone who asks for it).
import { n, h } from "./api.js";

const SVGNS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// tableHTML returns a table of rows; cols are [title, key, numeric].
export function tableHTML(caption, cols, rows, id = "") {
  const head = cols.map(([t, , num]) => `<th scope="col"${num ? ' class="num"' : ""}>${h(t)}</th>`).join("");
  const body = rows.map((r) => "<tr>" + cols.map(([, k, num]) => {
    const v = typeof k === "function" ? k(r) : r[k];
    return num ? `<td class="num">${n(v)}</td>` : `<td>${h(v)}</td>`;
  }).join("") + "</tr>").join("");
  return `<table${id ? ` id="${h(id)}"` : ""}><caption>${h(caption)}</caption><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

// figure puts a chart and its table together: the table is hidden but
// for screen readers until "Show as table" is pressed.
export function figure(container, title, chartNode, tableHtml) {
  container.innerHTML = "";
  const fig = document.createElement("figure");
  fig.className = "chart";
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.append(cap, chartNode);
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "secondary showtable";
  btn.textContent = "Show as table";
  btn.setAttribute("aria-hidden", "true"); // screen readers have the table already
  const wrap = document.createElement("div");
  wrap.className = "sr-only";
  wrap.innerHTML = tableHtml;
  btn.addEventListener("click", () => {
    const hidden = wrap.classList.toggle("sr-only");
    btn.textContent = hidden ? "Show as table" : "Hide table";
  });
  fig.append(btn, wrap);
  container.append(fig);
}

// axisCharWidth is the widest character of an axis label (12px digits and
// separators of the common sans-serif faces), in the chart's units.
const axisCharWidth = 7.5;

// bars draws a column chart of values with labels under some of them. The
// left margin fits the widest y-axis label, so that a count of any size
// (Conficker's millions) shows all its digits.
export function bars(values, labels, { width = 960, height = 200, label = "" } = {}) {
  const max = Math.max(1, ...values);
  const ticks = [0, 0.5, 1].map((frac) => [frac, n(Math.round(max * frac))]);
  const widest = Math.max(...ticks.map(([, t]) => t.length));
  const pad = { l: Math.max(44, Math.ceil(widest * axisCharWidth) + 10), r: 6, t: 8, b: 22 };
  const s = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  const w = (width - pad.l - pad.r) / Math.max(1, values.length);
  const ih = height - pad.t - pad.b;
  for (const [frac, text] of ticks) {
    const y = pad.t + ih * (1 - frac);
    s.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: y, y2: y, stroke: "#ddd" }));
    const t = svg("text", { x: pad.l - 4, y: y + 4, "text-anchor": "end", class: "axis" });
    t.textContent = text;
    s.append(t);
  }
  values.forEach((v, i) => {
    const bh = ih * v / max;
    const r = svg("rect", { class: "b", x: pad.l + i * w + 1, y: pad.t + ih - bh, width: Math.max(1, w - 2), height: bh });
    const tt = svg("title");
    tt.textContent = `${labels[i]}: ${n(v)}`;
    r.append(tt);
    s.append(r);
    const every = Math.ceil(values.length / 8);
    if (i % every === 0) {
      const t = svg("text", { x: pad.l + i * w + w / 2, y: height - 6, "text-anchor": "middle", class: "axis" });
      t.textContent = labels[i].slice(-5);
      s.append(t);
    }
  });
  return s;
}

// spark draws a small line of values (a trend), hidden from screen
// readers: the text next to it says the same.
export function spark(values, width = 110, height = 24) {
  const s = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, "aria-hidden": "true" });
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${(i * (width - 2)) / Math.max(1, values.length - 1) + 1},${height - 2 - (v / max) * (height - 4)}`);
  s.append(svg("polyline", { points: pts.join(" ") }));
  return s;
}

// trendText says a trend in words: "12 → 8 (−33 %)".
export function trendText(values) {
  if (!values.length) return "no data";
  const a = values.find((v) => v > 0) ?? 0, b = values[values.length - 1];
  if (!a) return `${n(b)}`;
  const pct = Math.round(((b - a) / a) * 100);
  return `${n(a)} → ${n(b)} (${pct > 0 ? "+" : pct < 0 ? "−" : "±"}${Math.abs(pct)} %)`;
}

// barCell is a number with a bar of its share of max, for tables.
export function barCell(v, max) {
  const pct = max > 0 ? Math.max(1, Math.round((v / max) * 100)) : 0;
  return `<td class="num">${n(v)}</td><td class="barcol" aria-hidden="true"><span class="bar" data-pct="${pct}"></span></td>`;
}

// sizeBars sets the widths of the bars of barCell (CSP: no inline style).
export function sizeBars(root) {
  for (const b of root.querySelectorAll(".bar[data-pct]")) b.style.width = b.dataset.pct * 1.2 + "px";
}
