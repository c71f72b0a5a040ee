/* Panorama — the little JavaScript of the pages. Every page works without it; with it:
   - [data-fragment="URL"]: the element's content is replaced by that HTML fragment (slow parts,
     such as an incident's correlated logs and traces, load after the page is shown);
   - form[data-confirm="question"]: asks before submitting (resolving an incident);
   - button[data-copy="text"]: copies the text (trace ids);
   - [data-chart] with a <script type="application/json"> block: an ECharts trend (the page
     loads echarts.min.js itself when it has one).
   No inline script, no eval, no other origin: the CSP forbids them. */
(function () {
  "use strict";

  function loadFragments(root) {
    root.querySelectorAll("[data-fragment]").forEach(function (element) {
      var url = element.getAttribute("data-fragment");
      element.removeAttribute("data-fragment");
      element.setAttribute("aria-busy", "true");
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (answer) {
          return answer.text().then(function (text) { return { ok: answer.ok, text: text }; });
        })
        .then(function (result) {
          if (!result.ok) { throw new Error("status"); }
          element.innerHTML = result.text;
          element.removeAttribute("aria-busy");
          initCharts(element);
        })
        .catch(function () {
          element.removeAttribute("aria-busy");
          var note = element.querySelector("[data-fragment-failed]");
          if (note) { note.classList.remove("hidden"); }
        });
    });
  }

  function confirmForms(root) {
    root.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.classList.remove("hidden");
      button.addEventListener("click", function () {
        var text = button.getAttribute("data-copy");
        if (!navigator.clipboard) { return; }
        navigator.clipboard.writeText(text).then(function () {
          var label = button.textContent;
          button.textContent = button.getAttribute("data-copied") || "✓";
          window.setTimeout(function () { button.textContent = label; }, 1500);
        }, function () { /* not allowed here (plain http): nothing to do */ });
      });
    });
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function initCharts(root) {
    if (typeof window.echarts === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (element) {
      var source = document.getElementById(element.getAttribute("data-chart"));
      if (!source) { return; }
      var data = JSON.parse(source.textContent);
      var labels = JSON.parse(element.getAttribute("data-labels") || "{}");
      var chart = window.echarts.init(element, null, { renderer: "canvas" });
      var fg = cssVar("--fg-muted"), grid = cssVar("--border");
      var palette = { requests: cssVar("--svc-0"), error_rate: cssVar("--crit"), latency_p99_ms: cssVar("--svc-3") };
      var transform = {
        error_rate: function (v) { return v === null ? null : Math.round(v * 100000) / 1000; },
        latency_p99_ms: function (v) { return v === null ? null : Math.round(v * 10) / 10; }
      };
      var names = (element.getAttribute("data-series") || "requests").split(",");
      chart.setOption({
        animation: false,
        color: names.map(function (name) { return palette[name]; }),
        textStyle: { color: fg },
        grid: { left: 8, right: 8, top: 32, bottom: 4, containLabel: true },
        legend: { top: 0, textStyle: { color: fg }, itemWidth: 12, itemHeight: 8 },
        tooltip: { trigger: "axis", renderMode: "richText" },
        xAxis: { type: "category", data: data.days.map(function (d) { return d.slice(5); }),
                 axisLabel: { color: fg }, axisLine: { lineStyle: { color: grid } } },
        yAxis: names.map(function (name, index) {
          return { type: "value", name: "", axisLabel: { color: fg },
                   splitLine: { show: index === 0, lineStyle: { color: grid } } };
        }),
        series: names.map(function (name, index) {
          var values = data[name].map(transform[name] || function (v) { return v; });
          return { name: labels[name] || name, type: name === "requests" ? "bar" : "line", yAxisIndex: index,
                   data: values, showSymbol: false, connectNulls: false, barMaxWidth: 14 };
        })
      });
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  function start() {
    loadFragments(document);
    confirmForms(document);
    copyButtons(document);
    initCharts(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
