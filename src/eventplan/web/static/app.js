// eventplan UI: every number comes from the JSON API; this file only draws it.
"use strict";

const INVALID_COLOR = "#9ca3af";
const LEGEND_MAX_HEIGHT = 64;
const COLORS = ["#4f46e5", "#0891b2", "#16a34a", "#ea580c", "#db2777", "#7c3aed", "#ca8a04", "#64748b"];

function rangeParams(form) {
  const data = new FormData(form);
  const params = new URLSearchParams();
  let from = data.get("date_from");
  if (from === "custom") {
    from = data.get("custom_from") || "-30d";
    if (data.get("custom_to")) params.set("date_to", data.get("custom_to"));
  }
  params.set("date_from", from);
  if (data.get("interval")) params.set("interval", data.get("interval"));
  if (data.get("top")) params.set("top", data.get("top"));
  if (data.get("bots")) params.set("bots", "1");
  return params;
}

function fmt(value) {
  if (value === null || value === undefined) return "";
  return Number.isInteger(value) ? value.toLocaleString() : Number(value).toLocaleString(undefined, { maximumFractionDigits: 2 });
}

function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}

function drawTrends(panel, data) {
  const result = data.result;
  const canvas = panel.querySelector("canvas");
  const table = panel.querySelector("table.numbers");
  table.replaceChildren();
  let config;
  if (data.display === "histogram") {
    // Buckets from the query engine: every event with a number, by power of two.
    const labels = data.histogram.map((b) => `≥ ${fmt(b.low)}`);
    const counts = data.histogram.map((b) => b.count);
    config = { type: "bar", data: { labels, datasets: [{ label: "events", data: counts, backgroundColor: COLORS[0] }] } };
    const head = table.insertRow();
    head.append(cell("th", "bucket"), cell("th", "events", "num"));
    labels.forEach((label, i) => {
      const row = table.insertRow();
      row.dataset.series = label;
      row.dataset.total = counts[i];
      row.append(cell("td", label), cell("td", fmt(counts[i]), "num"));
    });
  } else {
    const stacked = data.display === "stacked_bars";
    config = {
      type: stacked ? "bar" : "line",
      data: {
        labels: result.results.length ? result.results[0].labels : [],
        datasets: result.results.map((r, i) => {
          // A value the plan forbids is drawn apart: grey and dashed, named as invalid.
          const invalid = r.breakdown_kind === "invalid";
          const color = invalid ? INVALID_COLOR : COLORS[i % COLORS.length];
          return {
            label: r.display_label || r.label, data: r.data, borderColor: color,
            backgroundColor: color, borderDash: invalid ? [4, 4] : [], tension: 0.2, pointRadius: 0,
          };
        }),
      },
      options: { scales: { x: { stacked }, y: { stacked, beginAtZero: true } } },
    };
    const head = table.insertRow();
    const summary = result.results.length && result.results[0].data.length ? "average" : "";
    head.append(cell("th", "series"), cell("th", "total", "num"), cell("th", summary, "num"));
    for (const r of result.results) {
      const row = table.insertRow();
      row.dataset.series = r.display_label || r.label;
      row.dataset.total = r.count;
      row.classList.toggle("flagged", Boolean(r.flagged));
      row.classList.toggle("invalid", r.breakdown_kind === "invalid");
      row.append(cell("td", row.dataset.series), cell("td", fmt(r.count), "num"), cell("td", fmt(r.average), "num"));
    }
  }
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
    // The legend keeps to a few lines (the chart is never smaller than it); a click on
    // an entry hides or shows its series.
    plugins: { legend: { display: true, position: "bottom", maxHeight: LEGEND_MAX_HEIGHT, labels: { boxWidth: 10, font: { size: 11 } } } } }, config.options || {});
  if (panel.chart) panel.chart.destroy();
  panel.chart = new Chart(canvas, config);
  describe(panel);
}

// What was drawn, for whoever checks the page (the browser tests): the datasets, the
// legend's entries and height, and the plotting area's height.
function describe(panel) {
  const chart = panel.chart;
  panel.dataset.datasets = chart.data.datasets.length;
  panel.dataset.legendItems = chart.legend ? chart.legend.legendItems.length : 0;
  panel.dataset.legendHeight = chart.legend ? Math.round(chart.legend.height) : 0;
  panel.dataset.plotHeight = Math.round(chart.chartArea.bottom - chart.chartArea.top);
}

function pct(share) {
  return (share * 100).toFixed(1) + "%";
}

function drawFunnel(panel, data) {
  const broken = Array.isArray(data.result.results[0]);
  const groups = broken ? data.result.results : [data.result.results];
  const table = panel.querySelector("table.numbers");
  table.replaceChildren();
  const head = table.insertRow();
  ["step", "breakdown", "people", "from first", "from previous", "drop-off", "median time"]
    .forEach((h, i) => head.append(cell("th", h, i > 1 ? "num" : "")));
  for (const steps of groups) {
    for (const s of steps) {
      const row = table.insertRow();
      const value = s.breakdown_label || s.breakdown_value || "";
      row.dataset.series = `${s.name}${value ? " - " + value : ""}`;
      row.dataset.total = s.count;
      row.classList.toggle("invalid", s.breakdown_kind === "invalid");
      row.append(cell("td", s.name), cell("td", value), cell("td", fmt(s.count), "num"),
        cell("td", pct(s.conversion_from_first), "num"), cell("td", pct(s.conversion_from_previous), "num"),
        cell("td", pct(s.drop_off_from_previous), "num"),
        cell("td", s.median_conversion_time === null ? "" : fmt(s.median_conversion_time) + " s", "num"));
    }
  }
  // Steps named with their filters and the conversion of every breakdown value
  // together (from the engine); one bar per step for each breakdown value.
  const totals = data.result.totals || groups[0];
  const labels = totals.map((s) => `${s.name}${s.step_filter ? ` [${s.step_filter}]` : ""} (${pct(s.conversion_from_first)})`);
  const datasets = broken
    ? groups.map((steps, i) => {
        const invalid = steps[0].breakdown_kind === "invalid";
        return { label: steps[0].breakdown_label, data: steps.map((s) => s.count),
          backgroundColor: invalid ? INVALID_COLOR : COLORS[i % COLORS.length] };
      })
    : [{ label: "people", data: totals.map((s) => s.count), backgroundColor: COLORS[0] }];
  drawTimeToConvert(panel, data.result.time_to_convert);
  if (panel.chart) panel.chart.destroy();
  panel.chart = new Chart(panel.querySelector("canvas"), {
    type: "bar", data: { labels, datasets },
    options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: broken, position: "bottom", maxHeight: LEGEND_MAX_HEIGHT } } },
  });
  describe(panel);
}

function duration(seconds) {
  if (seconds < 60) return `${fmt(seconds)} s`;
  if (seconds < 3600) return `${fmt(seconds / 60)} min`;
  if (seconds < 86400) return `${fmt(seconds / 3600)} h`;
  return `${fmt(seconds / 86400)} d`;
}

// Time to convert, first step to last, in the engine's doubling bins: one bar each.
function drawTimeToConvert(panel, ttc) {
  const box = panel.querySelector(".ttc");
  box.replaceChildren();
  if (!ttc || !ttc.bins.length) return;
  const most = Math.max(...ttc.bins.map((b) => b.count));
  box.append(cell("div", `Time to convert (${fmt(ttc.converted)} people, median ${duration(ttc.median_seconds)})`, "ttc-title"));
  for (const b of ttc.bins) {
    const row = cell("div", "", "ttc-bin");
    row.dataset.count = b.count;
    const bar = cell("span", "", "ttc-bar");
    bar.style.width = `${Math.max(2, (b.count / most) * 100)}%`;
    row.append(cell("span", b.from_seconds ? `${duration(b.from_seconds)}–${duration(b.to_seconds)}` : "under 1 s", "ttc-label"),
      bar, cell("span", fmt(b.count), "num"));
    box.append(row);
  }
}

// A warning says why a number may mislead, and links to the live feed of the events
// behind it (the engine gives the link).
function warning(w) {
  const line = cell("div", "⚠ " + w.message + " ", "warning " + w.code);
  const link = cell("a", "see the events", "live-link");
  link.href = w.live;
  line.append(link);
  return line;
}

async function loadPanel(panel, form) {
  const state = panel.querySelector(".state");
  state.className = "state loading";
  state.textContent = "Loading…";
  panel.dataset.loaded = "";
  const params = rangeParams(form);
  const breakdown = panel.querySelector("select.breakdown");
  if (breakdown) params.set("breakdown", breakdown.value);
  const url = `/api/dashboards/${panel.dataset.dashboard}/insights/${panel.dataset.insight}?${params}`;
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || response.statusText);
    panel.data = data;
    (data.kind === "funnel" ? drawFunnel : drawTrends)(panel, data);
    const warnings = panel.querySelector(".warnings");
    warnings.replaceChildren(...data.result.warnings.map(warning));
    state.textContent = "";
    state.className = "state";
    panel.dataset.loaded = params.toString();
  } catch (error) {
    state.className = "state error";
    state.textContent = "Could not load this insight: " + error.message;
  }
}

// Breakdown values come from whoever sends events: a cell a spreadsheet would run as a
// formula (=, +, -, @, tab, return first) is kept as text by a leading quote; numbers stay.
function csvCell(text) {
  const formula = /^[=+\-@\t\r]/.test(text) && !/^[+-]?\d[\d,.]*%?$/.test(text);
  return `"${(formula ? "'" + text : text).replaceAll('"', '""')}"`;
}

function csv(panel) {
  const rows = [...panel.querySelectorAll("table.numbers tr")].map((tr) =>
    [...tr.children].map((c) => csvCell(c.textContent)).join(","));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([rows.join("\n")], { type: "text/csv" }));
  link.download = `${panel.dataset.insight}.csv`;
  link.click();
}

function initDashboard() {
  const form = document.getElementById("controls");
  if (!form) return;
  const panels = [...document.querySelectorAll(".panel")];
  const reload = () => panels.forEach((p) => loadPanel(p, form));
  form.addEventListener("change", () => {
    form.classList.toggle("custom-range", form.date_from.value === "custom");
    reload();
  });
  for (const panel of panels) {
    const breakdown = panel.querySelector("select.breakdown");
    if (breakdown) breakdown.addEventListener("change", () => loadPanel(panel, form));
    panel.querySelector("button.csv").addEventListener("click", () => csv(panel));
    panel.querySelector("button.copy").addEventListener("click", () =>
      navigator.clipboard && navigator.clipboard.writeText(JSON.stringify(panel.data.query, null, 2)));
  }
  reload();
}

function liveRow(e) {
  const row = document.createElement("tr");
  row.className = e.verdict;
  row.dataset.uuid = e.uuid;
  const violations = document.createElement("td");
  for (const v of e.violations) violations.append(cell("div", v.message, "violation captured " + v.severity));
  const event = cell("td", e.event, "captured");
  if (e.bot) event.append(" ", cell("span", "bot: " + e.bot, "bot"));
  row.append(cell("td", e.timestamp), event, cell("td", e.distinct_id, "captured"), cell("td", e.verdict, "verdict"),
    cell("td", e.plan_version, "plan-version"), violations);
  return row;
}

function initLive() {
  const form = document.getElementById("live-filters");
  if (!form) return;
  const body = document.querySelector("#live tbody");
  const status = document.getElementById("live-status");
  let source;
  const connect = () => {
    if (source) source.close();
    const data = new FormData(form);
    const params = new URLSearchParams();
    for (const key of ["event", "distinct_id", "verdict"]) if (data.get(key)) params.set(key, data.get(key));
    const project = new URLSearchParams(location.search).get("project");
    if (project) params.set("project", project);  // the page's project, as a warning's link names it
    source = new EventSource(`/live/stream?${params}`);
    source.onopen = () => { status.textContent = "live"; };
    source.onerror = () => { status.textContent = "reconnecting…"; };
    source.onmessage = (message) => {
      body.prepend(liveRow(JSON.parse(message.data)));
      while (body.rows.length > 500) body.deleteRow(-1);
    };
  };
  form.addEventListener("change", connect);
  form.addEventListener("submit", (event) => { event.preventDefault(); connect(); });
  connect();
}

function initPlanSearch() {
  const search = document.getElementById("plan-search");
  if (!search) return;
  search.addEventListener("input", () => {
    const needle = search.value.toLowerCase();
    for (const row of document.querySelectorAll("#plan-events tbody tr")) {
      row.hidden = needle && !row.textContent.toLowerCase().includes(needle);
    }
  });
}

document.addEventListener("DOMContentLoaded", () => { initDashboard(); initLive(); initPlanSearch(); });

// Text that came from outside is cut to a line; a click shows (or cuts) the whole of it.
document.addEventListener("click", (event) => {
  const captured = event.target instanceof Element && event.target.closest(".captured");
  if (captured) captured.classList.toggle("whole");
});
