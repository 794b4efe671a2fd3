// Local Lattice dashboard: draws the snapshot the page came with (a gateway without keys sends one)
// or fetches it at once, then polls /dashboard/api/snapshot every 2 s and redraws in place.
// All data goes into the page through textContent and attributes; no HTML is ever parsed from data.
"use strict";
(function () {
  const KEY = "lattice.apiKey";
  const POLL_MS = 2000;
  const $ = (id) => document.getElementById(id);
  let timer = null;
  let paused = false;
  let lastSnapshot = null;
  let seen = new Set();
  let prefsDirty = false;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function replace(node, ...children) { node.replaceChildren(...children.filter((c) => c)); }

  function toast(message, bad) {
    const box = $("toast");
    box.textContent = message;
    box.className = bad ? "toast bad" : "toast";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, bad ? 8000 : 3000);
  }

  // --- API -------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || "HTTP " + status);
      this.status = status;
      this.code = err.code || null;
    }
  }

  async function api(method, path, body) {
    const headers = { "X-API-Key": sessionStorage.getItem(KEY) || "" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
    });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // --- formatting -------------------------------------------------------------------------------
  const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  function num(v) { return v === null || v === undefined ? "–" : nf.format(v); }
  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v >= 10000) return nf.format(v / 1000) + " s";
    if (v >= 100) return Math.round(v) + " ms";
    return (v >= 10 ? v.toFixed(1) : v.toFixed(2)) + " ms";
  }
  function clock(t) { return new Date(t * 1000).toLocaleTimeString(undefined, { hour12: false }); }
  function uptime(s) {
    if (s < 60) return Math.round(s) + "s";
    if (s < 3600) return Math.floor(s / 60) + "m";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }

  // --- charts -----------------------------------------------------------------------------------
  const CHARTS = [
    { id: "rate", title: "Requests", unit: "req/s · 30 s", average: true, lines: [["requests_per_s", "rate"]], fmt: (v) => v.toFixed(2) },
    { id: "latency", title: "Latency p95", unit: "ms", lines: [["latency_p50_ms", "p50"], ["latency_p95_ms", "p95"]], fmt: (v) => num(v) },
    { id: "ttft", title: "Time to first token", unit: "ms p50", lines: [["ttft_p50_ms", "p50"]], fmt: (v) => num(v) },
    { id: "queue", title: "Queue depth", unit: "waiting", lines: [["queue_depth", "depth"]], fmt: (v) => String(v) },
    { id: "tps", title: "Tokens out", unit: "tok/s · 30 s", average: true, lines: [["tokens_per_s", "tok/s"]], fmt: (v) => num(v) },
  ];

  function buildCharts() {
    const box = $("charts");
    for (const chart of CHARTS) {
      const legend = el("div", { class: "legend" });
      chart.lines.forEach(([, label], i) => legend.append(el("span", { class: i ? "second" : "", text: label })));
      chart.valueNode = el("span", { class: "value", text: "–" });
      chart.canvas = el("canvas", { role: "img", "aria-label": chart.title + " over the last minutes" });
      box.append(el("article", { class: "card chart", id: "chart-" + chart.id },
        el("header", {}, el("h2", { text: chart.title }), legend),
        el("div", {}, chart.valueNode, el("span", { class: "unit", text: chart.unit })),
        chart.canvas));
    }
  }

  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

  function drawChart(chart, points) {
    const canvas = chart.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    let max = 0;
    for (const [key] of chart.lines) for (const p of points) if (p[key] !== null && p[key] > max) max = p[key];
    max = niceMax(max);
    const top = 10, bottom = height - 14, left = 0, right = width - 2;
    ctx.font = "10px " + css("--sans");
    ctx.fillStyle = css("--muted");
    ctx.strokeStyle = css("--line");
    ctx.lineWidth = 1;
    for (const frac of [0, 0.5, 1]) {
      const y = Math.round(bottom - (bottom - top) * frac) + 0.5;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
      if (frac > 0) ctx.fillText(chart.fmt(max * frac), left + 2, y - 2);
    }
    ctx.fillText("−" + Math.round(points.length * lastStep() / 60) + " min", left + 2, height - 2);
    const nowLabel = "now";
    ctx.fillText(nowLabel, right - ctx.measureText(nowLabel).width, height - 2);
    const colors = [css("--accent"), css("--accent-2")];
    const step = points.length > 1 ? (right - left) / (points.length - 1) : 0;
    chart.lines.forEach(([key], i) => {
      ctx.strokeStyle = colors[i];
      ctx.lineWidth = 1.6;
      ctx.beginPath();
      let open = false, firstX = null, lastX = null;
      points.forEach((p, j) => {
        const v = p[key];
        const x = left + j * step;
        if (v === null || v === undefined) { open = false; return; }
        const y = bottom - (bottom - top) * (max ? v / max : 0);
        if (!open) { ctx.moveTo(x, y); open = true; if (firstX === null) firstX = x; } else ctx.lineTo(x, y);
        lastX = x;
      });
      ctx.stroke();
      if (i === 0 && firstX !== null && chart.lines.length === 1) {
        ctx.lineTo(lastX, bottom); ctx.lineTo(firstX, bottom); ctx.closePath();
        ctx.globalAlpha = 0.12; ctx.fillStyle = colors[0]; ctx.fill(); ctx.globalAlpha = 1;
      }
    });
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const exp = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
    return 10 * exp;
  }

  function lastStep() { return (lastSnapshot && lastSnapshot.series.step) || 5; }

  function renderCharts(series) {
    const points = series.points;
    for (const chart of CHARTS) {
      const key = chart.lines[chart.lines.length - 1][0];
      const recent = points.slice(-6).map((p) => p[key]).filter((v) => v !== null && v !== undefined);
      let shown = null;
      if (chart.average) shown = recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : null;
      else if (recent.length) shown = recent[recent.length - 1];
      chart.valueNode.textContent = shown === null ? "–" : chart.fmt(shown);
      drawChart(chart, points);
    }
  }

  // --- sections ---------------------------------------------------------------------------------
  function renderHeader(s) {
    $("version").textContent = "v" + s.version;
    const healthy = s.backends.filter((b) => b.ok).length;
    const dot = $("status").querySelector(".dot");
    dot.className = "dot " + (healthy === s.backends.length && healthy ? "ok" : healthy ? "warn" : "bad");
    $("status-text").textContent = s.backends.length
      ? healthy + "/" + s.backends.length + " backends healthy" : "no backends configured";
    const t = s.totals;
    const items = [["Requests", num(t.requests)], ["Errors", num(t.errors)], ["In flight", num(t.in_flight)],
      ["Queued", num(t.queue_depth)], ["Tokens in/out", num(t.input_tokens) + " / " + num(t.output_tokens)],
      ["Uptime", uptime(t.uptime_s)]];
    if (s.state) items.push(["Shared state", s.state.degraded ? "degraded: limits local"
      : "ok · " + num(s.state.replicas) + " replicas · " + num(s.state.leases) + " slots held"]);
    replace($("totals"), ...items.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
    $("foot").textContent = "Ledger: " + t.ledger + " · prompts " + (s.capture_prompts ? "captured (preview)" : "not kept")
      + " · updated " + clock(s.now);
  }

  function renderBackends(s) {
    $("backends-count").textContent = String(s.backends.length);
    replace($("backends"), ...s.backends.map((b) => el("li", {},
      el("span", { class: "dot " + (b.ok ? "ok" : "bad"), title: b.ok ? "healthy" : "unhealthy" }),
      el("span", { class: "name", text: b.name }),
      el("span", { class: "pill", text: b.models + " models" }),
      el("span", { class: "detail", text: [b.type, b.detail, b.error].filter(Boolean).join(" · ") }),
      ...(b.fleet ? [el("span", { class: "detail fleet", text: fleetText(b.fleet) })] : []))));
  }

  // A backend sharing a model id with others: its load, speed, sessions kept and hedges.
  function fleetText(f) {
    return ["fleet: " + num(f.outstanding) + " outstanding",
      f.latency_ms === null ? "not timed yet" : f.latency_ms + " ms to first byte",
      num(f.affinity_hits) + " affinity hits",
      "hedges " + num(f.hedges_won) + "/" + num(f.hedges_started) + " won"].join(" · ");
  }

  function renderModels(s) {
    const loaded = s.models.filter((m) => m.loaded).length;
    $("models-count").textContent = s.models.length + " available · " + loaded + " loaded";
    const loaders = new Set(s.backends.filter((b) => b.can_load).map((b) => b.name));
    const rows = s.models.map((m) => {
      const state = m.loaded === true ? el("span", { class: "pill ok", text: "loaded" })
        : m.loaded === false ? el("span", { class: "pill", text: "on disk" }) : el("span", { class: "muted", text: "available" });
      let action = null;
      if (loaders.has(m.backend)) {
        action = m.loaded
          ? el("button", { type: "button", class: "small danger", "data-model": m.id, "data-action": "unload", text: "Unload", onclick: onModelAction })
          : el("button", { type: "button", class: "small", "data-model": m.id, "data-action": "load", text: "Load", onclick: onModelAction });
      }
      return el("tr", { "data-model": m.id, "data-loaded": m.loaded ? "1" : "0" },
        el("td", { class: "model mono", text: m.id }), el("td", { text: m.backend }),
        el("td", { text: m.kind }), el("td", {}, state), el("td", { class: "num" }, action));
    });
    replace($("models").tBodies[0], ...rows);
    replace($("model-ids"), ...s.models.map((m) => el("option", { value: m.id })));
  }

  function renderRoles(s) {
    const entries = Object.entries(s.roles || {});
    if (!entries.length) { replace($("roles"), el("dd", { class: "muted", text: "No roles configured." })); return; }
    replace($("roles"), ...entries.flatMap(([role, specs]) => [
      el("dt", { class: "mono", text: "role:" + role }),
      el("dd", { text: specs.length ? specs.join(" → ") : "the first available model" })]));
  }

  function renderPreferences(s) {
    if (prefsDirty) return;
    const p = s.preferences;
    const input = $("pref-default");
    if (document.activeElement !== input) input.value = p.default_model || "";
    const select = $("pref-preset");
    const names = Object.keys(p.swarm_presets || {});
    replace(select, el("option", { value: "", text: "none" }),
      ...names.map((n) => el("option", { value: n, text: n, selected: n === p.active_swarm_preset })));
    const area = $("pref-presets");
    if (document.activeElement !== area) area.value = names.length ? JSON.stringify(p.swarm_presets, null, 2) : "";
  }

  function statusPill(r) {
    const cls = r.status >= 500 || r.status === 499 ? "bad" : r.status >= 400 ? "warn" : r.error_kind ? "warn" : "ok";
    return el("span", { class: "pill " + cls, text: String(r.status) });
  }

  function renderRecent(s) {
    $("recent-count").textContent = s.recent.length ? "last " + s.recent.length : "";
    $("recent-empty").hidden = s.recent.length > 0;
    const next = new Set();
    const rows = s.recent.map((r) => {
      next.add(r.request_id + r.time);
      let model = [r.model || "–"];
      if (!r.model) model = [el("span", { class: "muted", text: r.requested_model || "–" })];
      else if (r.requested_model && r.requested_model !== r.model) {
        model = [el("span", { class: "muted", text: r.requested_model }), el("span", { class: "arrow", text: "→" }), r.model];
      }
      return el("tr", { class: seen.size && !seen.has(r.request_id + r.time) ? "fresh" : null, "data-request-id": r.request_id },
        el("td", { class: "mono", text: clock(r.time) }),
        el("td", { class: "mono", text: r.request_id, title: r.preview ? "prompt: " + r.preview : "key " + r.key }),
        el("td", { class: "mono" }, r.route.replace("/v1/", ""), r.stream ? el("span", { class: "tag", text: "stream" }) : null),
        el("td", { class: "model" }, ...model),
        el("td", { text: r.backend || "–" }),
        el("td", { class: "num", text: (r.input_tokens ? num(r.input_tokens) : "–") + " / " + num(r.output_tokens) }),
        el("td", { class: "num latency", text: ms(r.latency_ms) }),
        el("td", { class: "num", text: ms(r.ttft_ms) }),
        el("td", { class: "num", text: num(r.tokens_per_s) }),
        el("td", {}, statusPill(r)),
        el("td", { class: "mono", text: r.error_kind || "" }));
    });
    seen = next;
    replace($("recent").tBodies[0], ...rows);
  }

  function renderSwarm(s) {
    const runs = s.swarm_runs || [];
    $("swarm-empty").hidden = runs.length > 0;
    $("swarm-count").textContent = runs.length ? String(runs.length) : "";
    replace($("swarm"), ...runs.map((run) => el("div", { class: "swarm-run" },
      el("div", { class: "head" },
        el("span", { class: "mono", text: clock(run.time) }),
        el("span", { class: "pill", text: run.strategy }),
        el("span", {}, "winner ", el("strong", { text: run.winner || "none" })),
        el("span", { class: "muted mono", text: run.request_id })),
      el("div", { class: "candidates" }, ...run.candidates.map((c) => el("span", {
        class: "pill " + (c.ok ? "" : "bad") + (c.model === run.winner ? " winner" : ""),
        text: c.model + " · " + ms(c.latency_ms) + (c.score !== null ? " · " + c.score : "") + (c.error_kind ? " · " + c.error_kind : ""),
      }))),
      run.rationale ? el("div", { class: "rationale", text: run.rationale }) : null)));
  }

  function render(s) {
    lastSnapshot = s;
    renderHeader(s);
    renderCharts(s.series);
    renderBackends(s);
    renderModels(s);
    renderRoles(s);
    renderPreferences(s);
    renderRecent(s);
    renderSwarm(s);
  }

  // --- actions ----------------------------------------------------------------------------------
  async function onModelAction(event) {
    const button = event.currentTarget;
    const model = button.getAttribute("data-model");
    const action = button.getAttribute("data-action");
    button.disabled = true;
    try {
      if (lastSnapshot && lastSnapshot.model_actions === "v1") {
        const path = "/v1/models/" + encodeURIComponent(model);
        await (action === "load" ? api("POST", path + "/load", {}) : api("DELETE", path));
      } else {
        await api("POST", "/dashboard/api/models/" + action, { model });
      }
      toast((action === "load" ? "Loaded " : "Unloaded ") + model);
      await refresh();
    } catch (err) {
      toast(action + " " + model + ": " + err.message, true);
      button.disabled = false;
    }
  }

  async function savePreferences(event) {
    event.preventDefault();
    const text = $("pref-presets").value.trim();
    let presets;
    try { presets = text ? JSON.parse(text) : {}; } catch (e) { toast("Swarm presets are not valid JSON: " + e.message, true); return; }
    const patch = {
      default_model: $("pref-default").value.trim() || null,
      swarm_presets: presets,
      active_swarm_preset: $("pref-preset").value || null,
    };
    try {
      await api("POST", "/dashboard/api/preferences", patch);
      prefsDirty = false;
      toast("Preferences saved");
      await refresh();
    } catch (err) { toast("Preferences: " + err.message, true); }
  }

  // --- loop -------------------------------------------------------------------------------------
  function show(s) {
    // Shown before drawing: a hidden canvas has no size to draw at.
    $("main").hidden = false;
    $("login").hidden = true;
    render(s);
  }

  async function refresh() {
    try {
      show(await api("GET", "/dashboard/api/snapshot"));
    } catch (err) {
      if (err.status === 401) { showLogin(sessionStorage.getItem(KEY) ? "That key was refused." : ""); return; }
      $("status-text").textContent = "gateway unreachable: " + err.message;
      $("status").querySelector(".dot").className = "dot bad";
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (paused || !$("login").hidden) return;
    timer = setTimeout(async () => { await refresh(); schedule(); }, POLL_MS);
  }

  function showLogin(message) {
    clearTimeout(timer);
    $("main").hidden = true;
    $("login").hidden = false;
    $("login-error").hidden = !message;
    $("login-error").textContent = message || "";
    $("key").focus();
  }

  async function start() {
    $("login").hidden = true;
    await refresh();
    schedule();
  }

  function pageSnapshot() {
    const raw = document.body.getAttribute("data-snapshot");
    document.body.removeAttribute("data-snapshot");
    if (!raw) return null;
    try { return JSON.parse(raw); } catch (e) { return null; }
  }

  function init() {
    buildCharts();
    const first = pageSnapshot();
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key").value);
      $("key").value = "";
      start();
    });
    $("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(""); });
    $("pause").addEventListener("click", () => {
      paused = !paused;
      $("pause").textContent = paused ? "Resume" : "Pause";
      if (!paused) start();
      else clearTimeout(timer);
    });
    $("rescan").addEventListener("click", async () => {
      try { const r = await api("POST", "/dashboard/api/admin/rescan"); toast("Rescanned: " + r.models + " models"); await refresh(); }
      catch (err) { toast("Rescan: " + err.message, true); }
    });
    $("prefs").addEventListener("submit", savePreferences);
    for (const id of ["pref-default", "pref-preset", "pref-presets"]) $(id).addEventListener("input", () => { prefsDirty = true; });
    window.addEventListener("resize", () => { if (lastSnapshot) renderCharts(lastSnapshot.series); });
    if (first) { show(first); schedule(); }  // a gateway without keys: its data came with the page
    else if (sessionStorage.getItem(KEY) !== null) start();
    else {
      // a gateway without keys needs no prompt; ask which it is rather than provoke a 401
      fetch("/dashboard/auth", { cache: "no-store" }).then((r) => r.json())
        .then((info) => (info.key_required ? showLogin("") : start()), () => showLogin(""));
    }
  }

  document.addEventListener("DOMContentLoaded", init);
})();
