/* "Dashboard unreachable, reconnecting…": a fixed banner while the dashboard's server does not answer.

   Wraps window.fetch and watches Dash's own requests (/_dash-update-component, -layout, -dependencies) and
   the Training page's live poll (/_deepscope/live, assets/training_live.js). A
   network error (the server is stopped or restarting) or a gateway error (502-504 from a proxy whose
   dashboard worker is gone) shows the banner; the first of those requests that gets an answer again hides
   it. A plain 500 is not "unreachable" (the server answered) and shows nothing. While the banner shows,
   /_deepscope/health (dashboard/health.py, no store access) is asked every 2 s, so a page without a live
   timer notices the server's return too. Nothing else is sent: the live curves catch up by themselves,
   because each poll asks for the rows after the cursor the page holds (dashboard/views/training/live_route.py). */
(function () {
  "use strict";
  if (window.__deepscopeReconnect || typeof window.fetch !== "function") { return; }
  window.__deepscopeReconnect = true;

  const WATCHED = /\/(_dash-(update-component|layout|dependencies)|_deepscope\/live)\b/;
  const HEALTH = "/_deepscope/health";
  const PROBE_MS = 2000;
  const realFetch = window.fetch.bind(window);
  let downSince = null;
  let probe = null;
  let banner = null;

  function urlOf(input) {
    return typeof input === "string" ? input : (input && input.url) || String(input || "");
  }

  function show() {
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "deepscope-reconnect";
      banner.className = "reconnect-banner";
      banner.setAttribute("role", "status");
      banner.setAttribute("aria-live", "polite");
      document.body.appendChild(banner);
    }
    const secs = Math.round((Date.now() - downSince) / 1000);
    banner.textContent = "Dashboard unreachable, reconnecting… " + (secs >= 2 ? "(" + secs + " s) " : "")
      + "Runs keep training; the page catches up when the server answers.";
    banner.hidden = false;
  }

  function wentDown() {
    if (downSince === null) {
      downSince = Date.now();
      probe = setInterval(function () {
        realFetch(HEALTH, {cache: "no-store", credentials: "same-origin"})
          .then(function (r) { if (r.ok) { cameBack(); } else { show(); } })
          .catch(show);
      }, PROBE_MS);
    }
    show();
  }

  function cameBack() {
    if (downSince === null) { return; }
    downSince = null;
    clearInterval(probe);
    probe = null;
    if (banner) { banner.hidden = true; }
  }

  window.fetch = function (input, init) {
    const result = realFetch(input, init);
    if (!WATCHED.test(urlOf(input))) { return result; }
    return result.then(function (response) {
      if (response.status >= 502 && response.status <= 504) { wentDown(); } else { cameBack(); }
      return response;
    }, function (err) {
      if (!err || err.name !== "AbortError") { wentDown(); }
      throw err;
    });
  };
})();
