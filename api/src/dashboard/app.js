// eventdesk dashboard: signs in, then polls the analytics API every 2 s. No dependencies.
"use strict";
(function () {
  const POLL_MS = 2000;
  const KEY = "eventdesk.token";
  const SVG = "http://www.w3.org/2000/svg";
  let timer = null;

  const $ = (id) => document.getElementById(id);
  const token = () => sessionStorage.getItem(KEY);

  function setStatus(text, error) {
    const s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!error);
  }

  function show(signedIn) {
    $("login-view").hidden = signedIn;
    $("dashboard-view").hidden = !signedIn;
    $("logout").hidden = !signedIn;
  }

  async function api(path) {
    const r = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
    if (r.status === 401) {
      signOut("session expired: sign in again");
      throw new Error("unauthorized");
    }
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function bars(table, rows, key) {
    table.replaceChildren();
    const max = Math.max(1, ...rows.map((r) => r.count));
    for (const r of rows) {
      const tr = el("tr", { class: "p-" + r[key] });
      tr.append(el("td", { class: "name" }, r[key].replace("_", " ")));
      const cell = el("td");
      const bar = el("div", { class: "bar" });
      bar.style.width = Math.round((100 * r.count) / max) + "%";
      cell.append(bar);
      tr.append(cell, el("td", { class: "num" }, r.count));
      table.append(tr);
    }
  }

  function renderSummary(s) {
    $("card-open").textContent = s.total_open;
    $("card-critical").textContent = s.critical_open;
    $("card-unassigned").textContent = s.unassigned;
    bars($("by-status"), s.by_status, "status");
    bars($("by-priority"), s.by_priority, "priority");
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function renderTrends(t) {
    const W = Math.max(400, Math.round($("trends").clientWidth || 1000)), H = 220, L = 34, B = 22, T = 8;
    const series = ["created", "resolved", "closed"];
    const colors = { created: "#2f6fed", resolved: "#12b76a", closed: "#98a2b3" };
    const pts = t.data;
    const top = Math.max(1, ...pts.flatMap((p) => series.map((k) => p[k])));
    // Four equal grid steps of a whole number.
    const step = Math.max(1, Math.ceil(top / 4));
    const max = step * 4;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "trends", id: "trends-svg" });
    const slot = (W - L) / Math.max(1, pts.length);
    const bw = Math.max(1, (slot * 0.8) / series.length);
    const y = (v) => H - B - ((H - B - T) * v) / max;
    for (let g = 0; g <= 4; g++) {
      const v = step * g;
      root.append(svg("line", { x1: L, x2: W, y1: y(v), y2: y(v), class: "axis" }));
      root.append(svg("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, v));
    }
    pts.forEach((p, i) => {
      series.forEach((k, j) => {
        const h = H - B - y(p[k]);
        const r = svg("rect", { x: L + i * slot + slot * 0.1 + j * bw, y: y(p[k]), width: bw, height: Math.max(0, h), fill: colors[k] });
        r.append(svg("title", {}, `${p.start.slice(0, 10)} ${k}: ${p[k]}`));
        root.append(r);
      });
      if (pts.length <= 16 || i % 2 === 0) {
        root.append(svg("text", { x: L + i * slot + slot / 2, y: H - 6, "text-anchor": "middle" }, p.start.slice(5, 10)));
      }
    });
    $("trends").replaceChildren(root);
  }

  function pct(v) {
    if (v === null || v === undefined) return el("span", { class: "empty" }, "n/a");
    return el("span", { class: v >= 95 ? "pct-ok" : "pct-bad" }, v.toFixed(1) + " %");
  }

  function renderSla(s) {
    const t = $("sla");
    t.replaceChildren();
    const row = (name, value) => {
      const tr = el("tr");
      const td = el("td", { class: "num" });
      td.append(value);
      tr.append(el("td", {}, name), td);
      t.append(tr);
    };
    row("Response compliance", pct(s.response.overall.compliance_percent));
    row("Resolution compliance", pct(s.resolution.overall.compliance_percent));
    row("Response met / breached", document.createTextNode(`${s.response.overall.met} / ${s.response.overall.breached}`));
    row("Resolution met / breached", document.createTextNode(`${s.resolution.overall.met} / ${s.resolution.overall.breached}`));
    $("card-at-risk").textContent = s.current.response.at_risk + s.current.resolution.at_risk;
    $("card-breached").textContent = s.current.response.breached + s.current.resolution.breached;
  }

  function renderAtRisk(page) {
    const t = $("at-risk");
    t.replaceChildren();
    if (!page.data.length) {
      const tr = el("tr");
      tr.append(el("td", { class: "empty" }, "No timer at risk"));
      t.append(tr);
      return;
    }
    for (const it of page.data) {
      const tr = el("tr", { class: "p-" + it.priority });
      tr.append(
        el("td", {}, it.incident_number),
        el("td", {}, it.title),
        el("td", {}, it.priority),
        el("td", {}, it.timer.metric),
        el("td", { class: "num" }, it.timer.percent + " %"),
      );
      t.append(tr);
    }
  }

  async function refresh() {
    const now = new Date();
    const from = new Date(now.getTime() - 13 * 86400000);
    from.setUTCHours(0, 0, 0, 0);
    const q = `from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(now.toISOString())}&bucket=day`;
    try {
      const [summary, trends, sla, atRisk] = await Promise.all([
        api("/api/v1/analytics/summary"),
        api("/api/v1/analytics/trends?" + q),
        api("/api/v1/analytics/sla"),
        api("/api/v1/sla/timers?state=at_risk&limit=10"),
      ]);
      renderSummary(summary);
      renderTrends(trends);
      renderSla(sla);
      renderAtRisk(atRisk);
      $("updated").textContent = now.toLocaleTimeString();
      setStatus("live", false);
      document.body.dataset.loaded = "true";
    } catch (e) {
      if (token()) setStatus(String(e.message || e), true);
    }
  }

  function start() {
    show(true);
    setStatus("loading…", false);
    refresh();
    if (timer) clearInterval(timer);
    timer = setInterval(refresh, POLL_MS);
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    if (timer) clearInterval(timer);
    timer = null;
    delete document.body.dataset.loaded;
    show(false);
    setStatus("signed out", false);
    $("login-error").textContent = message || "";
  }

  async function login(ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const r = await fetch("/api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: $("username").value, password: $("password").value }),
      });
      if (!r.ok) {
        $("login-error").textContent = r.status === 401 ? "Wrong username or password" : "Sign-in failed (HTTP " + r.status + ")";
        return;
      }
      const body = await r.json();
      sessionStorage.setItem(KEY, body.access_token);
      $("password").value = "";
      start();
    } catch (e) {
      $("login-error").textContent = "Sign-in failed: " + e;
    }
  }

  function useToken(ev) {
    ev.preventDefault();
    const t = $("token").value.trim();
    if (!t) return;
    sessionStorage.setItem(KEY, t);
    $("token").value = "";
    start();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("token-form").addEventListener("submit", useToken);
    $("logout").addEventListener("click", () => signOut(""));
    if (token()) start();
    else show(false);
  });
})();
