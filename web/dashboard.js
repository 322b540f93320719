/*
 * The operator dashboard: polls /dashboard/api/summary every 2 s and draws SVG charts.
 * The API key (dashboard scope) comes from the address (#key=...) or the form, and stays in
 * this tab's sessionStorage.
 */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var W = 400, H = 170, PAD = { l: 44, r: 8, t: 8, b: 22 };
  var PALETTE = ["#1a73e8", "#e37400", "#188038", "#a142f4", "#c5221f", "#12b5cb"];

  var key = new URLSearchParams(location.hash.slice(1)).get("key") || sessionStorage.getItem("sentio-key") || "";
  if (key) sessionStorage.setItem("sentio-key", key);

  function node(tag, attrs, text) {
    var n = document.createElementNS(NS, tag);
    Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function frame(svgEl, maxY, xLabels) {
    while (svgEl.firstChild) svgEl.removeChild(svgEl.firstChild);
    svgEl.setAttribute("viewBox", "0 0 " + W + " " + H);
    var g = node("g", {});
    [0, 0.5, 1].forEach(function (f) {
      var y = PAD.t + (H - PAD.t - PAD.b) * (1 - f);
      g.appendChild(node("line", { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, stroke: "#e0e0e0" }));
      g.appendChild(node("text", { x: PAD.l - 4, y: y + 4, "text-anchor": "end", "font-size": 10, fill: "#555" }, fmt(maxY * f)));
    });
    (xLabels || []).forEach(function (l) {
      g.appendChild(node("text", { x: l[0], y: H - 6, "text-anchor": "middle", "font-size": 10, fill: "#555" }, l[1]));
    });
    svgEl.appendChild(g);
    return g;
  }

  function fmt(v) {
    if (v >= 100) return Math.round(v).toString();
    if (v >= 1) return v.toFixed(1);
    return v.toFixed(2);
  }

  function xScale(times) {
    var t0 = times[0], t1 = times[times.length - 1];
    var span = Math.max(t1 - t0, 1);
    return function (t) { return PAD.l + (W - PAD.l - PAD.r) * (t - t0) / span; };
  }

  function timeLabels(times, x) {
    if (!times.length) return [];
    var pick = [times[0], times[Math.floor(times.length / 2)], times[times.length - 1]];
    return pick.map(function (t) { return [x(t), new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })]; });
  }

  /* series: [{name, color, points: [[t, v|null]]}] */
  function lineChart(id, series, maxY) {
    var svgEl = document.getElementById(id);
    var times = [];
    series.forEach(function (s) { s.points.forEach(function (p) { times.push(p[0]); }); });
    times.sort(function (a, b) { return a - b; });
    var top = maxY || Math.max.apply(null, [1e-9].concat(series.map(function (s) {
      return Math.max.apply(null, [0].concat(s.points.map(function (p) { return p[1] || 0; })));
    }))) * 1.1;
    var x = xScale(times.length ? times : [0, 1]);
    var g = frame(svgEl, top, timeLabels(times, x));
    var drawn = 0;
    series.forEach(function (s) {
      var pts = s.points.filter(function (p) { return p[1] !== null && p[1] !== undefined; })
        .map(function (p) { return x(p[0]).toFixed(1) + "," + (PAD.t + (H - PAD.t - PAD.b) * (1 - p[1] / top)).toFixed(1); });
      if (!pts.length) return;
      if (pts.length === 1) pts.push((W - PAD.r) + "," + pts[0].split(",")[1]);
      g.appendChild(node("polyline", { points: pts.join(" "), fill: "none", stroke: s.color, "stroke-width": 2, "data-series": s.name }));
      drawn += s.points.length;
    });
    svgEl.dataset.points = drawn;
  }

  /* groups: [{label, values: [v...]}], colors per value index */
  function barChart(id, groups, colors) {
    var svgEl = document.getElementById(id);
    var top = Math.max.apply(null, [1e-9].concat(groups.map(function (g) { return Math.max.apply(null, g.values); }))) * 1.1;
    var slot = (W - PAD.l - PAD.r) / Math.max(groups.length, 1);
    var labels = groups.map(function (g, i) { return [PAD.l + slot * (i + 0.5), g.label]; });
    var frameG = frame(svgEl, top, groups.length > 12 ? [] : labels);
    var bars = 0;
    groups.forEach(function (g, i) {
      var bw = slot * 0.8 / g.values.length;
      g.values.forEach(function (v, j) {
        var h = (H - PAD.t - PAD.b) * v / top;
        frameG.appendChild(node("rect", {
          x: (PAD.l + slot * i + slot * 0.1 + bw * j).toFixed(1), y: (H - PAD.b - h).toFixed(1),
          width: Math.max(bw - 1, 1).toFixed(1), height: h.toFixed(1), fill: colors[j % colors.length]
        }));
        if (v > 0) bars++;
      });
    });
    svgEl.dataset.points = bars;
  }

  function stackedBars(id, points, keys, colors) {
    var svgEl = document.getElementById(id);
    var totals = points.map(function (p) { return keys.reduce(function (a, k) { return a + (p.labels[k] || 0); }, 0); });
    var top = Math.max.apply(null, [1].concat(totals)) * 1.1;
    var x = xScale(points.length ? points.map(function (p) { return p.t_ms; }) : [0, 1]);
    var g = frame(svgEl, top, timeLabels(points.map(function (p) { return p.t_ms; }), x));
    var bw = Math.max((W - PAD.l - PAD.r) / Math.max(points.length, 1) - 1, 1);
    var bars = 0;
    points.forEach(function (p) {
      var y = H - PAD.b;
      keys.forEach(function (k, j) {
        var v = p.labels[k] || 0;
        if (!v) return;
        var h = (H - PAD.t - PAD.b) * v / top;
        y -= h;
        g.appendChild(node("rect", { x: Math.min(x(p.t_ms), W - PAD.r - bw).toFixed(1), y: y.toFixed(1), width: bw.toFixed(1), height: h.toFixed(1), fill: colors[j], "data-label": k }));
        bars++;
      });
    });
    svgEl.dataset.points = bars;
  }

  var SHORT = { "/classify-sentiment": "classify", "/analyze-conversation": "conversation", "/stream-sentiment": "stream", "/redact": "redact", "/heavy": "heavy", "/feedback": "feedback" };
  function shortRoute(route) { return SHORT[route] || route.replace(/^\//, ""); }

  function render(s) {
    var pts = s.series;
    lineChart("throughput", [{ name: "requests/s", color: PALETTE[0], points: pts.map(function (p) { return [p.t_ms, p.requests_per_second]; }) }]);

    var keys = {};
    pts.forEach(function (p) { Object.keys(p.p95_ms).forEach(function (k) { keys[k] = true; }); });
    var names = Object.keys(keys).sort();
    lineChart("latency-series", names.map(function (k, i) {
      return { name: k, color: PALETTE[i % PALETTE.length], points: pts.map(function (p) { return [p.t_ms, p.p95_ms[k] === undefined ? null : p.p95_ms[k]]; }) };
    }));
    var legend = document.getElementById("latency-legend");
    legend.innerHTML = "";
    names.forEach(function (k, i) {
      var span = document.createElement("span");
      span.style.setProperty("--c", PALETTE[i % PALETTE.length]);
      span.textContent = k;
      legend.appendChild(span);
    });

    barChart("latency-percentiles", s.latency.map(function (r) {
      return { label: shortRoute(r.route) + "·" + r.tier, values: [r.p50_ms, r.p95_ms, r.p99_ms] };
    }), ["#8ab4f8", "#1a73e8", "#0b3d91"]);

    stackedBars("labels", pts, ["negative", "neutral", "positive"], ["#c5221f", "#9aa0a6", "#188038"]);

    barChart("confidence", s.confidence_histogram.bins.map(function (b, i) {
      return { label: b.toFixed(1), values: [s.confidence_histogram.counts[i]] };
    }), ["#1a73e8"]);

    lineChart("shares", [
      { name: "low confidence", color: "#f9ab00", points: pts.map(function (p) { return [p.t_ms, p.low_confidence_share]; }) },
      { name: "escalated", color: "#b00020", points: pts.map(function (p) { return [p.t_ms, p.escalated_share]; }) }
    ], 1);

    var d = s.drift;
    barChart("drift", [
      { label: "labels PSI", values: [d.label_psi || 0] },
      { label: "confidence PSI", values: [d.confidence_psi || 0] }
    ], ["#a142f4"]);
    var level = document.getElementById("drift-level");
    level.textContent = d.level + " (" + d.current_predictions + " recent vs " + d.baseline_predictions + " baseline predictions)";
    level.className = "kpi level-" + d.level.replace(/ /g, "-");

    lineChart("queue", [
      { name: "waiting", color: "#1a73e8", points: pts.map(function (p) { return [p.t_ms, p.queue_visible]; }) },
      { name: "dead letters", color: "#b00020", points: pts.map(function (p) { return [p.t_ms, p.queue_dead]; }) }
    ]);

    var c = s.current;
    document.getElementById("updated").textContent = "Updated " + new Date(s.now_ms).toLocaleTimeString() +
      " · last " + Math.round(c.window_ms / 60000) + " min: " + c.requests + " requests, " + c.predictions + " predictions" +
      (s.queue ? " · queue " + s.queue.visible + " waiting, " + s.queue.dead + " dead letters" : "");
    document.body.dataset.loaded = "true";
  }

  function poll() {
    var headers = key ? { authorization: "Bearer " + key } : {};
    fetch("/dashboard/api/summary?span_s=900", { headers: headers })
      .then(function (r) {
        return r.json().then(function (body) {
          if (r.status === 401 || r.status === 403) {
            document.getElementById("keyform").hidden = false;
            throw new Error(body.error.message);
          }
          if (!r.ok) throw new Error(body.error ? body.error.message : "HTTP " + r.status);
          return body;
        });
      })
      .then(function (s) { document.getElementById("error").textContent = ""; render(s); })
      .catch(function (e) { document.getElementById("error").textContent = "Dashboard: " + e.message; })
      .then(function () { setTimeout(poll, 2000); });
  }

  document.getElementById("keyform").addEventListener("submit", function (e) {
    e.preventDefault();
    key = document.getElementById("key").value;
    sessionStorage.setItem("sentio-key", key);
    document.getElementById("keyform").hidden = true;
  });
  poll();
})();
