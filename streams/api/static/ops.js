"use strict";
const COLORS = ["#2f6fdf", "#e0583a", "#2aa876", "#9b59b6", "#f0a30a", "#16a2b8", "#7f8c8d",
                "#c0392b", "#34495e", "#8e44ad"];
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const charts = {};
function chart(id, type, options) {
  charts[id] = new Chart(document.getElementById(id), {type, data: {labels: [], datasets: []},
    options: Object.assign({plugins: {legend: {display: type === "line"}}}, options || {})});
  return charts[id];
}
chart("c-throughput", "line", {plugins: {legend: {display: false}}});
chart("c-alerts", "line");
chart("c-segments", "bar");
chart("c-groups", "bar");
chart("c-auc", "line", {scales: {y: {suggestedMin: 0.5, suggestedMax: 1}}});
chart("c-dead", "bar", {indexAxis: "y", scales: {y: {ticks: {autoSkip: false}}}});
const fmt = (x, d) => x === null || x === undefined ? "–" : Number(x).toLocaleString("en-US",
  {maximumFractionDigits: d === undefined ? 0 : d});
// Scores keep their decimals (0.750, not 0.75), so a column of them lines up.
const fixed = (x, d) => x === null || x === undefined ? "–" : Number(x).toFixed(d);
const clock = t => new Date(t * 1000).toISOString().slice(11, 19);
// Every text goes in through textContent: nothing the server sends is ever parsed as HTML.
function cell(tag, text, cls) {
  const el = document.createElement(tag);
  el.textContent = text;
  if (cls) el.className = cls;
  return el;
}
function row(cells) {
  const tr = document.createElement("tr");
  tr.append(...cells);
  return tr;
}
function table(id, rows) {
  document.getElementById(id).replaceChildren(...rows.map(([k, v]) =>
    row([cell("td", k), cell("td", v, "n")])));
}
const GROUPS = {high_value_stable: "high value & stable", high_value_at_risk: "high value & at risk",
                low_value_stable: "low value & stable", low_value_at_risk: "low value & at risk",
                no_value: "no value"};
const GROUP_COLORS = ["#2aa876", "#e0583a", "#2f6fdf", "#f0a30a", "#7f8c8d"];
function clusters(c) {
  const note = document.getElementById("clusters-note");
  if (!c || c.version === null) {
    note.textContent = "(none published yet: the learner publishes them beside a churn version)";
    document.getElementById("t-clusters").replaceChildren();
    return;
  }
  note.textContent = `v${c.version}, learned on ${fmt(c.n_examples)} examples; feature units`;
  const features = c.centres.length ? Object.keys(c.centres[0]) : [];
  const head = row([cell("th", "cluster"), cell("th", "customers"),
    ...features.map(f => cell("th", f.replace(/_/g, " ")))]);
  const rows = c.centres.map((centre, k) => row([cell("td", String(k)),
    cell("td", fmt(c.customers[k]), "n"), ...features.map(f => cell("td", fmt(centre[f], 2), "n"))]));
  document.getElementById("t-clusters").replaceChildren(head, ...rows);
}
function set(c, labels, datasets) {
  c.data.labels = labels;
  c.data.datasets = datasets.map((d, i) => Object.assign({borderColor: COLORS[i % COLORS.length],
    backgroundColor: COLORS[i % COLORS.length], pointRadius: 0, borderWidth: 2}, d));
  c.update();
}
async function poll() {
  let data;
  try {
    data = await (await fetch("/api/ops", {cache: "no-store"})).json();
  } catch (e) {
    document.getElementById("updated").textContent = "no answer from /api/ops";
    return;
  }
  const t = data.throughput;
  set(charts["c-throughput"], t.map(p => clock(p[0])), [{label: "events/s", data: t.map(p => p[1]),
    fill: true, backgroundColor: "#2f6fdf33"}]);
  document.getElementById("throughput-note").textContent = data.pipeline ? "" :
    "served without a worker: pipeline series are shown by the worker's own page";
  const types = [...new Set(data.alert_rates.flatMap(p => Object.keys(p[1])))].sort();
  set(charts["c-alerts"], data.alert_rates.map(p => clock(p[0])),
      types.map(k => ({label: k, data: data.alert_rates.map(p => p[1][k] || 0)})));
  const alerts = data.totals.alerts || {};
  table("t-alerts", Object.keys(alerts).sort().map(k => [k, fmt(alerts[k])]));
  const segs = Object.entries(data.segments).sort((a, b) => b[1] - a[1]);
  set(charts["c-segments"], segs.map(s => s[0]), [{label: "customers", data: segs.map(s => s[1])}]);
  table("t-segments", segs.map(([k, v]) => [k, fmt(v)]));
  const groups = Object.entries(data.value_groups || {});
  const groupColors = groups.map((g, i) => GROUP_COLORS[i % GROUP_COLORS.length]);
  set(charts["c-groups"], groups.map(g => GROUPS[g[0]] || g[0]), [{label: "customers",
    data: groups.map(g => g[1]), backgroundColor: groupColors, borderColor: groupColors}]);
  table("t-groups", groups.map(([k, v]) => [GROUPS[k] || k, fmt(v)]));
  clusters(data.clusters);
  set(charts["c-auc"], data.auc.map(a => "v" + a.version), [
    {label: "cumulative", data: data.auc.map(a => a.auc), pointRadius: 3},
    {label: "sliding window", data: data.auc.map(a => a.window_auc), pointRadius: 3}]);
  table("t-auc", data.auc.slice(-4).map(a => ["v" + a.version, fixed(a.auc, 3)]));
  const dead = Object.entries(data.dead_letters).sort((a, b) => b[1] - a[1]);
  set(charts["c-dead"], dead.map(d => d[0]), [{label: "dead letters", data: dead.map(d => d[1]),
    backgroundColor: "#e0583a"}]);
  table("t-dead", dead.map(([k, v]) => [k, fmt(v)]));
  document.getElementById("applied").textContent = fmt(data.totals.applied);
  document.getElementById("rate").textContent = t.length ? fmt(t[t.length - 1][1], 1) : "–";
  document.getElementById("alerts").textContent = fmt(Object.values(alerts).reduce((a, b) => a + b, 0));
  document.getElementById("customers").textContent = fmt(segs.reduce((a, s) => a + s[1], 0));
  // The newest version whose AUC is known (one that saw a single class so far has none).
  const known = data.auc.filter(a => a.auc !== null && a.auc !== undefined);
  const last = known[known.length - 1];
  document.getElementById("auc").textContent = last ? fixed(last.auc, 3) : "–";
  document.getElementById("updated").textContent = "updated " + data.generated_at.slice(11, 19) + " UTC";
  document.body.dataset.loaded = "1";
}
poll();
setInterval(poll, 2000);
