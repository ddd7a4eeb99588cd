// ScriptMesh dashboard: progressive enhancement only; every page works without it.
// Live job output comes from the event stream (GET /ui/jobs/<id>/logs), falling back to
// polling the job's JSON every second when the stream is unavailable.
"use strict";

(function () {
  const POLL_JOB_MS = 1000;
  const POLL_FANOUT_MS = 2000;
  const POLL_AGENTS_MS = 5000;
  const BADGES = {
    online: "ok", success: "ok", passed: "ok", active: "ok", ok: "ok", succeeded: "ok",
    running: "run", pending: "wait", waiting: "wait", draining: "warn",
    failed: "bad", timeout: "bad", expired: "bad", error: "bad",
  };
  const TERMINAL = new Set(["success", "failed", "timeout", "cancelled", "expired"]);

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function badge(status) {
    return el("span", {class: "badge badge-" + (BADGES[status] || "off"), "data-status": status || ""},
              status || "—");
  }

  function setBadge(container, status) {
    if (!container) return;
    container.replaceChildren(badge(status));
  }

  function getJSON(url) {
    return fetch(url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))));
  }

  function ms(value) { return value === null || value === undefined ? "—" : value + " ms"; }

  // -- every page ---------------------------------------------------------------------
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (event) => {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function autoSubmit() {
    document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
      form.querySelectorAll("select").forEach((select) => {
        select.addEventListener("change", () => form.requestSubmit());
      });
    });
  }

  function copyButtons() {
    document.querySelectorAll("button[data-copy]").forEach((button) => {
      button.addEventListener("click", () => {
        const input = document.getElementById(button.dataset.copy);
        input.select();
        const done = () => { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, () => {});
        } else {
          done();
        }
      });
    });
  }

  // -- agents: live status of the visible page -------------------------------------------
  function agentsPage() {
    const rows = Array.from(document.querySelectorAll("tr[data-agent]"));
    if (!rows.length) return;
    const names = rows.map((row) => row.dataset.agent);
    const url = "status.json?names=" + encodeURIComponent(names.join(","));
    setInterval(() => {
      getJSON(url).then((found) => {
        rows.forEach((row) => {
          const info = found[row.dataset.agent];
          if (!info) return;
          setBadge(row.querySelector("td.status"), info.status);
          const time = row.querySelector("td.heartbeat time");
          if (time && info.last_heartbeat) {
            time.setAttribute("datetime", info.last_heartbeat);
            time.textContent = "just now";
          }
        });
      }).catch(() => {});
    }, POLL_AGENTS_MS);
  }

  // -- one job: live output, steps and status ------------------------------------------
  function jobPage() {
    const root = document.getElementById("job");
    if (!root) return;
    const out = {stdout: document.getElementById("stdout"), stderr: document.getElementById("stderr")};
    const state = document.getElementById("live-state");
    let lengths = {stdout: 0, stderr: 0};
    let finished = TERMINAL.has(root.dataset.status);

    function showStatus(status) {
      setBadge(document.getElementById("job-status"), status);
      root.dataset.status = status;
      const cancel = document.getElementById("cancel-box");
      if (cancel) cancel.hidden = TERMINAL.has(status);
    }

    function showEnd(end) {
      finished = true;
      showStatus(end.status);
      document.getElementById("job-exit").textContent =
        end.exit_code === null || end.exit_code === undefined ? "—" : end.exit_code;
      document.getElementById("job-duration").textContent = ms(end.duration_ms);
      document.getElementById("job-error").textContent = end.error || "—";
      state.textContent = "finished";
    }

    function append(chunk) {
      const pre = out[chunk.stream];
      const data = Array.from(chunk.data);  // offsets count characters (code points)
      const skip = Math.max(0, lengths[chunk.stream] - chunk.offset);
      if (skip >= data.length) return;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(data.slice(skip).join(""));
      lengths[chunk.stream] = chunk.offset + data.length;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }

    function showStep(step) {
      const table = document.getElementById("steps");
      if (!table) return;
      const body = table.tBodies[0];
      let row = body.querySelector('tr[data-step="' + CSS.escape(step.id) + '"]');
      if (!row) {
        row = el("tr", {"data-step": step.id});
        body.append(row);
      }
      const details = el("td", {class: "small"}, step.error || "");
      Object.entries(step.outputs || {}).forEach(([k, v]) => {
        details.append(" ", el("code", {}, k + "=" + JSON.stringify(v)));
      });
      row.replaceChildren(el("th", {scope: "row"}, step.id), el("td", {}, step.action),
                          el("td", {}), el("td", {}, ms(step.duration_ms)), details);
      row.children[2].append(badge(step.status));
    }

    function poll() {
      state.textContent = "live (polling)";
      const tick = () => {
        getJSON(root.dataset.jsonUrl).then((job) => {
          out.stdout.textContent = job.stdout || "";
          out.stderr.textContent = job.stderr || "";
          (job.steps || []).forEach(showStep);
          if (TERMINAL.has(job.status)) {
            showEnd(job);
          } else {
            showStatus(job.status);
            setTimeout(tick, POLL_JOB_MS);
          }
        }).catch(() => setTimeout(tick, POLL_JOB_MS * 3));
      };
      tick();
    }

    if (finished) return;
    if (!window.EventSource) { poll(); return; }
    let opened = false;
    const source = new EventSource(root.dataset.streamUrl);
    source.addEventListener("open", () => {
      if (!opened) {
        opened = true;
        out.stdout.textContent = "";
        out.stderr.textContent = "";
        lengths = {stdout: 0, stderr: 0};
      }
      state.textContent = "live";
    });
    source.addEventListener("output", (e) => append(JSON.parse(e.data)));
    source.addEventListener("step", (e) => showStep(JSON.parse(e.data)));
    source.addEventListener("status", (e) => showStatus(JSON.parse(e.data).status));
    source.addEventListener("end", (e) => { source.close(); showEnd(JSON.parse(e.data)); });
    source.addEventListener("error", () => {
      if (finished) return;
      // Reconnecting on its own (with Last-Event-ID) unless the stream is gone for good.
      if (source.readyState === EventSource.CLOSED || !opened) {
        source.close();
        poll();
      } else {
        state.textContent = "reconnecting…";
      }
    });
  }

  // -- one fan-out: counts, progress and grouped results ---------------------------------
  function fanoutPage() {
    const root = document.getElementById("fanout");
    if (!root || root.dataset.done === "true") return;
    const state = document.getElementById("live-state");
    state.textContent = "live";
    const tick = () => {
      getJSON(root.dataset.jsonUrl).then((report) => {
        const finished = report.total - report.counts.pending - report.counts.running;
        setBadge(document.getElementById("fanout-status"), report.status);
        document.getElementById("fanout-progress").value = finished;
        document.getElementById("fanout-finished").textContent = finished;
        document.getElementById("fanout-errors").textContent = report.errors;
        document.getElementById("fanout-held").textContent = report.held;
        document.getElementById("fanout-stop").textContent = report.stop_reason || "—";
        const counts = document.getElementById("fanout-counts");
        counts.replaceChildren();
        Object.entries(report.counts).filter(([, n]) => n).forEach(([s, n]) => {
          counts.append(badge(s), " " + n + " ");
        });
        renderGroups(report.groups);
        document.querySelectorAll("tr[data-job]").forEach((row) => {
          const found = report.rows[row.dataset.job];
          if (!found) return;
          setBadge(row.querySelector("td.status"), found[0]);
          row.querySelector("td.exit").textContent = found[1] === null ? "—" : found[1];
          row.querySelector("td.duration").textContent = ms(found[2]);
        });
        if (report.done) {
          state.textContent = "finished";
        } else {
          setTimeout(tick, POLL_FANOUT_MS);
        }
      }).catch(() => setTimeout(tick, POLL_FANOUT_MS * 3));
    };
    setTimeout(tick, POLL_FANOUT_MS / 2);
  }

  function renderGroups(groups) {
    const box = document.getElementById("groups");
    box.replaceChildren();
    if (!groups.length) { box.append(el("p", {class: "muted"}, "No results yet.")); return; }
    groups.forEach((grp) => {
      const article = el("article", {class: "group group-" + (BADGES[grp.status] || "off")});
      const header = el("header");
      header.append(badge(grp.status), " exit " + (grp.exit_code === null ? "—" : grp.exit_code) + " · ",
                    el("strong", {}, grp.count), grp.count === 1 ? " agent" : " agents");
      const names = el("p", {class: "agents-list"});
      grp.agents_shown.forEach((a) => names.append(el("code", {}, a), " "));
      if (grp.more) names.append(el("span", {class: "muted"}, "and " + grp.more + " more"));
      article.append(header, names);
      if (grp.stdout) article.append(el("pre", {class: "output"}, grp.stdout));
      box.append(article);
    });
  }

  // -- schedules: the cron expression in words and its next fire times -------------------
  function cronPreview() {
    const form = document.getElementById("schedule-form");
    const cron = document.getElementById("cron");
    if (!form || !cron) return;
    const tz = document.getElementById("tz");
    const box = document.getElementById("cron-preview");
    let timer = null;
    const update = () => {
      if (!cron.value.trim()) { box.replaceChildren(); return; }
      const url = form.dataset.previewUrl + "?cron=" + encodeURIComponent(cron.value) +
                  "&tz=" + encodeURIComponent(tz.value || "UTC");
      getJSON(url).then((p) => {
        if (!p.ok) { box.replaceChildren(el("p", {class: "flash flash-error"}, p.error)); return; }
        const list = el("ol", {id: "preview-fires"});
        p.local.forEach((t) => list.append(el("li", {}, t)));
        box.replaceChildren(el("p", {}, ""), el("p", {class: "muted small"}, "Next 5 fire times:"), list);
        box.firstChild.append(el("strong", {id: "cron-words"}, p.description));
      }).catch(() => {});
    };
    const later = () => { clearTimeout(timer); timer = setTimeout(update, 250); };
    cron.addEventListener("input", later);
    tz.addEventListener("input", later);
    if (cron.value.trim()) update();
  }

  document.addEventListener("DOMContentLoaded", () => {
    confirmForms();
    autoSubmit();
    copyButtons();
    const page = document.body.dataset.page;
    if (page === "agents") agentsPage();
    if (page === "job") jobPage();
    if (page === "fanout") fanoutPage();
    if (page === "schedules" || page === "schedule") cronPreview();
  });
})();
