/* Stageflow analytics page: draws /api/v1/analytics/{funnel,time-in-stage,money} with the visitor's token.
 *
 * The token comes from the form or from the URL fragment (#token=…&type=…&pipeline=…&from=…&to=…), which browsers
 * never send to the server; it is then dropped from the address bar and kept only in this tab's sessionStorage.
 * Every number drawn is also written into a table (and data-* attributes) so it can be read without the canvas;
 * the charts are Chart.getChart(canvas), and window.stageflowAnalytics holds the last reports and charts.
 * No innerHTML anywhere: server text only ever goes through textContent.
 */
(function () {
  "use strict";

  const API = new URL("../api/v1/", window.location.href);
  const TOKEN_KEY = "stageflow.analytics.token";
  const COLORS = {
    process: ["#3461d1", "#4f7ae0", "#6b92ea", "#88a9f1", "#a5bff6", "#c0d3fa"],
    success: "#2e9d62",
    failure: "#d2504c",
    p50: "#3461d1",
    p90: "#f29b38",
    money: ["#2e9d62", "#8aa3d9", "#3461d1", "#6fc3a0", "#22429a"],
  };
  const state = { seq: 0, reports: {}, charts: {} };
  window.stageflowAnalytics = state;

  const $ = (id) => document.getElementById(id);
  const form = $("controls");
  const fields = { token: $("token"), type: $("type"), pipeline: $("pipeline"), from: $("from"), to: $("to") };

  // --- formatting -------------------------------------------------------------------------------------------------

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const percent = new Intl.NumberFormat("en-US", { style: "percent", maximumFractionDigits: 1 });
  const fmtInt = (n) => (n === null || n === undefined ? "–" : integer.format(n));
  const fmtMoney = (n) => (n === null || n === undefined ? "–" : money.format(n));
  const fmtShare = (n) => (n === null || n === undefined ? "–" : percent.format(n));

  function durationUnit(maxSeconds) {
    if (maxSeconds < 2 * 3600) return { name: "minutes", short: "min", seconds: 60 };
    if (maxSeconds < 3 * 86400) return { name: "hours", short: "h", seconds: 3600 };
    return { name: "days", short: "d", seconds: 86400 };
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  // --- the token and the query, from the fragment and the form --------------------------------------------------

  function readFragment() {
    const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const token = params.get("token");
    if (token) {
      fields.token.value = token;
      params.delete("token");
      // Out of the address bar (and so of the history, bookmarks and screenshots) as soon as it is read.
      const rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
    } else if (!fields.token.value) {
      fields.token.value = window.sessionStorage.getItem(TOKEN_KEY) || "";
    }
    for (const name of ["type", "from", "to"]) {
      if (params.has(name)) fields[name].value = params.get(name);
    }
    if (params.has("pipeline")) setPipelineChoice(params.get("pipeline"));
  }

  function setPipelineChoice(id) {
    if (!id) {
      fields.pipeline.value = "";
      return;
    }
    if (![...fields.pipeline.options].some((o) => o.value === id)) {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = id;
      fields.pipeline.append(option);
    }
    fields.pipeline.value = id;
  }

  function writeFragment() {
    const params = new URLSearchParams();
    for (const name of ["type", "pipeline", "from", "to"]) {
      if (fields[name].value) params.set(name, fields[name].value);
    }
    window.history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${params}`);
  }

  function query() {
    const params = new URLSearchParams({ entity_type: fields.type.value.trim() });
    if (fields.pipeline.value) params.set("pipeline_id", fields.pipeline.value);
    if (fields.from.value) params.set("from", fields.from.value);
    if (fields.to.value) params.set("to", fields.to.value);
    return params;
  }

  // --- calling the API --------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem, what) {
      super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
      this.what = what;
    }
  }

  async function get(path, params, what) {
    const url = new URL(path, API);
    if (params) url.search = params.toString();
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${fields.token.value.trim()}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new ApiError(0, { title: "The API could not be reached", detail: String(err) }, what);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body, what);
    return body;
  }

  function explain(error) {
    const p = error.problem || {};
    const detail = p.detail || p.title || "";
    const fieldErrors = Array.isArray(p.errors)
      ? p.errors.map((e) => [e.field, e.message].filter(Boolean).join(": ")).join("; ")
      : "";
    switch (error.status) {
      case 0:
        return ["The API could not be reached.", detail];
      case 401:
        return [
          "The token was not accepted (401).",
          "Use an API key (sf_…) or a person's access token from POST /api/v1/auth/login (access tokens expire " +
            `after some minutes).${detail ? ` The server said: ${detail}` : ""}`,
        ];
      case 403:
        return [
          `This token's role may not read the ${error.what} (403).`,
          `${detail}${fieldErrors ? ` (${fieldErrors})` : ""}`,
        ];
      case 404:
        return [
          "Not found (404).",
          `${detail ? `${detail}. ` : ""}The type or pipeline does not exist in this token's workspace, or its role ` +
            "cannot read it.",
        ];
      case 422:
        return ["The request was refused (422).", fieldErrors || detail];
      case 429:
        return ["Too many requests (429).", "Wait a moment and press Show again."];
      default:
        return [`The server answered ${error.status}${p.title ? `: ${p.title}` : ""}.`, detail];
    }
  }

  // --- rendering ----------------------------------------------------------------------------------------------------

  function setState(name, message) {
    document.body.dataset.state = name;
    if (message !== undefined) $("status").textContent = message;
  }

  function showError(error) {
    const [headline, detail] = explain(error);
    const box = $("error");
    box.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = headline;
    box.append(strong);
    if (detail) box.append(document.createTextNode(detail));
    box.dataset.status = String(error.status);
    box.hidden = false;
    $("cards").hidden = true;
    $("kpis").hidden = true;
    for (const chart of Object.values(state.charts)) chart.destroy();
    state.charts = {};
    state.reports = {};
    $("subtitle").textContent = "Funnel, time in stage and forecast of one type";
    setState("error", "");
  }

  function cell(tag, text, attrs) {
    const node = document.createElement(tag);
    node.textContent = text;
    if (tag === "th") node.scope = "row";
    for (const [k, v] of Object.entries(attrs || {})) node.dataset[k] = v === null || v === undefined ? "" : String(v);
    return node;
  }

  function swatchCell(text, color) {
    const th = cell("th", "");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color;
    th.append(swatch, document.createTextNode(text));
    return th;
  }

  function stageColors(stages) {
    let n = 0;
    return stages.map((s) => {
      if (s.semantic === "success") return COLORS.success;
      if (s.semantic === "failure") return COLORS.failure;
      return COLORS.process[n++ % COLORS.process.length];
    });
  }

  function baseOptions(extra) {
    return Object.assign(
      {
        responsive: true,
        maintainAspectRatio: false,
        animation: { duration: 250 },
        plugins: { legend: { display: false } },
      },
      extra
    );
  }

  function draw(name, canvasId, config) {
    if (state.charts[name]) state.charts[name].destroy();
    state.charts[name] = new window.Chart($(canvasId), config);
  }

  function renderFunnel(report) {
    const group = report.groups[0];
    const info = Object.fromEntries(report.stages.map((s) => [s.id, s]));
    const rows = group.stages.map((s) => Object.assign({ title: (info[s.stage_id] || {}).title || s.code }, s));
    const colors = stageColors(rows.map((r) => info[r.stage_id] || { semantic: "process" }));
    draw("funnel", "funnel-chart", {
      type: "bar",
      data: {
        labels: rows.map((r) => r.title),
        datasets: [{ label: "Entered", data: rows.map((r) => r.entered), backgroundColor: colors, borderRadius: 4 }],
      },
      options: baseOptions({
        indexAxis: "y",
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 }, title: { display: true, text: "elements entered" } },
          y: { ticks: { font: { size: 13 } } },
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              afterLabel: (item) => `to next: ${fmtShare(rows[item.dataIndex].conversion_to_next)}`,
            },
          },
        },
      }),
    });
    $("funnel-rows").replaceChildren(
      ...rows.map((r, i) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "funnel-row";
        Object.assign(tr.dataset, { stage: r.code, entered: r.entered, lost: r.lost });
        tr.dataset.conversionToNext = r.conversion_to_next ?? "";
        tr.dataset.conversionToSuccess = r.conversion_to_success ?? "";
        tr.append(
          swatchCell(r.title, colors[i]),
          cell("td", fmtInt(r.entered), { testid: "entered" }),
          cell("td", fmtShare(r.conversion_to_next)),
          cell("td", fmtShare(r.conversion_to_success)),
          cell("td", fmtInt(r.lost))
        );
        return tr;
      })
    );
    $("kpi-created").textContent = fmtInt(group.created);
    $("kpi-won").textContent = fmtInt(group.won);
    $("kpi-win-rate").textContent = fmtShare(group.win_rate);
  }

  function renderTime(report) {
    const group = report.groups[0];
    const info = Object.fromEntries(report.stages.map((s) => [s.id, s]));
    const rows = group.stages.map((s) => Object.assign({ title: (info[s.stage_id] || {}).title || s.code }, s));
    const max = Math.max(0, ...rows.map((r) => r.p90_seconds || 0));
    const unit = durationUnit(max);
    const scaled = (v) => (v === null || v === undefined ? null : v / unit.seconds);
    $("time-chart").dataset.unitSeconds = String(unit.seconds);
    draw("time", "time-chart", {
      type: "bar",
      data: {
        labels: rows.map((r) => r.title),
        datasets: [
          { label: "p50", data: rows.map((r) => scaled(r.p50_seconds)), backgroundColor: COLORS.p50, borderRadius: 4 },
          { label: "p90", data: rows.map((r) => scaled(r.p90_seconds)), backgroundColor: COLORS.p90, borderRadius: 4 },
        ],
      },
      options: baseOptions({
        scales: {
          y: { beginAtZero: true, title: { display: true, text: unit.name } },
          x: { ticks: { font: { size: 13 } } },
        },
        plugins: {
          legend: { display: true, position: "top", align: "end" },
          tooltip: {
            callbacks: {
              label: (item) => `${item.dataset.label}: ${fmtDuration(item.raw === null ? null : item.raw * unit.seconds)}`,
            },
          },
        },
      }),
    });
    $("time-rows").replaceChildren(
      ...rows.map((r) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "time-row";
        tr.dataset.stage = r.code;
        tr.dataset.count = r.count;
        tr.dataset.p50Seconds = r.p50_seconds ?? "";
        tr.dataset.p90Seconds = r.p90_seconds ?? "";
        tr.append(cell("th", r.title), cell("td", fmtInt(r.count)), cell("td", fmtDuration(r.p50_seconds)),
          cell("td", fmtDuration(r.p90_seconds)));
        return tr;
      })
    );
  }

  function renderMoney(report) {
    const f = report.forecast;
    const bars = [
      ["won", "Won", report.won_amount],
      ["open", "Open pipeline", report.open_amount],
      ["weighted", "Weighted pipeline", report.weighted_pipeline],
      ["expected", "Expected from open", f.expected_from_open],
      ["forecast", "Forecast", f.forecast],
    ];
    draw("money", "money-chart", {
      type: "bar",
      data: {
        labels: bars.map((b) => b[1]),
        datasets: [{ label: "Amount", data: bars.map((b) => b[2]), backgroundColor: COLORS.money, borderRadius: 4 }],
      },
      options: baseOptions({
        indexAxis: "y",
        scales: {
          x: { beginAtZero: true, title: { display: true, text: "amount" } },
          y: { ticks: { font: { size: 13 } } },
        },
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => fmtMoney(item.raw) } },
        },
      }),
    });
    const lines = [
      ["won-count", "Won (count)", fmtInt(report.won_count), report.won_count],
      ...bars.map((b, i) => [b[0], b[1], fmtMoney(b[2]), b[2], COLORS.money[i]]),
      ["average-won", "Average won", fmtMoney(report.average_won), report.average_won],
      ["close-within", "Past wins closing in the days left", fmtShare(f.close_within_share), f.close_within_share],
    ];
    $("money-rows").replaceChildren(
      ...lines.map(([key, label, text, value, color]) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "money-row";
        tr.dataset.key = key;
        tr.dataset.value = value ?? "";
        tr.append(color ? swatchCell(label, color) : cell("th", label), cell("td", text));
        return tr;
      })
    );
    const info = Object.fromEntries(report.stages.map((s) => [s.id, s]));
    $("open-rows").replaceChildren(
      ...report.open.map((s) => {
        const tr = document.createElement("tr");
        tr.dataset.testid = "open-row";
        Object.assign(tr.dataset, { stage: s.code, count: s.count, amount: s.amount, weighted: s.weighted });
        tr.append(cell("th", (info[s.stage_id] || {}).title || s.code), cell("td", fmtInt(s.count)),
          cell("td", fmtMoney(s.amount)), cell("td", fmtShare(s.probability)), cell("td", fmtMoney(s.weighted)));
        return tr;
      })
    );
    const chance = report.probability === "model" ? "the scoring model's" : "each stage's recent conversion";
    $("money-hint").textContent =
      `Won in the period, the open pipeline weighted by its chance to win (${chance}), and the forecast for ` +
      `${f.period_end}` +
      (f.remaining_days > 0
        ? `, ${f.remaining_days.toFixed(1)} days away.`
        : ": the period ends today or has ended, so the forecast is what was won (pick a later To to look ahead).");
    $("kpi-won-amount").textContent = fmtMoney(report.won_amount);
    $("kpi-weighted").textContent = fmtMoney(report.weighted_pipeline);
    $("kpi-forecast").textContent = fmtMoney(f.forecast);
    $("kpi-forecast-label").textContent = `Forecast to ${f.period_end}`;
  }

  // --- the flow -----------------------------------------------------------------------------------------------------

  async function loadPipelines() {
    const type = fields.type.value.trim();
    if (!type || !fields.token.value.trim()) return;
    try {
      const body = await get(`entity-types/${encodeURIComponent(type)}/pipelines`, null, "pipelines");
      const items = Array.isArray(body) ? body : body.items || [];
      const chosen = fields.pipeline.value;
      const options = [new Option("default", "")];
      for (const p of items) options.push(new Option(p.is_default ? `${p.title} (default)` : p.title, p.id));
      fields.pipeline.replaceChildren(...options);
      setPipelineChoice(chosen);
    } catch (err) {
      // The analytics calls below say what is wrong; the list of pipelines is only a convenience.
    }
  }

  async function loadTypes() {
    try {
      const body = await get("entity-types", null, "types");
      const items = Array.isArray(body) ? body : body.items || [];
      $("types").replaceChildren(...items.map((t) => new Option(t.title || t.code, t.code)));
    } catch (err) {
      // As above: a convenience.
    }
  }

  async function load() {
    const seq = ++state.seq;
    $("error").hidden = true;
    setState("loading", "Loading…");
    if (fields.token.value.trim()) window.sessionStorage.setItem(TOKEN_KEY, fields.token.value.trim());
    writeFragment();
    const params = query();
    let reports;
    try {
      reports = await Promise.all([
        get("analytics/funnel", params, "funnel"),
        get("analytics/time-in-stage", params, "time in stage"),
        get("analytics/money", params, "money and forecast"),
      ]);
    } catch (err) {
      if (seq === state.seq) showError(err);
      return;
    }
    if (seq !== state.seq) return;
    const [funnel, time, moneyReport] = reports;
    state.reports = { funnel, time, money: moneyReport };
    $("cards").hidden = false;
    $("kpis").hidden = false;
    renderFunnel(funnel);
    renderTime(time);
    renderMoney(moneyReport);
    const p = funnel.period;
    const pipelineOption = [...fields.pipeline.options].find((o) => o.value === funnel.pipeline_id);
    const pipelineName = pipelineOption ? pipelineOption.textContent.replace(" (default)", "") : "default pipeline";
    $("subtitle").textContent = `${funnel.entity_type} · ${pipelineName} · ${p.start} – ${p.end} (${p.days} days)`;
    setState("ready", "");
    loadTypes();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  fields.type.addEventListener("change", loadPipelines);
  fields.token.addEventListener("change", () => {
    loadTypes();
    loadPipelines();
  });
  window.addEventListener("hashchange", () => {
    readFragment();
    if (fields.token.value && fields.type.value) loadPipelines().then(load);
  });

  readFragment();
  if (fields.token.value && fields.type.value) {
    loadPipelines().then(load);
  } else if (fields.token.value) {
    loadTypes();
  }
})();
