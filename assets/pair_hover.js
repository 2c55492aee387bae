/* Hidden states, a bidirectional layer side by side (dashboard/figures/hidden_pair.py): the token under the
   pointer, in either panel, is marked in both panels with a thin line, so a spike of a backward cell can be
   read against the forward cells at that token. It follows the pointer anywhere over the plots (not only on
   a selected cell's line, the only ones with hover labels). The marks are plain elements over the chart: no
   relayout, no callback to the server, brushing untouched. Registered as dash_clientside.deepscope.pairHover
   (dashboard/pages/hidden_states.py). */
(function () {
  const PANELS = [["xaxis", "yaxis"], ["xaxis2", "yaxis2"]];

  function marks(host) {
    let found = host.querySelectorAll(".pair-hover-mark");
    if (found.length === PANELS.length) { return found; }
    host.style.position = "relative";
    PANELS.forEach(function () {
      const m = document.createElement("div");
      m.className = "pair-hover-mark";
      host.appendChild(m);
    });
    return host.querySelectorAll(".pair-hover-mark");
  }

  function hide(host) {
    host.querySelectorAll(".pair-hover-mark").forEach(function (m) { m.style.display = "none"; });
  }

  // the token (an integer x) under client point (cx, cy), or null when it is over neither panel
  function tokenAt(gd, cx, cy) {
    const full = gd._fullLayout, box = gd.getBoundingClientRect();
    const px = cx - box.left, py = cy - box.top;
    for (const [xk, yk] of PANELS) {
      const xa = full[xk], ya = full[yk];
      if (px >= xa._offset && px <= xa._offset + xa._length && py >= ya._offset && py <= ya._offset + ya._length) {
        const [lo, hi] = xa.range;
        return Math.min(Math.max(Math.round(xa.p2l(px - xa._offset)), Math.ceil(lo)), Math.floor(hi));
      }
    }
    return null;
  }

  // the token's text as the axis writes it (whitespace made visible), or its number past the labelled ones
  function tokenText(full, token) {
    const ax = full.xaxis, vals = ax.tickvals || [], texts = ax.ticktext || [];
    for (let i = 0; i < vals.length; i++) { if (vals[i] === token) { return String(texts[i]); } }
    return "#" + token;
  }

  function show(host, gd, token) {
    const full = gd._fullLayout, box = gd.getBoundingClientRect(), hostBox = host.getBoundingClientRect();
    const dx = box.left - hostBox.left, dy = box.top - hostBox.top;
    const text = tokenText(full, token);
    marks(host).forEach(function (m, i) {
      m.textContent = text;
      const xa = full[PANELS[i][0]], ya = full[PANELS[i][1]];
      m.style.left = (dx + xa._offset + xa.l2p(token)) + "px";
      m.style.top = (dy + ya._offset) + "px";
      m.style.height = ya._length + "px";
      m.style.display = "block";
      m.dataset.token = String(token);
    });
  }

  function attach(host, tries) {
    const gd = host.querySelector(".js-plotly-plot");
    if (!gd || !gd._fullLayout) {  // the chart draws after the callback: look again shortly
      if (tries > 0) { setTimeout(function () { attach(host, tries - 1); }, 100); }
      return;
    }
    hide(host);  // a new figure: an old mark would point at another window
    if (gd.__deepscopePairHover) { return; }
    gd.__deepscopePairHover = true;
    gd.addEventListener("mousemove", function (ev) {
      const full = gd._fullLayout;
      const token = full && full.xaxis2 ? tokenAt(gd, ev.clientX, ev.clientY) : null;  // one direction: none
      if (token === null) { hide(host); } else { show(host, gd, token); }
    });
    gd.addEventListener("mouseleave", function () { hide(host); });
  }

  window.dash_clientside = Object.assign({}, window.dash_clientside);
  window.dash_clientside.deepscope = Object.assign({}, window.dash_clientside.deepscope, {
    pairHover: function (_figure, graphId) {
      const host = document.getElementById(graphId);
      if (host) { attach(host, 30); }
      return window.dash_clientside.no_update;
    }
  });
})();
