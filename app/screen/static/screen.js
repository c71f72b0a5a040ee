/* Panorama — the wall screen's script. It runs for weeks on a kiosk, so:
   - every element and every chart is made once and updated in place (textContent, classes,
     ECharts setOption on the same instance): the DOM and the heap stay flat;
   - one clock interval, one polling timeout at a time, one resize listener, nothing else;
   - a failed request keeps the last data on the wall, marks the panels stale with their age and
     tries again at the next refresh; nothing ever shows NaN, undefined or null;
   - the kiosk token comes once as ?token=, is kept in this tab's sessionStorage and taken out of
     the address bar; the page reloads itself once a day at the configured quiet hour, and only
     when Panorama answers (a reload never lands on an error page).
   No inline script, no eval, no other origin: the CSP forbids them. */
(function () {
  "use strict";

  var TOKEN_KEY = "panorama.screen.token";
  var config = JSON.parse(document.getElementById("screen-config").textContent);
  var words = config.words;
  var PANELS = ["health", "traffic", "services", "incidents", "oncall", "graph", "trends"];
  var LEVEL_COLOURS = { ok: "#3fb950", warning: "#f2c94c", critical: "#ff6b6b" };
  var TRAFFIC_COLOUR = "#4aa3ff";
  var NAMED = 3;  // hidden schedules with nobody on call named in the "more" line; beyond, counted
  var SERIES_COLOURS = ["#4aa3ff", "#bc8cff", "#39c5cf", "#ffa657", "#ff7eb6", "#7ee787", "#e3b341",
    "#a371f7", "#58a6ff", "#9ea7b3"];
  var state = {
    token: takeToken(),
    skew: 0,             // server clock minus this clock, in ms
    lastGood: {},        // panel → {data, fetchedAt}: what the wall shows
    meta: {},            // panel → what the last answer said about it
    failure: null,       // why the last request failed (then every panel is stale)
    updatedAt: null,     // when data last arrived (server time, ms)
    reloadAt: null,
    polling: null
  };
  var charts = {};
  var clockFormat = new Intl.DateTimeFormat(config.locale, {
    timeZone: config.timezone, hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23"
  });
  var dateFormat = new Intl.DateTimeFormat(config.locale, {
    timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit", weekday: "short"
  });
  var shortTime = new Intl.DateTimeFormat(config.locale, {
    timeZone: config.timezone, hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });
  var dayTime = new Intl.DateTimeFormat(config.locale, {
    timeZone: config.timezone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"
  });
  var zoneFields = new Intl.DateTimeFormat("en-US", {
    timeZone: config.timezone, year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23"
  });
  var grouped = new Intl.NumberFormat(config.locale, { maximumFractionDigits: 0 });

  // --- the token ------------------------------------------------------------------------------

  function takeToken() {
    var url = new URL(window.location.href);
    var given = url.searchParams.get("token");
    if (given) {
      try { window.sessionStorage.setItem(TOKEN_KEY, given); } catch (e) { /* private mode: memory only */ }
      url.searchParams.delete("token");
      window.history.replaceState(null, "", url.pathname + url.search + url.hash);
      return given;
    }
    try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  // --- words and numbers ------------------------------------------------------------------------

  function say(key, values) {
    if (values && String(values.n) === "1" && words[key + ".one"]) { key += ".one"; }  // "1 open incident"
    return filled(words[key] || key, values);
  }

  // A catalogue text's {name} placeholders filled with the values by name, in one pass (as Python's
  // str.format does: a value's own braces, e.g. a PromQL error's, are shown as they are).
  function filled(text, values) {
    if (!values) { return text; }
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  // A panel's problem as the server phrased it (app/screen/cache.py: a catalogue key and plain
  // values), in the wall's language; null when the page was not given that key's text.
  function phrased(phrase) {
    if (!phrase || !Object.prototype.hasOwnProperty.call(config.phrases, phrase.key)) { return null; }
    return filled(config.phrases[phrase.key], phrase.values || {});
  }

  function real(value) { return typeof value === "number" && isFinite(value); }

  function rate(value) {
    if (!real(value)) { return "—"; }
    if (value >= 1000) { return grouped.format(value); }
    if (value >= 100) { return value.toFixed(0); }
    if (value >= 10) { return value.toFixed(1); }
    return value.toFixed(2);
  }

  function percent(value) {
    if (!real(value)) { return ["—", ""]; }
    var p = value * 100;
    return [p >= 10 ? p.toFixed(1) : p.toFixed(2), "%"];
  }

  function millis(value) {
    if (!real(value)) { return ["—", ""]; }
    if (value >= 1000) { return [(value / 1000).toFixed(2), "s"]; }
    if (value >= 10) { return [value.toFixed(0), "ms"]; }
    return [value.toFixed(1), "ms"];
  }

  function count(value) { return real(value) ? grouped.format(value) : "—"; }

  function compact(value) {
    if (!real(value)) { return "—"; }
    if (value >= 1e9) { return (value / 1e9).toFixed(1) + "G"; }
    if (value >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (value >= 1e3) { return (value / 1e3).toFixed(1) + "k"; }
    return value.toFixed(0);
  }

  function span(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    if (s < 60) { return say("seconds", { n: s }); }
    var m = Math.floor(s / 60);
    if (m < 60) { return say("minutes", { n: m }); }
    var h = Math.floor(m / 60);
    if (h < 24) { return say("hours", { n: h }) + (m % 60 ? " " + say("minutes", { n: m % 60 }) : ""); }
    return say("days", { n: Math.floor(h / 24) }) + (h % 24 ? " " + say("hours", { n: h % 24 }) : "");
  }

  function serverNow() { return Date.now() + state.skew; }

  function two(n) { return (n < 10 ? "0" : "") + n; }

  // "+08:00": the zone's offset at `ms`, read from the same zone data the clock is shown with
  // (the time there, taken as if it were UTC, minus the moment), so that the zone named beside the
  // clock changes with it at a daylight saving change, to the second.
  function offsetAt(ms) {
    var f = {};
    zoneFields.formatToParts(new Date(ms)).forEach(function (part) { f[part.type] = part.value; });
    var there = Date.UTC(Number(f.year), Number(f.month) - 1, Number(f.day), Number(f.hour) % 24,
      Number(f.minute), Number(f.second));
    var minutes = Math.round((there - Math.floor(ms / 1000) * 1000) / 60000);
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return sign + two(Math.floor(minutes / 60)) + ":" + two(minutes % 60);
  }

  // A time of the on-call panel; one at another offset than the zone's now (past a daylight saving
  // change) carries its own, as on the on-call page.
  function stamp(ms) {
    var offset = offsetAt(ms);
    return dayTime.format(new Date(ms)) + (offset === offsetAt(serverNow()) ? "" : " " + offset);
  }

  function millisOf(iso) { var t = iso ? Date.parse(iso) : NaN; return isFinite(t) ? t : null; }

  function setText(element, text) {
    var value = text === null || text === undefined ? "—" : String(text);
    if (element && element.textContent !== value) { element.textContent = value; }
  }

  function levelOf(level) { return level === "warning" || level === "critical" || level === "ok" ? level : ""; }

  // --- panels: what is shown, and how fresh ------------------------------------------------------

  var sections = {};
  PANELS.forEach(function (name) {
    var section = document.querySelector('[data-panel="' + name + '"]');
    sections[name] = {
      root: section,
      state: section.querySelector("[data-state]"),
      note: section.querySelector("[data-note]"),
      message: section.querySelector("[data-message]"),
      problem: section.querySelector("[data-problem]"),
      more: section.querySelector("[data-more]")
    };
  });

  function shown(name) { return state.lastGood[name] ? state.lastGood[name].data : null; }

  function accept(name, panel) {
    state.meta[name] = panel;
    var fetched = millisOf(panel.fetched_at);
    var kept = state.lastGood[name];
    if (panel.data !== null && panel.data !== undefined && (!kept || fetched === null || fetched >= kept.fetchedAt)) {
      state.lastGood[name] = { data: panel.data, fetchedAt: fetched };
      return true;
    }
    return false;  // no data in this answer (another replica that never had it): keep ours
  }

  function problemText(name) {
    if (state.failure) { return state.failure; }
    var meta = state.meta[name];
    if (meta && meta.error) { return phrased(meta.error.phrase) || meta.error.backend + ": " + meta.error.message; }
    return "";
  }

  function freshness(name) {
    var section = sections[name];
    var meta = state.meta[name];
    var kept = state.lastGood[name];
    var problem = problemText(name);
    var stale = Boolean(problem) && Boolean(kept);
    var broken = Boolean(problem) && !kept;
    section.root.classList.toggle("is-stale", stale);
    section.root.classList.toggle("is-error", broken);
    if (stale) {
      var age = kept.fetchedAt === null ? 0 : (serverNow() - kept.fetchedAt) / 1000;
      setText(section.state, say("stale", { age: span(age) }));
      setText(section.problem, problem);
    } else if (broken) {
      setText(section.state, say("no_data"));
      setText(section.message, problem);
    } else {
      setText(section.state, "");
    }
    if (!kept && !problem && !meta) { setText(section.message, say("waiting")); }
    return kept ? kept.data : null;
  }

  function empty(name, text) {
    var section = sections[name];
    section.root.classList.toggle("is-empty", Boolean(text));
    if (text) { setText(section.message, text); }
  }

  // --- pools of rows: made once, as many as ever needed, hidden when not -------------------------

  function rows(container, wanted, make) {
    while (container.children.length < wanted) { container.appendChild(make()); }
    for (var i = 0; i < container.children.length; i++) { container.children[i].hidden = i >= wanted; }
    return container.children;
  }

  // --- what does not fit: counted, never hidden silently ---------------------------------------------
  // A list panel shows what fits and, below, "N more not shown · see <page>" (its link, from the
  // page): N is what the answer left out (`beyond`) plus the rows that do not fit at this size,
  // hidden from the end (`words(n, cut)` says it). Every list panel (incidents, on call) goes
  // through here, at every render (a refresh, a resize), so rows that come and go are counted
  // again each time.

  // Whether the list's last row shown ends below the list (read from the boxes, to the fraction of
  // a pixel: scrollHeight is rounded, and a row a pixel too low loses its rule under the next line).
  function overflows(list) {
    var bottom = list.getBoundingClientRect().bottom;
    for (var i = list.children.length - 1; i >= 0; i--) {
      if (!list.children[i].hidden) { return list.children[i].getBoundingClientRect().bottom > bottom + 0.1; }
    }
    return false;
  }

  function fit(name, list, count, beyond, words) {
    var more = sections[name].more;
    var cut = 0;
    function sayMore() {
      var n = beyond + cut;
      more.hidden = n <= 0;
      setText(more, n > 0 ? words(n, cut, more.getAttribute("href")) : "");
    }
    sayMore();
    while (cut < count && overflows(list)) {
      cut += 1;
      list.children[count - cut].hidden = true;
      sayMore();
    }
    return cut;
  }

  function element(tag, className, parent) {
    var made = document.createElement(tag);
    if (className) { made.className = className; }
    if (parent) { parent.appendChild(made); }
    return made;
  }

  // --- charts: one instance each, updated with setOption ------------------------------------------

  function remPx() { return parseFloat(window.getComputedStyle(document.documentElement).fontSize) || 16; }

  function chart(key, host) {
    if (!charts[key] && host && window.echarts) {
      charts[key] = window.echarts.init(host, null, { renderer: "canvas" });
    }
    return charts[key] || null;
  }

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(function () {
      Object.keys(charts).forEach(function (key) { charts[key].resize(); });
      render();
    }, 200);
  });

  // --- platform health --------------------------------------------------------------------------

  function renderHealth() {
    var data = freshness("health");
    if (!data) { return; }
    empty("health", "");
    var byKey = {};
    data.figures.forEach(function (f) { byKey[f.key] = f; });
    var root = sections.health.root;
    var nodes = byKey.nodes, ready = byKey.nodes_ready;
    fillTile(root, "nodes", ready, function (tile) {
      setText(tile.value, count(ready.value));
      setText(tile.unit, real(nodes.value) ? "/ " + count(nodes.value) : "");
      var down = real(nodes.value) && real(ready.value) ? nodes.value - ready.value : null;
      setText(tile.sub, down > 0 ? say("nodes_down", { n: down }) : say("all_nodes_ready"));
      return ready.value === null || nodes.value === null ? "absent" : (down > 0 ? "critical" : "ok");
    });
    var pods = byKey.pods, notReady = byKey.pods_not_ready;
    fillTile(root, "pods_not_ready", notReady, function (tile) {
      setText(tile.value, count(notReady.value));
      setText(tile.unit, "");
      setText(tile.sub, real(pods.value) ? say("pods_of", { n: count(pods.value) }) : "");
      return notReady.level;
    });
    ["cpu_utilization", "memory_utilization"].forEach(function (key) {
      var figure = byKey[key];
      fillTile(root, key, figure, function (tile) {
        var shownValue = percent(figure.value);
        setText(tile.value, shownValue[0]);
        setText(tile.unit, shownValue[1]);
        setText(tile.sub, "");
        if (tile.bar) { tile.bar.style.width = Math.max(0, Math.min(100, figure.value * 100)).toFixed(1) + "%"; }
        return figure.level;
      });
    });
  }

  function fillTile(root, key, figure, fill) {
    var host = root.querySelector('[data-figure="' + key + '"]');
    var tile = { value: host.querySelector("[data-value]"), unit: host.querySelector("[data-unit]"),
                 sub: host.querySelector("[data-sub]"), bar: host.querySelector("[data-bar]") };
    var level;
    if (!figure || figure.value === null) {
      setText(tile.value, "—");
      setText(tile.unit, "");
      setText(tile.sub, say("absent", { source: figure ? figure.source : "?" }));
      if (tile.bar) { tile.bar.style.width = "0%"; }
      level = "absent";
    } else {
      level = fill(tile);
    }
    host.setAttribute("data-level", levelOf(level) || level || "");
  }

  // --- live traffic -----------------------------------------------------------------------------

  function renderTraffic() {
    var data = freshness("traffic");
    if (!data) { return; }
    empty("traffic", data.present ? "" : say("no_istio"));
    setText(sections.traffic.note, say("last", { minutes: config.history_minutes }));
    var times = data.times.map(function (t) { return t * 1000; });
    data.figures.forEach(function (figure) {
      var host = sections.traffic.root.querySelector('[data-figure="' + figure.key + '"]');
      var value = host.querySelector("[data-value]"), unit = host.querySelector("[data-unit]");
      if (figure.key === "requests_per_s") {
        setText(value, rate(figure.value));
        setText(unit, say("per_second"));
      } else {
        var parts = figure.key === "error_rate" ? percent(figure.value) : millis(figure.value);
        setText(value, parts[0]);
        var missing = figure.key === "error_rate" ? say("no_traffic") : say("no_data");
        setText(unit, figure.value === null ? missing : parts[1]);
      }
      var level = figure.key === "requests_per_s" ? "" : levelOf(figure.level);
      host.setAttribute("data-level", level);
      var colour = level && level !== "ok" ? LEVEL_COLOURS[level] : TRAFFIC_COLOUR;
      var spark = chart("spark-" + figure.key, host.querySelector("[data-spark]"));
      if (!spark) { return; }
      var scale = figure.key === "error_rate" ? 100 : 1;
      spark.setOption({
        animation: false,
        grid: { left: 0, right: 0, top: 6, bottom: 2 },
        xAxis: { type: "time", show: false, min: times[0], max: times[times.length - 1] },
        yAxis: { type: "value", show: false, min: 0, max: headroom },
        tooltip: { show: false },
        series: [{
          id: "line", type: "line", connectNulls: false, smooth: 0.2,
          showSymbol: figure.points.filter(real).length < 3, symbolSize: remPx() * 0.4,
          lineStyle: { width: Math.max(1.5, remPx() * 0.12), color: colour },
          areaStyle: { color: colour, opacity: 0.13 },
          data: figure.points.map(function (v, i) { return [times[i], real(v) ? v * scale : null]; })
        }]
      });
    });
  }

  function headroom(extent) { return extent.max > 0 ? extent.max * 1.15 : 1; }

  // --- top services -----------------------------------------------------------------------------

  function renderServices() {
    var data = freshness("services");
    if (!data) { return; }
    empty("services", data.total ? "" : say("no_services"));
    setText(sections.services.note, data.total ? say("services_count", { n: data.total }) : "");
    ["by_traffic", "by_error_rate"].forEach(function (list) {
      var body = sections.services.root.querySelector('[data-list="' + list + '"] [data-rows]');
      var found = data[list];
      var made = rows(body, found.length, function () {
        var tr = element("tr");
        for (var c = 0; c < 4; c++) { element("td", "", tr); }
        return tr;
      });
      found.forEach(function (row, i) {
        var cells = made[i].children;
        setText(cells[0], row.name);
        cells[0].title = row.service;
        setText(cells[1], rate(row.requests_per_s));
        setText(cells[2], percent(row.error_rate).join(""));
        setText(cells[3], millis(row.latency_p99_ms).join(" ").trim());
        cells[2].className = row.error_level ? "lv-" + row.error_level : "";
        cells[3].className = row.latency_level ? "lv-" + row.latency_level : "";
      });
    });
  }

  // --- incidents and the banner -------------------------------------------------------------------

  function severityClass(severity) {
    var s = (severity || "").toLowerCase();
    return ["critical", "warning", "info", "page", "error"].indexOf(s) >= 0 ? s : "other";
  }

  function severityWord(severity) {
    return config.severities[(severity || "").toLowerCase()] || severity || "—";
  }

  // Who acted, in the wall's words: a group's ack link and an unnamed call are stored names
  // (app/alerts/actors.py), not words to show ("ack link" on a zh-CN wall).
  function actor(name) {
    var call = config.actors.call;
    if (name === config.actors.link) { return say("ack_link"); }
    if (name.length > call[0].length + call[1].length && name.indexOf(call[0]) === 0
        && name.slice(name.length - call[1].length) === call[1]) {
      return say("phone_call", { number: name.slice(call[0].length, name.length - call[1].length) });
    }
    return name;
  }

  function incidentMeta(incident) {
    var parts = [];
    if (incident.services.length) { parts.push(incident.services.join(", ")); }
    if (incident.status === "acknowledged" && incident.acknowledged_by) {
      parts.push(say("acked_by", { who: actor(incident.acknowledged_by) }));
    }
    if (incident.muted) {
      parts.push(say("muted"));  // nobody is paged for it: nobody is on call for it either
    } else {
      parts.push(incident.on_call.length ? say("on_call_for", { who: incident.on_call.join(", ") }) : say("nobody"));
    }
    return parts.join(" · ");
  }

  function renderIncidents() {
    var data = freshness("incidents");
    var list = sections.incidents.root.querySelector("[data-rows]");
    if (!data) { renderBanner(null); return; }
    empty("incidents", data.total_open ? "" : say("no_incidents"));
    sections.incidents.message.classList.toggle("good", !data.total_open);
    setText(sections.incidents.note, data.total_open ? say("incidents_count", { n: data.total_open, t: data.triggered }) : "");
    var made = rows(list, data.open.length, function () {
      var li = element("li");
      element("span", "badge sev", li);
      element("span", "title", li);
      element("span", "age", li);
      element("span", "meta", li);
      return li;
    });
    data.open.forEach(function (incident, i) {
      var li = made[i], parts = li.children;
      li.className = "sev-row-" + severityClass(incident.severity) + (incident.status === "acknowledged" ? " is-acked" : "");
      parts[0].className = "badge sev sev-" + severityClass(incident.severity);
      setText(parts[0], severityWord(incident.severity));
      setText(parts[1], incident.title);
      parts[1].setAttribute("data-started", incident.started_at);
      setText(parts[3], incidentMeta(incident));
    });
    fit("incidents", list, data.open.length, data.total_open - data.open.length, function (n, cut, where) {
      return say("more_incidents", { n: n, where: where });
    });
    tickAges();
    renderBanner(data);
  }

  function tickAges() {
    var list = sections.incidents.root.querySelector("[data-rows]");
    for (var i = 0; i < list.children.length; i++) {
      var li = list.children[i];
      if (li.hidden) { continue; }
      var started = millisOf(li.children[1].getAttribute("data-started"));
      setText(li.children[2], started === null ? "—" : span((serverNow() - started) / 1000));
    }
  }

  var banner = {
    root: document.getElementById("banner"),
    title: document.querySelector("#banner [data-title]"),
    meta: document.querySelector("#banner [data-meta]"),
    more: document.querySelector("#banner [data-more]")
  };

  function renderBanner(data) {
    var critical = data ? data.critical_unacknowledged : [];
    banner.root.classList.toggle("hidden", !critical.length);
    if (!critical.length) { return; }
    var first = critical[0];
    setText(banner.title, first.title);
    var started = millisOf(first.started_at);
    var age = started === null ? "" : say("open_for", { span: span((serverNow() - started) / 1000) });
    setText(banner.meta, [incidentMeta(first), age].filter(Boolean).join(" · "));
    var others = critical.length - 1;
    setText(banner.more, others > 0 ? say("banner_more", { n: others }) : "");
  }

  // --- on call ------------------------------------------------------------------------------------

  // Roomy (the person in large type, until when, who is next) while every schedule fits so; one
  // line each otherwise (schedule, person, until when), and when even that does not fit, the panel
  // takes the left of the trends' row too (the trends keep the middle); what still cannot be shown
  // is counted. Measured at every render: schedules come and go with a reload of the configuration.
  var grid = document.getElementById("main");

  function renderOnCall() {
    var data = freshness("oncall");
    if (!data) { return; }
    var count = data.schedules.length;
    var list = sections.oncall.root.querySelector("[data-rows]");
    empty("oncall", count ? "" : say("no_schedules"));
    var made = rows(list, count, function () {
      var li = element("li");
      element("span", "schedule", li);
      element("span", "until", li);
      element("span", "who", li);
      element("span", "next", li);
      return li;
    });
    data.schedules.forEach(function (row, i) {
      var parts = made[i].children;
      setText(parts[0], row.schedule + (row.source === "override" ? " · " + say("override") : ""));
      var until = millisOf(row.until);
      setText(parts[1], until === null ? "" : say("until", { time: stamp(until) }));
      setText(parts[2], row.user || say("nobody"));
      parts[2].className = row.user ? "who" : "who nobody";
      var next = millisOf(row.next_at);
      setText(parts[3], row.next_user && next !== null
        ? say("next", { who: row.next_user, time: stamp(next) }) : "");
    });
    var wasTall = grid.classList.contains("oncall-tall");
    sections.oncall.more.hidden = true;  // measured without last time's "more" line
    grid.classList.remove("oncall-tall");
    list.classList.remove("compact");
    list.classList.toggle("compact", overflows(list));
    grid.classList.toggle("oncall-tall", overflows(list));
    function uncovered(cut) {
      return data.schedules.slice(count - cut).filter(function (row) { return !row.user; })
        .map(function (row) { return row.schedule; });
    }
    var cut = fit("oncall", list, count, 0, function (n, hidden, where) {  // a gap in the cover is never out of sight: named
      var nobody = uncovered(hidden);
      if (!nobody.length) { return say("more_schedules", { n: n, where: where }); }
      var names = nobody.slice(0, NAMED).join(say("name_sep"));
      if (nobody.length > NAMED) { names = say("names_more", { names: names, m: nobody.length }); }
      return say("more_schedules_nobody", { n: n, names: names, where: where });
    });
    sections.oncall.more.classList.toggle("nobody", uncovered(cut).length > 0);
    if (grid.classList.contains("oncall-tall") !== wasTall) {
      Object.keys(charts).forEach(function (key) { charts[key].resize(); });  // the trends moved
    }
  }

  // --- the dependency graph -----------------------------------------------------------------------

  function renderGraph() {
    var data = freshness("graph");
    if (!data) { return; }
    empty("graph", data.nodes.length ? "" : say("no_graph"));
    setText(sections.graph.note, data.hidden > 0 ? say("graph_hidden", { n: data.hidden }) : "");
    var graph = chart("graph", sections.graph.root.querySelector("[data-graph]"));
    if (!graph) { return; }
    var rem = remPx();
    var busiest = data.nodes.reduce(function (m, n) { return Math.max(m, n.requests_per_s); }, 0) || 1;
    var heaviest = data.edges.reduce(function (m, e) { return Math.max(m, e.requests_per_s); }, 0) || 1;
    graph.setOption({
      animation: false,
      tooltip: { show: false },
      series: [{
        id: "graph", type: "graph", layout: "none", roam: false, silent: true,
        left: rem * 5.5, right: rem * 5.5, top: rem * 1.5, bottom: rem * 3.6,
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: rem * 0.55,
        label: { show: true, position: "bottom", color: "#e6edf3", fontSize: rem * 0.8, lineHeight: rem * 0.95 },
        data: data.nodes.map(function (n) {
          var colour = n.level && n.level !== "ok" ? LEVEL_COLOURS[n.level] : TRAFFIC_COLOUR;
          return {
            id: n.id, name: n.id, x: n.x, y: n.y,
            symbolSize: rem * (1.1 + 1.5 * Math.sqrt(n.requests_per_s / busiest)),
            itemStyle: { color: colour, borderColor: "#0b0f17", borderWidth: 2, shadowBlur: rem * 0.6, shadowColor: colour },
            label: { formatter: n.id.split(".")[0] + (n.requests_per_s > 0 ? "\n" + rate(n.requests_per_s) + " " +
              say("per_second") + (real(n.error_rate) && n.error_rate > 0 ? " · " + percent(n.error_rate).join("") : "") : "") }
          };
        }),
        links: data.edges.map(function (e) {
          var colour = e.level ? LEVEL_COLOURS[e.level] : "#4b5a70";
          return {
            source: e.source, target: e.target,
            lineStyle: { color: colour, opacity: e.level === "warning" || e.level === "critical" ? 0.95 : 0.55, curveness: 0.12,
                         width: Math.max(1, rem * (0.08 + 0.3 * Math.sqrt(e.requests_per_s / heaviest))) }
          };
        })
      }]
    }, { replaceMerge: ["series"] });
  }

  // --- 30-day trends -------------------------------------------------------------------------------

  function axisStyle(rem) {
    return {
      axisLabel: { color: "#8d96a0", fontSize: rem * 0.72 },
      axisLine: { lineStyle: { color: "#263041" } },
      splitLine: { lineStyle: { color: "#1c2533" } }
    };
  }

  function renderTrends() {
    var data = freshness("trends");
    if (!data) { return; }
    var has = Boolean(data.platform) || data.services.length > 0;
    empty("trends", has ? "" : say("no_trends"));
    setText(sections.trends.note, say("trends_source"));
    var rem = remPx();
    var days = data.days.map(function (d) { return d.slice(5); });
    var style = axisStyle(rem);
    var legend = { top: 0, right: 0, textStyle: { color: "#c9d4e3", fontSize: rem * 0.72 }, itemWidth: rem * 0.9, itemHeight: rem * 0.5 };
    var sideLegend = { orient: "vertical", right: 0, top: "middle", textStyle: legend.textStyle,
                       itemWidth: legend.itemWidth, itemHeight: legend.itemHeight, itemGap: rem * 0.45 };
    var platform = data.platform;
    var platformNote = sections.trends.root.querySelector('[data-trend-note="traffic"]');
    var trafficHost = sections.trends.root.querySelector('[data-trend="traffic"]');
    platformNote.classList.toggle("shown", has && !platform);  // never an empty frame without a word
    trafficHost.classList.toggle("veiled", has && !platform);
    var traffic = chart("trend-traffic", trafficHost);
    if (traffic) {
      traffic.setOption({
        animation: false, legend: legend, tooltip: { show: false },
        grid: { left: rem * 0.4, right: rem * 0.4, top: rem * 1.7, bottom: rem * 0.2, containLabel: true },
        xAxis: { type: "category", data: days, axisLabel: style.axisLabel, axisLine: style.axisLine, axisTick: { show: false } },
        yAxis: [
          { type: "value", axisLabel: { color: style.axisLabel.color, fontSize: style.axisLabel.fontSize, formatter: compact },
            splitLine: style.splitLine },
          { type: "value", axisLabel: { color: style.axisLabel.color, fontSize: style.axisLabel.fontSize, formatter: "{value}%" },
            splitLine: { show: false } }
        ],
        series: [
          { id: "requests", name: say("daily_requests"), type: "bar", barMaxWidth: rem * 0.9,
            itemStyle: { color: TRAFFIC_COLOUR, borderRadius: [3, 3, 0, 0] },
            data: platform ? platform.requests.map(function (v) { return real(v) ? v : null; }) : [] },
          { id: "errors", name: say("error_rate"), type: "line", yAxisIndex: 1, showSymbol: false, connectNulls: false,
            lineStyle: { width: rem * 0.12, color: LEVEL_COLOURS.critical }, itemStyle: { color: LEVEL_COLOURS.critical },
            data: platform ? platform.error_rate.map(function (v) { return real(v) ? Math.round(v * 100000) / 1000 : null; }) : [] }
        ]
      }, { replaceMerge: ["series"] });
    }
    var latency = chart("trend-latency", sections.trends.root.querySelector('[data-trend="latency"]'));
    if (latency) {
      var lines = [];
      if (platform) {
        lines.push({ id: "platform", name: say("platform"), type: "line", showSymbol: false, connectNulls: false,
          lineStyle: { width: rem * 0.2, color: "#e6edf3" }, itemStyle: { color: "#e6edf3" }, z: 3,
          data: platform.latency_p99_ms.map(function (v) { return real(v) ? Math.round(v * 10) / 10 : null; }) });
      }
      data.services.forEach(function (line, i) {
        var colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
        lines.push({ id: "service-" + line.entity, name: line.name, type: "line", showSymbol: false, connectNulls: false,
          lineStyle: { width: rem * 0.1, color: colour }, itemStyle: { color: colour },
          data: line.latency_p99_ms.map(function (v) { return real(v) ? Math.round(v * 10) / 10 : null; }) });
      });
      latency.setOption({
        animation: false, legend: sideLegend, tooltip: { show: false },
        title: { text: say("daily_p99"), left: 0, top: 0, textStyle: { color: "#c9d4e3", fontSize: rem * 0.72, fontWeight: "normal" } },
        grid: { left: rem * 0.4, right: rem * 9.5, top: rem * 1.7, bottom: rem * 0.2, containLabel: true },
        xAxis: { type: "category", data: days, axisLabel: style.axisLabel, axisLine: style.axisLine, axisTick: { show: false } },
        yAxis: { type: "value", name: "", axisLabel: { color: style.axisLabel.color, fontSize: style.axisLabel.fontSize, formatter: "{value} ms" },
                 splitLine: style.splitLine },
        series: lines
      }, { replaceMerge: ["series"] });
    }
  }

  // --- the header ---------------------------------------------------------------------------------

  var header = {
    clock: document.getElementById("clock"),
    zone: document.getElementById("zone"),
    date: document.getElementById("date"),
    updated: document.getElementById("updated"),
    summary: document.getElementById("summary"),
    summaryText: document.querySelector("#summary [data-summary]")
  };

  function renderSummary() {
    var incidents = shown("incidents");
    if (!incidents) {  // nothing yet: say why rather than "fetching" for ever (no token, Panorama away)
      if (state.failure) {
        header.summary.setAttribute("data-level", "warning");
        setText(header.summaryText, state.failure);
      }
      return;
    }
    var critical = incidents.critical_unacknowledged.length;
    // "All clear" only when every panel has its data: a panel that cannot get it (Prometheus down)
    // is not a clear wall, and the count says so where nobody can miss it
    var failing = PANELS.filter(function (name) { return Boolean(problemText(name)); }).length;
    var level = critical ? "critical" : (incidents.total_open || failing ? "warning" : "ok");
    header.summary.setAttribute("data-level", level);
    setText(header.summaryText, critical ? say("summary_critical", { n: critical })
      : incidents.total_open ? say("summary_open", { n: incidents.total_open })
      : failing ? say("summary_failing", { n: failing }) : say("all_ok"));
  }

  function tick() {
    var now = new Date(serverNow());
    setText(header.clock, clockFormat.format(now));
    var zone = config.zone.split("{offset}").join(offsetAt(now.getTime()));
    if (header.zone.textContent !== zone) {
      setText(header.zone, zone);
      header.zone.title = config.zone_title.split("{zone}").join(zone);
    }
    setText(header.date, dateFormat.format(now));
    if (state.updatedAt !== null) {
      setText(header.updated, say("updated", { time: clockFormat.format(new Date(state.updatedAt)) }));
    } else if (state.failure) {
      setText(header.updated, say("no_data"));
    }
    header.updated.classList.toggle("is-stale", Boolean(state.failure));
    PANELS.forEach(function (name) { if (problemText(name)) { freshness(name); } });
    tickAges();
    if (shown("incidents")) { renderBanner(shown("incidents")); }
    maybeReload();
  }

  // --- polling --------------------------------------------------------------------------------------

  function render() {
    renderHealth();
    renderTraffic();
    renderServices();
    renderIncidents();
    renderOnCall();
    renderGraph();
    renderTrends();
    renderSummary();
  }

  function failureText(problem) {
    if (problem && problem.status === 401 && !state.token) { return say("token_missing"); }
    if (problem && (problem.status === 401 || problem.status === 403)) { return say("token_refused"); }
    if (problem && problem.status) { return say("server_error", { status: problem.status }); }
    if (problem && problem.name === "AbortError") { return say("timeout", { seconds: Math.round(timeoutMs() / 1000) }); }
    return say("unreachable");
  }

  function timeoutMs() { return Math.max(3000, Math.min(30000, config.refresh_seconds * 1000, (config.timeout_seconds + 5) * 1000)); }

  function poll() {
    state.polling = null;
    var controller = new AbortController();
    var timer = window.setTimeout(function () { controller.abort(); }, timeoutMs());
    var headers = { Accept: "application/json" };
    if (state.token) { headers.Authorization = "Bearer " + state.token; }
    window.fetch(config.api, { headers: headers, cache: "no-store", credentials: "omit", signal: controller.signal })
      .then(function (answer) {
        if (!answer.ok) { throw { status: answer.status }; }
        return answer.json();
      })
      .then(function (body) {
        var made = millisOf(body.generated_at);
        if (made !== null) { state.skew = made - Date.now(); }
        state.failure = null;
        state.updatedAt = made;
        if (state.reloadAt === null) { state.reloadAt = millisOf(body.reload_at); }  // this page's quiet hour
        PANELS.forEach(function (name) { accept(name, body.panels[name]); });
      })
      .catch(function (problem) {
        state.failure = failureText(problem);
      })
      .then(function () {
        window.clearTimeout(timer);
        if (window.performance && window.performance.clearResourceTimings) {
          window.performance.clearResourceTimings();  // one entry per request would pile up for weeks
        }
        render();
        tick();
        state.polling = window.setTimeout(poll, config.refresh_seconds * 1000);
      });
  }

  // --- the daily reload, only when Panorama answers ---------------------------------------------------

  var reloading = false;
  function maybeReload() {
    if (reloading || state.reloadAt === null || state.failure || serverNow() < state.reloadAt) { return; }
    reloading = true;
    window.fetch(config.page, { cache: "no-store", credentials: "omit" })
      .then(function (answer) {
        if (answer.ok) { window.location.reload(); } else { reloading = false; }
      })
      .catch(function () { reloading = false; });
  }

  tick();
  window.setInterval(tick, 1000);
  poll();
})();
