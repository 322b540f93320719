/*
 * Sentio chat widget: live sentiment for the agent's view of a support chat.
 *
 * Embed:
 *   <div id="sentio-chat"></div>
 *   <script src="https://sentio.example.com/web/widget.js"
 *           data-target="#sentio-chat"
 *           data-endpoint="https://sentio.example.com"
 *           data-api-key="sk_..."             (a key with the classify and feedback scopes)
 *           data-redact-agent-view="true"     (show the agent redacted text)
 *           data-channel="chat"></script>
 * or from code: Sentio.mount(element, {endpoint, apiKey, redactAgentView, channel, customerId}).
 *
 * Each message goes to POST /classify-sentiment (badge: label and confidence), then the whole
 * conversation to POST /analyze-conversation (trend and escalation banner). No dependencies, no
 * requests anywhere but the configured endpoint.
 */
(function () {
  "use strict";

  var STYLE = [
    ".sentio{font:14px/1.4 system-ui,sans-serif;border:1px solid #bbb;border-radius:8px;max-width:640px;display:flex;flex-direction:column;background:#fff;color:#111}",
    ".sentio header{display:flex;align-items:center;gap:12px;padding:8px 12px;border-bottom:1px solid #ddd}",
    ".sentio header h2{font-size:15px;margin:0;flex:1}",
    ".sentio-banner{background:#b00020;color:#fff;padding:8px 12px;font-weight:600}",
    ".sentio-banner[hidden]{display:none}",
    ".sentio-log{list-style:none;margin:0;padding:8px 12px;min-height:160px;max-height:360px;overflow-y:auto}",
    ".sentio-msg{margin:6px 0;display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}",
    ".sentio-msg .who{font-weight:600;min-width:70px}",
    ".sentio-msg .text{flex:1;white-space:pre-wrap;word-break:break-word}",
    ".sentio-badge{border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;border:1px solid}",
    ".sentio-badge[data-label=negative]{background:#fde7ea;color:#8a0016;border-color:#8a0016}",
    ".sentio-badge[data-label=neutral]{background:#eef0f3;color:#333;border-color:#666}",
    ".sentio-badge[data-label=positive]{background:#e3f5e8;color:#0b5b22;border-color:#0b5b22}",
    ".sentio-badge[data-label=pending]{background:#fff;color:#555;border-color:#aaa}",
    ".sentio-badge[data-label=error]{background:#fff4e5;color:#7a4100;border-color:#7a4100}",
    ".sentio-fix{font-size:12px}",
    ".sentio form{display:flex;gap:8px;padding:8px 12px;border-top:1px solid #ddd}",
    ".sentio form input[type=text]{flex:1;padding:6px}",
    ".sentio :focus-visible{outline:3px solid #1a73e8;outline-offset:1px}",
    ".sentio-trend{width:160px;height:36px}",
    ".sentio-status{font-size:12px;color:#555;padding:0 12px 6px}"
  ].join("\n");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function Widget(root, options) {
    this.endpoint = (options.endpoint || "").replace(/\/$/, "");
    this.apiKey = options.apiKey || "";
    this.redactAgentView = !!options.redactAgentView;
    this.channel = options.channel || "chat";
    this.customerId = options.customerId || null;
    this.conversationId = "conv-" + Math.random().toString(36).slice(2, 10);
    this.turns = [];
    this.polarity = [];
    this.build(root);
  }

  Widget.prototype.build = function (root) {
    if (!document.getElementById("sentio-style")) {
      document.head.appendChild(el("style", { id: "sentio-style", text: STYLE }));
    }
    this.trend = svg("svg", { "class": "sentio-trend", viewBox: "0 0 160 36", role: "img", "aria-label": "Customer sentiment trend: no messages yet" });
    this.trend.appendChild(svg("line", { x1: 0, y1: 18, x2: 160, y2: 18, stroke: "#ccc", "stroke-dasharray": "3 3" }));
    this.trendLine = svg("polyline", { fill: "none", stroke: "#1a73e8", "stroke-width": 2, points: "" });
    this.trend.appendChild(this.trendLine);
    this.banner = el("div", { "class": "sentio-banner", role: "alert", hidden: "" });
    this.log = el("ul", { "class": "sentio-log", "aria-live": "polite", "aria-label": "Conversation" });
    this.role = el("select", { "aria-label": "Speaker" }, [
      el("option", { value: "customer", text: "Customer" }),
      el("option", { value: "agent", text: "Agent" })
    ]);
    this.input = el("input", { type: "text", "aria-label": "Message", placeholder: "Type a message", autocomplete: "off", maxlength: "4000" });
    var send = el("button", { type: "submit", text: "Send" });
    var form = el("form", {}, [this.role, this.input, send]);
    this.status = el("div", { "class": "sentio-status", "aria-live": "polite" });
    var box = el("section", { "class": "sentio", "aria-label": "Sentio live sentiment" }, [
      el("header", {}, [el("h2", { text: "Customer sentiment" }), this.trend]),
      this.banner, this.log, form, this.status
    ]);
    root.appendChild(box);
    var self = this;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = self.input.value.trim();
      if (!text) return;
      self.input.value = "";
      self.send(self.role.value, text);
    });
  };

  Widget.prototype.post = function (path, body) {
    var headers = { "content-type": "application/json" };
    if (this.apiKey) headers.authorization = "Bearer " + this.apiKey;
    return fetch(this.endpoint + path, { method: "POST", headers: headers, body: JSON.stringify(body) })
      .then(function (response) {
        return response.json().then(function (json) {
          if (!response.ok) {
            var e = json && json.error ? json.error : { message: "HTTP " + response.status };
            throw new Error(e.message + (e.field ? " (" + e.field + ")" : ""));
          }
          return json;
        });
      });
  };

  Widget.prototype.metadata = function () {
    var m = { channel: this.channel, conversation_id: this.conversationId };
    if (this.customerId) m.customer_id = this.customerId;
    return m;
  };

  Widget.prototype.send = function (speaker, text) {
    var self = this;
    var badge = el("span", { "class": "sentio-badge", "data-label": "pending", text: "scoring…" });
    var shown = el("span", { "class": "text", text: self.redactAgentView ? "…" : text });
    var item = el("li", { "class": "sentio-msg", "data-speaker": speaker }, [
      el("span", { "class": "who", text: speaker === "customer" ? "Customer" : "Agent" }), shown, badge
    ]);
    self.log.appendChild(item);
    self.log.scrollTop = self.log.scrollHeight;
    self.turns.push({ speaker: speaker, text: text });
    var turns = self.turns.slice();
    return self.post("/classify-sentiment", { text: text, metadata: self.metadata() })
      .then(function (result) {
        var pct = Math.round(result.confidence * 100);
        badge.dataset.label = result.label;
        badge.textContent = result.label + " " + pct + "%";
        badge.setAttribute("aria-label", "Sentiment " + result.label + ", confidence " + pct + " percent" + (result.tier !== "edge" ? ", scored by the " + result.tier + " tier" : ""));
        item.dataset.predictionId = result.prediction_id || "";
        if (self.redactAgentView) shown.textContent = result.redacted_text;
        if (speaker === "customer") {
          self.polarity.push(result.polarity);
          self.drawTrend();
        }
        if (result.prediction_id) item.appendChild(self.correction(result));
        return self.post("/analyze-conversation", { turns: turns, metadata: self.metadata() });
      })
      .then(function (conversation) {
        self.showEscalation(conversation.escalation);
        self.status.textContent = "";
      })
      .catch(function (error) {
        if (badge.dataset.label === "pending") {
          badge.dataset.label = "error";
          badge.textContent = "not scored";
          if (self.redactAgentView) shown.textContent = "(hidden: not redacted)";
        }
        self.status.textContent = "Sentio: " + error.message;
      });
  };

  /* Lets the agent correct a wrong label (POST /feedback). */
  Widget.prototype.correction = function (result) {
    var self = this;
    var select = el("select", { "class": "sentio-fix", "aria-label": "Correct the sentiment label" }, [
      el("option", { value: "", text: "Correct…" }),
      el("option", { value: "negative", text: "negative" }),
      el("option", { value: "neutral", text: "neutral" }),
      el("option", { value: "positive", text: "positive" })
    ]);
    select.addEventListener("change", function () {
      if (!select.value) return;
      self.post("/feedback", { prediction_id: result.prediction_id, corrected_label: select.value, reviewer: self.customerId ? "agent-of-" + self.customerId : "agent" })
        .then(function () { select.disabled = true; select.setAttribute("data-saved", "true"); self.status.textContent = "Correction saved."; })
        .catch(function (error) { self.status.textContent = "Sentio: " + error.message; });
    });
    return select;
  };

  Widget.prototype.drawTrend = function () {
    var values = this.polarity.slice(-20);
    var step = values.length > 1 ? 160 / (values.length - 1) : 0;
    var points = values.map(function (v, i) { return (i * step).toFixed(1) + "," + (18 - v * 16).toFixed(1); });
    if (values.length === 1) points.push("160," + (18 - values[0] * 16).toFixed(1));
    this.trendLine.setAttribute("points", points.join(" "));
    var last = values[values.length - 1];
    this.trend.setAttribute("aria-label", "Customer sentiment trend over " + values.length + " messages, latest polarity " + last.toFixed(2));
  };

  Widget.prototype.showEscalation = function (escalation) {
    if (escalation && escalation.escalate) {
      var reasons = (escalation.reasons || []).join(", ").replace(/_/g, " ");
      this.banner.textContent = "Escalate: the customer is upset" + (reasons ? " (" + reasons + ")" : "") + ". Consider handing over to a senior agent.";
      this.banner.hidden = false;
    } else {
      this.banner.hidden = true;
    }
  };

  var Sentio = {
    mount: function (target, options) {
      var root = typeof target === "string" ? document.querySelector(target) : target;
      if (!root) throw new Error("Sentio: no element " + target);
      return new Widget(root, options || {});
    }
  };
  window.Sentio = Sentio;

  var script = document.currentScript;
  if (script && script.dataset.target) {
    var start = function () {
      window.sentioWidget = Sentio.mount(script.dataset.target, {
        endpoint: script.dataset.endpoint || "",
        apiKey: script.dataset.apiKey || "",
        redactAgentView: script.dataset.redactAgentView === "true",
        channel: script.dataset.channel,
        customerId: script.dataset.customerId
      });
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})();
