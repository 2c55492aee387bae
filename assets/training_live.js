/* The Training page's live curves, extended in the browser (dashboard/views/training/page.py registers
   dash_clientside.deepscope_training.poll on the page's one timer and on train-push).

   The rows after the cursors the live state (train-state) holds come pushed by the live stream
   (/_deepscope/stream, dashboard/views/training/live_stream.py: server-sent events, one open request per page
   instead of one per tick); each update sets train-push, which runs this callback at once. While no stream
   can be had (the server's streams are all taken, or no EventSource), each tick asks the live route
   instead (/_deepscope/live, dashboard/views/training/live_route.py: plain JSON, one answer per cursor shared
   by every viewer). Either way the answer is the same: this returns Patches that extend the traces the state
   maps each (run, metric) to, the smoothed ones carried on exactly as dashboard/views/training/live.py would,
   and the state's new cursors. The Python callback (dashboard/views/training/tick.py) is poked through
   train-poke only when it has something to draw: a run's status or text samples or the run list changed (the
   answer's signatures differ from those train-seen says are shown), or whole figures are needed (a run was
   resumed, a series appeared). The step in each status card is kept current here.

   Updates are kept until the state's cursors have passed them, and each says where its rows start ("from"):
   when they do not join the state's cursors (whole figures came with other cursors), the stream is opened
   again from the state's cursors, so nothing is lost or drawn twice. A polled answer is dropped when whole
   figures arrived while it was asked for; the next tick asks again from the new state's cursors. */
(function () {
  "use strict";
  const LIVE = "/_deepscope/live";
  const STATE_ID = "train-state";
  const GRAPH_PREFIX = "train-graph-";  // dashboard/ids.py graph_id
  const REPOKE_MS = 5000;  // a poke whose answer did not change train-seen (older heads elsewhere) is repeated
  const BUSY_MS = 15000;   // a fetch still open after this no longer holds the next ticks back
  const L = {busy: false, busySince: 0, pokeN: 0, poked: null, pokedAt: 0};
  const STREAM = "/_deepscope/stream";
  const PUSH_ID = "train-push";   // dashboard/ids.py TRAIN_PUSH
  const FALLBACK_MS = 30000;      // a stream that could not open: poll this long, then try one again
  const QUEUE_MAX = 240;          // updates held that the page does not take: the stream is opened anew
  const S = {es: null, key: null, queue: [], latest: null, n: 0, failedUntil: 0};

  // A hidden tab takes no updates: its stream is closed (the server's thread and the browser's redraws are
  // spared) and opened again from the page's cursors when the tab is shown; the rows meanwhile come at once.
  function hidden() { return typeof document !== "undefined" && document.visibilityState === "hidden"; }

  if (typeof document !== "undefined") {
    document.addEventListener("visibilitychange", function () {
      if (hidden()) { closeStream(); return; }
      wake();  // shown again: ask now, not at the next tick
    });
  }

  // Run the page's live callback now (train-push is one of its inputs), while the page is there.
  function wake() {
    const dc = window.dash_clientside, api = window.dash_component_api;
    if (!dc || typeof dc.set_props !== "function" || !api || typeof api.getLayout !== "function" || !api.getLayout(PUSH_ID)) { return; }
    S.n += 1;
    dc.set_props(PUSH_ID, {data: S.n});
  }

  function closeStream() {
    if (S.es) { S.es.close(); }
    S.es = null;
    S.key = null;
    S.queue = [];
    S.latest = null;
  }

  function openStream(key, url) {
    closeStream();
    const es = new EventSource(url);
    let got = false;
    S.es = es;
    S.key = key;
    es.onmessage = function (e) {
      if (S.es !== es) { return; }
      const api = window.dash_component_api;
      if (api && typeof api.getLayout === "function" && !api.getLayout(PUSH_ID)) { closeStream(); return; }  // page left
      if (hidden()) { closeStream(); return; }
      let answer;
      try { answer = JSON.parse(e.data); } catch (err) { return; }
      if (!answer || typeof answer !== "object" || typeof answer.r !== "object") { return; }
      got = true;
      S.queue.push(answer);
      S.latest = answer;
      if (S.queue.length > QUEUE_MAX) { closeStream(); return; }
      wake();
    };
    // the server ends a stream after a while: one is opened at once from the page's own cursors (at the next
    // tick when it ended early: a server that cannot serve one is not asked again and again)
    const opened = Date.now();
    es.addEventListener("end", function () {
      if (S.es !== es) { return; }
      closeStream();
      if (Date.now() - opened > 5000) { wake(); }
    });
    // all of the server's streams are taken: poll for a while
    es.addEventListener("busy", function () { if (S.es === es) { S.failedUntil = Date.now() + FALLBACK_MS; closeStream(); } });
    es.onerror = function () {
      if (S.es !== es) { return; }
      if (!got) { S.failedUntil = Date.now() + FALLBACK_MS; }  // refused (all streams taken) or unreachable
      closeStream();
    };
  }

  // The pushed updates the state's cursors have not passed, joined into one answer (the newest status), or
  // null when there is none yet, or false when they do not join the state's cursors.
  function fromStream(runs, state) {
    if (!S.latest) { return null; }
    const cursorOf = function (rid) { const c = state.cursors[rid]; return typeof c === "number" ? c : 0; };
    const answer = {runs: S.latest.runs, r: {}};
    for (const rid of runs) {
      const last = (S.latest.r || {})[rid];
      if (!last) { answer.r[rid] = null; continue; }
      let at = cursorOf(rid);
      const chunks = [];
      for (const m of S.queue) {
        const part = (m.r || {})[rid];
        if (!part || typeof part.cursor !== "number" || part.cursor <= at) { continue; }  // taken already
        if (part.from !== at) { return false; }
        Array.prototype.push.apply(chunks, part.chunks || []);
        at = part.cursor;
      }
      answer.r[rid] = Object.assign({}, last, {cursor: at, chunks: chunks});
    }
    S.queue = S.queue.filter(function (m) {  // keep what the state has not taken yet
      return runs.some(function (rid) { const part = (m.r || {})[rid]; return part && part.cursor > cursorOf(rid); });
    });
    return answer;
  }

  function liveQuery(runs, since, smoothing) {
    return "?run=" + runs.map(encodeURIComponent).join(",") + "&since=" + since.join(",") + "&smooth=" + smoothing;
  }

  function runsOf(value) {
    const list = Array.isArray(value) ? value : (value ? [value] : []);
    return list.filter(function (r) { return typeof r === "string"; });
  }

  function smoothingOf(value) {  // as dashboard.inputs.as_float(value, 0, 0, 0.99)
    const v = typeof value === "number" && isFinite(value) ? value : 0;
    return Math.min(0.99, Math.max(0, v));
  }

  function sameList(a, b) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every(function (x, i) { return x === b[i]; });
  }

  function sameCursors(a, b) {
    const ka = Object.keys(a || {}), kb = Object.keys(b || {});
    return ka.length === kb.length && ka.every(function (k) { return a[k] === b[k]; });
  }

  function currentState() {  // the live state now (the callback's State is the one it was fired with)
    const api = window.dash_component_api;
    if (!api || typeof api.getLayout !== "function") { return undefined; }
    const props = api.getLayout(STATE_ID);
    return props ? props.data : undefined;
  }

  function round6(v) { return v === null || !isFinite(v) ? null : Number(v.toPrecision(6)); }

  // The debiased EMA of dashboard/views/training/figures.py ema(), from the route's parts (live_route.ema_parts)
  function smoothed(s, weight, last0, count0) {
    return s.c.map(function (c, i) {
      const y = s.y[i];
      if (y === null) { return null; }
      const last = Math.pow(weight, c) * last0 + s.p[i];
      const debias = weight < 1 ? 1 - Math.pow(weight, count0 + c) : 1;
      return round6(debias > 0 ? last / debias : y);
    });
  }

  // What the answer asks of the Python callback: "rebuild" (whole figures), "status", or null.
  function needs(answer, runs, state, seen) {
    const r = answer.r || {};
    for (const rid of runs) {
      const run = r[rid];
      if (!run) { continue; }
      if ((run.attempt || 0) !== ((state.attempts || {})[rid] || 0)) { return "rebuild"; }
      for (const chunk of run.chunks || []) {
        for (const name of Object.keys(chunk)) {
          const entry = state.traces[rid + "|" + name];
          if (!entry || (entry.smooth !== null && entry.smooth !== undefined && !chunk[name].c)) { return "rebuild"; }
        }
      }
    }
    if (!seen || typeof seen !== "object" || answer.runs !== seen.runs) { return "status"; }
    for (const rid of runs) {
      const run = r[rid];
      const shown = (seen.status || {})[rid], samples = (seen.samples || {})[rid];
      if (!run) { if (shown !== null && shown !== undefined) { return "status"; } continue; }
      if ((run.status || null) !== (shown || null) || (run.samples || null) !== (samples || null)) { return "status"; }
    }
    return null;
  }

  function showSteps(answer, runs) {
    const dc = window.dash_clientside;
    for (const rid of runs) {
      const run = (answer.r || {})[rid];
      if (!run || typeof run.step !== "number") { continue; }
      const id = {run: rid, type: "train-step"};
      const el = document.getElementById(JSON.stringify(id));
      if (!el) { continue; }
      const text = el.textContent.replace(/^step [\d,]+/, "step " + run.step.toLocaleString("en-US"));
      if (text !== el.textContent && typeof dc.set_props === "function") { dc.set_props(id, {children: text}); }
    }
  }

  async function poll(_n, _pushed, state, seen, runsValue, smoothing) {
    const dc = window.dash_clientside;
    const outputs = ((dc.callback_context || {}).outputs_list || []).map(function (o) { return o.id; });
    if (!state || typeof state !== "object" || !state.key || !state.cursors || !state.traces) { throw dc.PreventUpdate; }
    const runs = runsOf(runsValue);
    // a new selection is being drawn by the Python callback: nothing to extend until its figures arrive
    if (!runs.length || !sameList(runs, state.key.runs) || Math.abs(smoothingOf(smoothing) - state.key.smoothing) > 1e-9) {
      throw dc.PreventUpdate;
    }
    if (hidden()) { closeStream(); throw dc.PreventUpdate; }  // nobody looks: nothing asked until it is shown
    const now = Date.now();
    if (L.poked === "rebuild:" + state.gen && now - L.pokedAt < REPOKE_MS) { throw dc.PreventUpdate; }
    const since = runs.map(function (r) { const c = state.cursors[r]; return typeof c === "number" ? c : 0; });
    const query = liveQuery(runs, since, state.key.smoothing);
    let answer;
    if (typeof window.EventSource === "function" && now >= S.failedUntil) {
      const key = runs.join(",") + "|" + state.key.smoothing + "|" + state.gen;
      if (!S.es || S.key !== key) {
        openStream(key, STREAM + query);
        throw dc.PreventUpdate;
      }
      answer = fromStream(runs, state);
      if (answer === false) { closeStream(); }  // the page's cursors moved elsewhere: a stream from them
      if (!answer) { throw dc.PreventUpdate; }
    } else {
      closeStream();
      if (L.busy && now - L.busySince < BUSY_MS) { throw dc.PreventUpdate; }
      L.busy = true;
      L.busySince = now;
      try {
        const response = await fetch(LIVE + query, {credentials: "same-origin", cache: "no-store", headers: {Accept: "application/json"}});
        if (!response.ok) { throw dc.PreventUpdate; }
        answer = await response.json();
      } catch (e) {
        throw dc.PreventUpdate;  // unreachable or refused: assets/reconnect.js says so; the next tick asks again
      } finally {
        L.busy = false;
      }
    }
    const current = currentState();
    if (current !== undefined && (!current || current.gen !== state.gen || !sameCursors(current.cursors, state.cursors))) {
      throw dc.PreventUpdate;  // whole figures came meanwhile: extend those from their own cursors next tick
    }
    showSteps(answer, runs);
    const want = needs(answer, runs, state, seen);
    const result = outputs.map(function () { return dc.no_update; });
    let changed = false;
    if (want !== "rebuild") {
      const patches = {};
      const statePatch = new dc.Patch();
      const weight = state.key.smoothing;
      for (const rid of runs) {
        const run = (answer.r || {})[rid];
        if (!run) { continue; }
        const emas = {};  // the smoothing carried from chunk to chunk
        for (const chunk of run.chunks || []) {
          for (const name of Object.keys(chunk)) {
            const s = chunk[name], key = rid + "|" + name, entry = state.traces[key];
            if (!s.x.length) { continue; }
            const p = patches[entry.panel] || (patches[entry.panel] = new dc.Patch());
            p.extend(["data", entry.raw, "x"], s.x).extend(["data", entry.raw, "y"], s.y);
            if (entry.smooth !== null && entry.smooth !== undefined) {
              const [last0, count0] = emas[key] || entry.ema;
              p.extend(["data", entry.smooth, "x"], s.x).extend(["data", entry.smooth, "y"], smoothed(s, weight, last0, count0));
              emas[key] = [Math.pow(weight, s.C) * last0 + s.P, count0 + s.C];
            }
          }
        }
        Object.keys(emas).forEach(function (key) {
          statePatch.assign(["traces", key, "ema"], [Math.round(emas[key][0] * 1e12) / 1e12, emas[key][1]]);
        });
        if (typeof run.cursor === "number" && run.cursor !== state.cursors[rid]) {
          statePatch.assign(["cursors", rid], run.cursor);
          changed = true;
        }
      }
      if (changed) {
        Object.keys(patches).forEach(function (panel) {
          const i = outputs.indexOf(GRAPH_PREFIX + panel);
          if (i >= 0) { result[i] = patches[panel].build(); }
        });
        result[outputs.indexOf(STATE_ID)] = statePatch.build();
      }
    }
    if (want) {
      const sig = want === "rebuild" ? "rebuild:" + state.gen : "status:" + JSON.stringify(answer.runs) + JSON.stringify(
        runs.map(function (r) { const run = (answer.r || {})[r]; return run ? [run.status, run.samples] : null; }));
      if (sig !== L.poked || now - L.pokedAt >= REPOKE_MS) {
        L.poked = sig;
        L.pokedAt = now;
        L.pokeN += 1;
        result[result.length - 1] = {n: L.pokeN, rebuild: want === "rebuild"};
        changed = true;
      }
    }
    if (!changed) { throw dc.PreventUpdate; }
    return result;
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.deepscope_training = Object.assign({}, window.dash_clientside.deepscope_training, {poll: poll});
})();
