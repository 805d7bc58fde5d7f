/* Live updates for pages whose work runs in a worker (training run, eval run, dataset export and build, CSV import,
   drawing render).

   The page marks one element with data-live-url (a small JSON endpoint), data-live-status (the status
   the page was rendered with) and data-live-interval (seconds). While the work is under way this script
   asks the endpoint, writes each answered field into the elements marked data-live-field="name" (text
   only, never markup), sets the width of data-live-bar="name" bars and hands `charts` ({figure id: spec})
   to static/gestima/charts.js. When the status changes, or the
   work ends, it reloads the page once, so buttons, tables and charts always come from the template.
   A finished page carries no data-live-url, so it never polls. */
(function () {
  "use strict";

  const root = document.querySelector("[data-live-url]");
  if (!root) return;

  const url = root.dataset.liveUrl;
  const renderedStatus = root.dataset.liveStatus;
  const base = Math.max(0.2, parseFloat(root.dataset.liveInterval || "5")) * 1000;
  const MAX_DELAY = 60000, MAX_FAILURES = 8;
  const note = root.querySelector("[data-live-note]");
  const LEAVING_GRACE = 10000;
  let failures = 0;
  let leavingSince = 0;

  // A click on a button or link starts a navigation: a poll answering meanwhile must not reload the old
  // page over it (the person's POST would be swallowed). Polls pause; if the page is still here after
  // the grace time (a download, a cancelled navigation), they go on.
  window.addEventListener("submit", () => { leavingSince = Date.now(); }, true);
  window.addEventListener("beforeunload", () => { leavingSince = Date.now(); });
  window.addEventListener("pageshow", (event) => { if (event.persisted) leavingSince = 0; });

  function leaving() {
    return Date.now() - leavingSince < LEAVING_GRACE;
  }

  function say(text) {
    if (note) note.textContent = text;
  }

  function apply(state) {
    Object.entries(state.fields || {}).forEach(([name, value]) => {
      document.querySelectorAll(`[data-live-field="${name}"]`).forEach((element) => {
        element.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
      });
    });
    // Charts of the page (static/gestima/charts.js) get their new figures: chart and table follow.
    if (window.GestimaCharts) {
      Object.entries(state.charts || {}).forEach(([id, spec]) => window.GestimaCharts.update(id, spec));
    }
    Object.entries(state.bars || {}).forEach(([name, percent]) => {
      document.querySelectorAll(`[data-live-bar="${name}"]`).forEach((element) => {
        element.style.width = `${Math.max(0, Math.min(100, Number(percent) || 0))}%`;
      });
    });
  }

  function stop(text) {
    root.dataset.liveState = "stopped";
    say(text);
  }

  async function poll() {
    if (leaving() || document.hidden) {  // a tab in the background asks nothing; it catches up when shown
      window.setTimeout(poll, base);
      return;
    }
    let state;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store",
                                          headers: { Accept: "application/json" } });
      if (response.status === 403 || response.status === 404) {
        stop(`Live updates stopped (HTTP ${response.status}): reload the page.`);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);  // a 5xx, a proxy's 502: try again later
      const type = response.headers.get("Content-Type") || "";
      if (!type.includes("application/json")) {  // e.g. the login page after the session expired
        stop("Live updates stopped (signed out?): reload the page.");
        return;
      }
      state = await response.json();
    } catch (error) {
      failures += 1;
      if (failures >= MAX_FAILURES) {
        stop(`Live updates stopped (${error.message}): reload the page.`);
        return;
      }
      const delay = Math.min(base * 2 ** failures, MAX_DELAY);
      say(`Live updates paused (${error.message}); next try in ${Math.round(delay / 1000)} s.`);
      window.setTimeout(poll, delay);
      return;
    }
    if (leaving()) {
      window.setTimeout(poll, base);
      return;
    }
    failures = 0;
    apply(state);
    if (state.status !== renderedStatus || !state.active) {
      root.dataset.liveState = "reloading";
      say("Status changed: reloading…");
      window.location.reload();
      return;
    }
    root.dataset.liveState = "polling";
    say(`Updated ${new Date().toLocaleTimeString()}.`);
    window.setTimeout(poll, base);
  }

  root.dataset.liveState = "polling";
  window.setTimeout(poll, base);
})();
