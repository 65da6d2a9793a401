/* The KPI board (issue 6). Plain JavaScript, no dependencies, no external URL.
 *
 * The page carries no data. A bearer token comes from the URL fragment
 * (#token=..., never sent to a server; removed from the address bar and kept
 * in this tab's sessionStorage) or from the sign-in box; every figure is read
 * from the /v1/kpi APIs with it. Charts are inline SVG drawn here. Text is only
 * ever set with textContent / setAttribute: no HTML is built from data.
 *
 * Drill-down links are fragment links too: #explain=KEY:PERIOD:START[:missed]
 * opens the items and events behind one figure.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "partnerledger.board.token";
  var SVG_NS = "http://www.w3.org/2000/svg"; // an XML namespace name, never fetched
  var KPIS = [
    { key: "on_time_delivery", kind: "ratio", up: true },
    { key: "complaint_rate", kind: "ratio", up: false },
    { key: "satisfaction", kind: "score", up: true },
    { key: "compliance", kind: "ratio", up: true },
    { key: "task_completion", kind: "ratio", up: true },
    { key: "failure_rate", kind: "ratio", up: false },
    { key: "incidents", kind: "count", up: false }
  ];
  var MONTHS_EN = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var BREACHES_SHOWN = 12;

  var state = {
    lang: document.body.getAttribute("data-lang") === "zh" ? "zh" : "en",
    labels: {},
    token: null,
    memoryToken: null,
    today: null,
    zone: "UTC",
    months: [],
    month: "",
    quarter: "",
    catalogue: {},
    partners: {},
    projects: {},
    loaded: false
  };

  // -- small helpers ------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function meta(name) {
    var node = document.querySelector('meta[name="' + name + '"]');
    return node ? node.getAttribute("content") : null;
  }

  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(state.labels, key) ? state.labels[key] : key;
    if (values) {
      Object.keys(values).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(values[name]));
      });
    }
    return text;
  }

  function append(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) {
        return;
      }
      if (Array.isArray(child)) {
        append(node, child);
      } else {
        node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
      }
    });
    return node;
  }

  function setAttrs(node, attrs) {
    Object.keys(attrs || {}).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (name === "text") {
        node.textContent = String(value);
      } else {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    });
    return node;
  }

  function el(tag, attrs) {
    var node = setAttrs(document.createElement(tag), attrs);
    return append(node, Array.prototype.slice.call(arguments, 2));
  }

  function svg(tag, attrs) {
    var node = setAttrs(document.createElementNS(SVG_NS, tag), attrs);
    return append(node, Array.prototype.slice.call(arguments, 2));
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
    return node;
  }

  function unique(list) {
    return list.filter(function (item, i) {
      return list.indexOf(item) === i;
    });
  }

  function shortId(id) {
    return String(id).slice(0, 8);
  }

  function locale() {
    return state.lang === "zh" ? "zh-CN" : "en-GB";
  }

  // -- periods ------------------------------------------------------------------

  function ym(year, month) {
    return year + "-" + (month < 10 ? "0" : "") + month;
  }

  function addMonths(text, delta) {
    var year = Number(text.slice(0, 4));
    var month = Number(text.slice(5, 7)) - 1 + delta;
    year += Math.floor(month / 12);
    month = ((month % 12) + 12) % 12;
    return ym(year, month + 1);
  }

  function quarterOf(text) {
    return text.slice(0, 4) + "-Q" + (Math.floor((Number(text.slice(5, 7)) - 1) / 3) + 1);
  }

  function monthLabel(text) {
    var year = text.slice(0, 4);
    var month = Number(text.slice(5, 7));
    return state.lang === "zh" ? year + "年" + month + "月" : MONTHS_EN[month - 1] + " " + year;
  }

  function quarterLabel(text) {
    var year = text.slice(0, 4);
    var q = text.slice(-1);
    return state.lang === "zh" ? year + "年第" + q + "季度" : "Q" + q + " " + year;
  }

  function periodLabel(period, start) {
    if (period === "quarter") {
      return quarterLabel(/Q/.test(start) ? start : quarterOf(start));
    }
    return period === "all" ? "" : monthLabel(start);
  }

  function moment(iso) {
    if (!iso) {
      return "";
    }
    try {
      var parts = new Intl.DateTimeFormat("en-CA", {
        timeZone: state.zone,
        year: "numeric",
        month: "2-digit",
        day: "2-digit",
        hour: "2-digit",
        minute: "2-digit",
        hourCycle: "h23"
      }).formatToParts(new Date(iso));
      var get = function (type) {
        var found = parts.filter(function (p) {
          return p.type === type;
        });
        return found.length ? found[0].value : "";
      };
      return get("year") + "-" + get("month") + "-" + get("day") + " " + get("hour") + ":" + get("minute");
    } catch (err) {
      return String(iso).replace("T", " ").slice(0, 16);
    }
  }

  // -- numbers ------------------------------------------------------------------

  function kpiOf(key) {
    for (var i = 0; i < KPIS.length; i += 1) {
      if (KPIS[i].key === key) {
        return KPIS[i];
      }
    }
    var info = state.catalogue[key];
    var kind = info && info.aggregate === "ratio" ? "ratio" : info && info.aggregate === "count" ? "count" : "number";
    return { key: key, kind: kind, up: info ? info.higher_is_better : true };
  }

  function fmt(kind, value) {
    if (value === null || value === undefined) {
      return "—";
    }
    if (kind === "ratio") {
      return (value * 100).toFixed(1) + "%";
    }
    if (kind === "score") {
      return value.toFixed(1);
    }
    if (kind === "count") {
      return String(Math.round(value));
    }
    return String(Math.round(value * 100) / 100);
  }

  function money(value) {
    if (value === null || value === undefined) {
      return "—";
    }
    try {
      return new Intl.NumberFormat(locale(), {
        style: "currency",
        currency: "CNY",
        currencyDisplay: "narrowSymbol",
        maximumFractionDigits: 0
      }).format(value);
    } catch (err) {
      return String(Math.round(value));
    }
  }

  function kpiTitle(key) {
    var label = "kpi_" + key;
    if (Object.prototype.hasOwnProperty.call(state.labels, label)) {
      return state.labels[label];
    }
    var info = state.catalogue[key];
    if (info) {
      return state.lang === "zh" ? info.title_zh : info.title;
    }
    return key;
  }

  // -- the token ----------------------------------------------------------------

  function storeToken(token) {
    state.memoryToken = token;
    try {
      if (token) {
        window.sessionStorage.setItem(TOKEN_KEY, token);
      } else {
        window.sessionStorage.removeItem(TOKEN_KEY);
      }
    } catch (err) {
      /* storage refused (private mode): the token lives in memory only */
    }
  }

  function storedToken() {
    try {
      return window.sessionStorage.getItem(TOKEN_KEY) || state.memoryToken;
    } catch (err) {
      return state.memoryToken;
    }
  }

  function fragment() {
    return new URLSearchParams(window.location.hash.replace(/^#/, ""));
  }

  /* A token in the fragment is taken, and the fragment rewritten without it;
   * true when there was one. */
  function takeTokenFromFragment() {
    var params = fragment();
    var token = params.get("token");
    if (token === null) {
      return false;
    }
    storeToken(token.trim());
    params.delete("token");
    var rest = params.toString();
    window.history.replaceState(
      null,
      "",
      window.location.pathname + window.location.search + (rest ? "#" + rest : "")
    );
    return true;
  }

  // -- the API ------------------------------------------------------------------

  function BoardError(kind, status, detail, path) {
    this.kind = kind;
    this.status = status;
    this.detail = detail;
    this.path = path;
  }

  function api(path) {
    return fetch(path, {
      headers: { Authorization: "Bearer " + state.token, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      redirect: "error"
    }).then(
      function (response) {
        if (response.ok) {
          return response.json();
        }
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (body) {
            var detail = (body && (body.detail || body.title)) || "";
            var kind = response.status === 401 ? "auth" : response.status === 403 ? "denied" : "http";
            throw new BoardError(kind, response.status, detail, path);
          });
      },
      function (err) {
        throw new BoardError("network", 0, String((err && err.message) || err), path);
      }
    );
  }

  function errorText(err) {
    if (!(err instanceof BoardError)) {
      return String(err);
    }
    if (err.kind === "auth") {
      return t("err_401");
    }
    if (err.kind === "denied") {
      return t("err_403", { detail: err.detail || "forbidden" });
    }
    if (err.kind === "network") {
      return t("err_network", { detail: err.detail });
    }
    return t("err_http", { status: err.status, path: err.path });
  }

  // -- screens ------------------------------------------------------------------

  function setState(name) {
    document.body.setAttribute("data-state", name);
  }

  function message(text, tone) {
    var box = $("message");
    if (!text) {
      box.hidden = true;
      box.textContent = "";
      return;
    }
    box.textContent = text;
    box.className = "message " + (tone || "info");
    box.hidden = false;
  }

  function showSignIn(reason, tone) {
    $("board").hidden = true;
    $("drill").hidden = true;
    document.body.classList.remove("drilling");
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    message(reason || "", tone || "info");
    setState(tone === "error" ? "denied" : "signin");
    $("token-input").focus();
  }

  function refused(err) {
    if (err.kind === "auth") {
      storeToken(null);
      state.token = null;
      showSignIn(errorText(err), "error");
      return true;
    }
    if (err.kind === "denied") {
      showSignIn(errorText(err), "error");
      return true;
    }
    return false;
  }

  // -- headline tiles -----------------------------------------------------------

  function explainHref(key, period, start, missed) {
    return "#explain=" + [key, period, start].join(":") + (missed ? ":missed" : "");
  }

  function counts(kind, row) {
    if (!row || !row.items) {
      return t("no_data");
    }
    if (kind === "ratio" && row.denominator !== null) {
      return fmt("count", row.numerator) + " / " + fmt("count", row.denominator);
    }
    return kind === "count" ? null : t("n_items", { n: row.items });
  }

  function shortMonth(text) {
    var month = Number(text.slice(5, 7));
    return state.lang === "zh" ? month + "月" : MONTHS_EN[month - 1];
  }

  /* The change from the month before: an arrow for the direction, green
   * when it is an improvement (by the KPI's higher_is_better). */
  function delta(kpi, row, previous) {
    if (!row || !previous || row.value === null || previous.value === null) {
      return null;
    }
    var diff = row.value - previous.value;
    var size = Math.abs(diff);
    var text;
    if (kpi.kind === "ratio") {
      text = (size * 100).toFixed(1) + " " + t("points");
    } else if (kpi.kind === "score") {
      text = size.toFixed(1);
    } else {
      text = String(Math.round(size));
    }
    var tone = diff === 0 ? "flat" : (diff > 0) === kpi.up ? "good" : "bad";
    var arrow = diff === 0 ? "=" : diff > 0 ? "▲" : "▼";
    var month = String(previous.period_start).slice(0, 7);
    return el(
      "span",
      { class: "delta " + tone, title: monthLabel(month) + ": " + fmt(kpi.kind, previous.value) },
      arrow + " " + text + " " + t("vs_month", { m: shortMonth(month) })
    );
  }

  function renderTiles(monthly, quarterly) {
    var box = clear($("tiles"));
    KPIS.forEach(function (kpi, i) {
      var rows = monthly[i] ? monthly[i].rows : [];
      var row = rows.length ? rows[rows.length - 1] : null;
      var previous = rows.length > 1 ? rows[rows.length - 2] : null;
      var qrow = quarterly[i] && quarterly[i].rows.length ? quarterly[i].rows[0] : null;
      var info = state.catalogue[kpi.key];
      var value = row ? row.value : null;
      var qvalue = qrow ? qrow.value : null;
      box.appendChild(
        el(
          "div",
          { class: "tile", id: "tile-" + kpi.key, "data-metric": kpi.key },
          el(
            "a",
            {
              class: "tile-main",
              href: explainHref(kpi.key, "month", state.month),
              title: info ? info.formula : null
            },
            el("span", { class: "tile-label", id: "tile-" + kpi.key + "-label" }, kpiTitle(kpi.key)),
            el(
              "span",
              {
                class: "tile-value" + (value === null ? " empty" : ""),
                id: "tile-" + kpi.key + "-month"
              },
              fmt(kpi.kind, value),
              kpi.kind === "score" && value !== null ? el("small", null, " " + t("out_of_5")) : null
            ),
            el(
              "span",
              { class: "tile-counts" },
              [t("this_month"), counts(kpi.kind, row)].filter(Boolean).join(" · ")
            ),
            delta(kpi, row, previous)
          ),
          el(
            "a",
            {
              class: "tile-quarter",
              href: explainHref(kpi.key, "quarter", state.quarter)
            },
            el("span", null, quarterLabel(state.quarter)),
            el(
              "strong",
              {
                id: "tile-" + kpi.key + "-quarter",
                class: qvalue === null ? "empty" : null
              },
              fmt(kpi.kind, qvalue)
            )
          )
        )
      );
    });
  }

  // -- trends -------------------------------------------------------------------

  function scaleOf(kpi, values) {
    if (kpi.kind === "ratio") {
      return [0, 1];
    }
    if (kpi.kind === "score") {
      return [1, 5];
    }
    var top = 1;
    values.forEach(function (v) {
      if (v !== null && v > top) {
        top = v;
      }
    });
    return [0, top];
  }

  /* A line chart of values (null = a gap), each point a link to its explain
   * when it has an href; optional labels for the top and bottom of the scale. */
  function sparkline(kpi, points, opts) {
    var width = opts.width;
    var height = opts.height;
    var pad = opts.pad;
    var left = opts.axis ? pad + 26 : pad;
    var domain = opts.domain;
    var n = points.length;
    var x = function (i) {
      return n > 1 ? left + (i * (width - left - pad)) / (n - 1) : (left + width - pad) / 2;
    };
    var y = function (v) {
      var span = domain[1] - domain[0] || 1;
      var clamped = Math.min(Math.max(v, domain[0]), domain[1]);
      return height - pad - ((clamped - domain[0]) / span) * (height - 2 * pad);
    };
    var chart = svg("svg", {
      class: "spark",
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-label": opts.label,
      id: opts.id
    });
    [0, 0.5, 1].forEach(function (f) {
      var gy = pad + f * (height - 2 * pad);
      chart.appendChild(svg("line", { class: "grid", x1: left, x2: width - pad, y1: gy, y2: gy }));
    });
    if (opts.axis) {
      chart.appendChild(svg("text", { class: "axis", x: left - 5, y: pad + 3, text: opts.axis[0] }));
      chart.appendChild(
        svg("text", { class: "axis", x: left - 5, y: height - pad + 3, text: opts.axis[1] })
      );
    }
    var segment = [];
    var segments = [];
    points.forEach(function (p, i) {
      if (p.value === null || p.value === undefined) {
        if (segment.length) {
          segments.push(segment);
        }
        segment = [];
      } else {
        segment.push([x(i), y(p.value)]);
      }
    });
    if (segment.length) {
      segments.push(segment);
    }
    var base = height - pad;
    segments.forEach(function (s) {
      if (s.length < 2) {
        return;
      }
      var line = s.map(function (xy) {
        return xy[0].toFixed(1) + "," + xy[1].toFixed(1);
      });
      if (opts.area) {
        var area = [s[0][0].toFixed(1) + "," + base].concat(line, [
          s[s.length - 1][0].toFixed(1) + "," + base
        ]);
        chart.appendChild(svg("polygon", { class: "area", points: area.join(" ") }));
      }
      chart.appendChild(svg("polyline", { class: "line", points: line.join(" ") }));
    });
    points.forEach(function (p, i) {
      if (p.value === null || p.value === undefined) {
        return;
      }
      var last = i === n - 1;
      var dot = svg("circle", {
        class: "dot" + (last ? " last" : ""),
        cx: x(i).toFixed(1),
        cy: y(p.value).toFixed(1),
        r: opts.radius + (last ? 1 : 0)
      });
      dot.appendChild(svg("title", { text: p.label + ": " + fmt(kpi.kind, p.value) }));
      if (p.href) {
        chart.appendChild(
          svg("a", { href: p.href, class: "point", "data-period": p.period, "aria-label": p.label }, dot)
        );
      } else {
        chart.appendChild(dot);
      }
    });
    return chart;
  }

  function axisOf(kpi, domain) {
    if (kpi.kind === "ratio") {
      return ["100%", "0%"];
    }
    return [String(domain[1]), String(domain[0])];
  }

  function renderTrends(monthly) {
    var box = clear($("trends"));
    KPIS.forEach(function (kpi, i) {
      var rows = monthly[i] ? monthly[i].rows : [];
      var values = rows.map(function (r) {
        return r.value;
      });
      var points = rows.map(function (r) {
        var month = String(r.period_start).slice(0, 7);
        return {
          value: r.value,
          period: month,
          label: monthLabel(month),
          href: explainHref(kpi.key, "month", month)
        };
      });
      var latest = null;
      values.forEach(function (v) {
        if (v !== null) {
          latest = v;
        }
      });
      box.appendChild(
        el(
          "div",
          { class: "trend card", id: "trend-" + kpi.key },
          el(
            "div",
            { class: "trend-head" },
            el("span", { class: "trend-title" }, kpiTitle(kpi.key)),
            el("span", { class: "trend-latest" }, fmt(kpi.kind, latest))
          ),
          sparkline(kpi, points, {
            width: 300,
            height: 80,
            pad: 7,
            radius: 3,
            domain: scaleOf(kpi, values),
            axis: axisOf(kpi, scaleOf(kpi, values)),
            area: true,
            label: kpiTitle(kpi.key),
            id: "spark-" + kpi.key
          }),
          el(
            "div",
            { class: "trend-axis" },
            el("span", null, points.length ? points[0].label : ""),
            el("span", null, points.length ? points[points.length - 1].label : "")
          )
        )
      );
    });
  }

  // -- scorecards ---------------------------------------------------------------

  function standingClass(standings, name) {
    var ordered = (standings || []).slice().sort(function (a, b) {
      return b.min - a.min;
    });
    for (var i = 0; i < ordered.length; i += 1) {
      if (ordered[i].name === name) {
        return "standing-" + Math.min(i, 3);
      }
    }
    var known = { Excellent: 0, Good: 1, Watch: 2, Probation: 3 };
    return "standing-" + (Object.prototype.hasOwnProperty.call(known, name) ? known[name] : 2);
  }

  function renderScorecards(result) {
    var box = clear($("scorecards"));
    var note = $("scorecards-note");
    note.textContent = "";
    if (result.error && result.error.status !== 404) {
      box.appendChild(el("p", { class: "empty-note error" }, errorText(result.error)));
      return;
    }
    var data = result.value || {};
    var items = data.items || [];
    if (!items.length) {
      box.appendChild(el("p", { class: "empty-note", id: "scorecards-empty" }, t("no_scorecards")));
      return;
    }
    note.textContent = t("formula_version", { v: data.active_version || "", n: items.length });
    var body = el("tbody");
    items.forEach(function (item) {
      var periods = item.periods || [];
      var scores = {};
      periods.forEach(function (p) {
        scores[String(p.period_start).slice(0, 7)] = p.score;
      });
      var name = item.name || state.partners[item.partner_id] || shortId(item.partner_id);
      var standing = state.lang === "zh" && item.standing_zh ? item.standing_zh : item.standing;
      var latest = periods.length ? String(periods[periods.length - 1].period_start).slice(0, 7) : "";
      body.appendChild(
        el(
          "tr",
          { "data-partner": item.partner_id },
          el("td", { class: "name" }, name),
          el(
            "td",
            null,
            el("span", { class: "chip " + standingClass(data.standings, item.standing) }, standing)
          ),
          el(
            "td",
            { class: "num overall" },
            el("strong", null, item.overall.toFixed(1)),
            el(
              "span",
              { class: "bar" },
              svg(
                "svg",
                { viewBox: "0 0 100 6", class: "bar-svg", "aria-hidden": "true" },
                svg("rect", { class: "bar-bg", x: 0, y: 0, width: 100, height: 6, rx: 3 }),
                svg("rect", {
                  class: "bar-fg " + standingClass(data.standings, item.standing),
                  x: 0,
                  y: 0,
                  width: Math.max(0, Math.min(100, item.overall)).toFixed(1),
                  height: 6,
                  rx: 3
                })
              )
            )
          ),
          el(
            "td",
            { class: "mini" },
            // The board's twelve months, so every partner's line has the same axis.
            sparkline(
              { kind: "number" },
              state.months.map(function (month) {
                var score = Object.prototype.hasOwnProperty.call(scores, month) ? scores[month] : null;
                return { value: score, period: month, label: monthLabel(month), href: null };
              }),
              { width: 132, height: 28, pad: 4, radius: 2, domain: [0, 100], label: name }
            )
          ),
          el("td", { class: "num" }, latest ? monthLabel(latest) : "—")
        )
      );
    });
    box.appendChild(
      el(
        "table",
        { class: "table", id: "scorecards-table" },
        el(
          "thead",
          null,
          el(
            "tr",
            null,
            el("th", null, t("col_partner")),
            el("th", null, t("col_standing")),
            el("th", { class: "num" }, t("col_overall")),
            el("th", null, t("col_trend")),
            el("th", { class: "num" }, t("col_latest"))
          )
        ),
        body
      )
    );
  }

  // -- compliance breaches ------------------------------------------------------

  function obligation(label) {
    return label ? t("ob_" + label) : "—";
  }

  function detailText(detail) {
    if (!detail) {
      return null;
    }
    var key = "detail_" + detail;
    return Object.prototype.hasOwnProperty.call(state.labels, key) ? state.labels[key] : detail;
  }

  function renderBreaches(result) {
    var list = clear($("breaches"));
    var note = $("breaches-note");
    if (result.error) {
      note.textContent = "";
      list.appendChild(el("li", { class: "empty-note error" }, errorText(result.error)));
      return;
    }
    var data = result.value;
    var types = {};
    (data.events || []).forEach(function (e) {
      types[e.event_id] = e.event_type;
    });
    var items = (data.items || []).slice().sort(function (a, b) {
      return a.day < b.day ? 1 : a.day > b.day ? -1 : 0;
    });
    var text = t("breaches_note", { n: items.length + (data.truncated ? "+" : "") });
    if (items.length > BREACHES_SHOWN) {
      text += " · " + t("showing", { n: BREACHES_SHOWN, m: items.length });
    }
    note.textContent = text;
    if (!items.length) {
      list.appendChild(el("li", { class: "empty-note", id: "breaches-empty" }, t("no_breaches")));
      return;
    }
    items.slice(0, BREACHES_SHOWN).forEach(function (item) {
      var breached = item.event_ids.some(function (id) {
        return /Overdue$/.test(types[id] || "");
      });
      var where = [
        item.project_id ? state.projects[item.project_id] || shortId(item.project_id) : null,
        item.partner_id ? state.partners[item.partner_id] || null : null,
        item.person,
        detailText(item.detail)
      ].filter(Boolean);
      var month = String(item.day).slice(0, 7);
      list.appendChild(
        el(
          "li",
          { class: "breach", "data-day": item.day, "data-label": item.label },
          el("span", { class: "breach-day" }, item.day),
          el(
            "div",
            { class: "breach-main" },
            el(
              "div",
              null,
              el("span", { class: "breach-kind" }, obligation(item.label)),
              " ",
              el(
                "span",
                { class: "chip " + (breached ? "bad" : "warn") },
                breached ? t("status_breached") : t("status_missed")
              )
            ),
            where.length ? el("div", { class: "breach-sub" }, where.join(" · ")) : null,
            el(
              "div",
              { class: "breach-ids" },
              item.event_ids.length
                ? unique(item.event_ids).map(function (id) {
                    return el("code", { title: id + " " + (types[id] || "") }, shortId(id));
                  })
                : el("span", { class: "muted" }, t("calendar"))
            )
          ),
          el(
            "a",
            { class: "breach-link", href: explainHref("compliance", "month", month, true) },
            t("explain")
          )
        )
      );
    });
  }

  // -- cost control -------------------------------------------------------------

  function renderCost(result) {
    var box = clear($("cost"));
    var note = $("cost-note");
    if (result.error) {
      note.textContent = "";
      box.appendChild(el("p", { class: "empty-note error" }, errorText(result.error)));
      return;
    }
    var data = result.value;
    note.textContent = t("cost_note", { p: data.bonus_threshold_percent });
    if (!data.items.length) {
      box.appendChild(el("p", { class: "empty-note" }, t("no_projects")));
      return;
    }
    var body = el("tbody");
    data.items.forEach(function (row) {
      var outcome = row.outcome ? t("outcome_" + row.outcome) : t("in_progress");
      var tone = row.outcome === "completed" ? "good" : row.outcome ? "bad" : "neutral";
      var over = row.rate !== null && row.rate > 1;
      body.appendChild(
        el(
          "tr",
          { "data-project": row.project_id, title: t("events_n", { n: row.event_ids.length }) },
          el("td", { class: "name" }, row.title),
          el("td", null, state.partners[row.partner_id] || shortId(row.partner_id)),
          el("td", null, row.project_manager),
          el("td", { class: "num" }, money(row.budget)),
          el("td", { class: "num" }, money(row.actual)),
          el("td", { class: "num" + (over ? " over" : "") }, fmt("ratio", row.rate)),
          el("td", { class: "num" }, fmt("ratio", row.saving)),
          el("td", null, el("span", { class: "chip " + tone }, outcome)),
          el(
            "td",
            { class: "bonus" },
            row.bonus_eligible
              ? el("span", { class: "chip bonus-yes", "data-bonus": "yes" }, "★ " + t("bonus_yes"))
              : el("span", { class: "muted", "data-bonus": "no" }, t("bonus_no"))
          )
        )
      );
    });
    box.appendChild(
      el(
        "table",
        { class: "table", id: "cost-table" },
        el(
          "thead",
          null,
          el(
            "tr",
            null,
            ["col_project", "col_partner", "col_pm"].map(function (k) {
              return el("th", null, t(k));
            }),
            ["col_budget", "col_actual", "col_rate", "col_saving"].map(function (k) {
              return el("th", { class: "num" }, t(k));
            }),
            el("th", null, t("col_outcome")),
            el("th", null, t("col_bonus"))
          )
        ),
        body
      )
    );
  }

  // -- drill-down ---------------------------------------------------------------

  function parseExplain(text) {
    var parts = (text || "").split(":");
    if (parts.length < 3 || !/^[a-z_]+$/.test(parts[0])) {
      return null;
    }
    if (["month", "quarter"].indexOf(parts[1]) < 0) {
      return null;
    }
    if (!/^\d{4}-(\d{2}|Q[1-4])$/.test(parts[2])) {
      return null;
    }
    return { key: parts[0], period: parts[1], start: parts[2], missed: parts[3] === "missed" };
  }

  function closeDrill() {
    $("drill").hidden = true;
    document.body.classList.remove("drilling");
    if (fragment().has("explain")) {
      window.history.replaceState(null, "", window.location.pathname + window.location.search);
    }
  }

  function itemCounts(kind, item) {
    if (item.sample !== null && item.sample !== undefined) {
      return String(item.sample);
    }
    if (item.denominator !== null && item.denominator !== undefined && kind === "ratio") {
      return fmt("count", item.numerator) + " / " + fmt("count", item.denominator);
    }
    return item.numerator === null ? "—" : String(item.numerator);
  }

  function renderDrill(spec, data) {
    var kpi = kpiOf(spec.key);
    var body = clear($("drill-body"));
    var figure = data.figure;
    $("drill-figure").textContent = figure
      ? t("drill_figure", { value: fmt(kpi.kind, figure.value), items: figure.items }) +
        (kpi.kind === "ratio" && figure.denominator ? " (" + counts("ratio", figure) + ")" : "")
      : t("drill_none");
    if (!data.items.length) {
      body.appendChild(el("p", { class: "empty-note", id: "drill-empty" }, t("drill_none")));
      return;
    }
    // Person and kind only where the KPI has them.
    var hasPerson = data.items.some(function (item) {
      return item.person;
    });
    var hasKind = data.items.some(function (item) {
      return item.label || item.detail;
    });
    var items = el("tbody");
    data.items.forEach(function (item) {
      var against = kpi.kind === "ratio" && (item.numerator || 0) < (item.denominator || 0);
      items.appendChild(
        el(
          "tr",
          { class: against ? "against" : null, "data-item": item.day },
          el("td", null, item.day),
          el(
            "td",
            null,
            item.project_id ? state.projects[item.project_id] || shortId(item.project_id) : "—",
            item.partner_id && state.partners[item.partner_id]
              ? el("div", { class: "muted" }, state.partners[item.partner_id])
              : null
          ),
          hasPerson ? el("td", null, item.person || "—") : null,
          hasKind
            ? el(
                "td",
                null,
                spec.key === "compliance" ? obligation(item.label) : item.label || "—",
                item.detail ? el("div", { class: "muted" }, detailText(item.detail)) : null
              )
            : null,
          el("td", { class: "num" }, itemCounts(kpi.kind, item)),
          el(
            "td",
            { class: "ids" },
            unique(item.event_ids).map(function (id) {
              return el("code", { title: id }, shortId(id));
            })
          )
        )
      );
    });
    body.appendChild(el("h3", null, t("drill_items") + " (" + data.items.length + ")"));
    body.appendChild(
      el(
        "table",
        { class: "table compact", id: "drill-items" },
        el(
          "thead",
          null,
          el(
            "tr",
            null,
            el("th", null, t("col_day")),
            el("th", null, t("col_project")),
            hasPerson ? el("th", null, t("col_person")) : null,
            hasKind ? el("th", null, t("col_label")) : null,
            el("th", { class: "num" }, t("col_counts")),
            el("th", null, t("col_events"))
          )
        ),
        items
      )
    );
    if (data.truncated) {
      body.appendChild(el("p", { class: "muted" }, t("drill_truncated")));
    }
    var events = el("tbody");
    data.events.forEach(function (e) {
      events.appendChild(
        el(
          "tr",
          { "data-event": e.event_id },
          el("td", null, moment(e.occurred_at)),
          el("td", null, el("strong", null, e.event_type), el("div", { class: "muted" }, e.source)),
          el("td", null, e.actor.user_id, el("div", { class: "muted" }, e.actor.role)),
          el("td", null, el("code", { class: "full-id" }, e.event_id))
        )
      );
    });
    body.appendChild(el("h3", null, t("drill_events") + " (" + data.events.length + ")"));
    body.appendChild(
      el(
        "table",
        { class: "table compact", id: "drill-events" },
        el(
          "thead",
          null,
          el(
            "tr",
            null,
            el("th", null, t("col_occurred")),
            el("th", null, t("col_event_type")),
            el("th", null, t("col_actor")),
            el("th", null, t("col_event_id"))
          )
        ),
        events
      )
    );
  }

  function openDrill(spec) {
    var start = spec.start;
    var path =
      "/v1/kpi/metrics/" +
      encodeURIComponent(spec.key) +
      "/explain?period=" +
      spec.period +
      "&period_start=" +
      encodeURIComponent(start) +
      (spec.missed ? "&missed=true" : "");
    $("drill").hidden = false;
    document.body.classList.add("drilling");
    $("drill").setAttribute("data-metric", spec.key);
    $("drill-title").textContent = kpiTitle(spec.key) + " · " + periodLabel(spec.period, start);
    $("drill-figure").textContent = t("loading");
    $("drill-api").textContent = "GET " + path;
    var toggle = $("drill-toggle");
    toggle.textContent = spec.missed ? t("drill_all") : t("drill_missed_only");
    toggle.setAttribute("href", explainHref(spec.key, spec.period, start, !spec.missed));
    clear($("drill-body"));
    return api(path).then(
      function (data) {
        renderDrill(spec, data);
        $("drill").setAttribute("data-state", "ready");
      },
      function (err) {
        if (!refused(err)) {
          $("drill-figure").textContent = errorText(err);
        }
      }
    );
  }

  function followFragment() {
    var spec = parseExplain(fragment().get("explain"));
    if (spec && state.loaded) {
      openDrill(spec);
    } else if (!spec) {
      $("drill").hidden = true;
      document.body.classList.remove("drilling");
    }
  }

  // -- loading ------------------------------------------------------------------

  function settle(promise) {
    return promise.then(
      function (value) {
        return { value: value, error: null };
      },
      function (error) {
        return { value: null, error: error };
      }
    );
  }

  function load() {
    state.token = storedToken();
    if (!state.token) {
      showSignIn("", "info");
      return Promise.resolve();
    }
    $("signin").hidden = true;
    $("sign-out").hidden = false;
    message(t("loading"), "info");
    setState("loading");
    // One request first: a refused token is told once, not by every section.
    return api("/v1/kpi/metrics")
      .then(function (catalogue) {
        catalogue.forEach(function (m) {
          state.catalogue[m.key] = m;
        });
        var first = state.months[0];
        var monthly = KPIS.map(function (k) {
          return settle(
            api("/v1/kpi/metrics/" + k.key + "?period=month&from=" + first + "&to=" + state.month)
          );
        });
        var quarterly = KPIS.map(function (k) {
          return settle(
            api(
              "/v1/kpi/metrics/" + k.key + "?period=quarter&from=" + state.quarter + "&to=" + state.quarter
            )
          );
        });
        return Promise.all([
          Promise.all(monthly),
          Promise.all(quarterly),
          settle(api("/v1/kpi/partners?limit=500")),
          settle(api("/v1/kpi/cost-control")),
          settle(api("/v1/kpi/metrics/compliance/explain?period=all&missed=true&order=desc&limit=2000")),
          settle(api("/v1/kpi/scorecards"))
        ]);
      })
      .then(function (all) {
        var monthly = all[0];
        var quarterly = all[1];
        var results = [].concat(monthly, quarterly, all.slice(2));
        for (var i = 0; i < results.length; i += 1) {
          if (results[i].error && refused(results[i].error)) {
            return;
          }
        }
        var partners = all[2];
        var cost = all[3];
        if (partners.value) {
          partners.value.items.forEach(function (p) {
            state.partners[p.partner_id] = p.name;
          });
        }
        if (cost.value) {
          cost.value.items.forEach(function (p) {
            state.projects[p.project_id] = p.title;
          });
        }
        var firstError = null;
        results.forEach(function (r) {
          if (r.error && !firstError && !(r.error.status === 404 && r === all[5])) {
            firstError = r.error;
          }
        });
        var values = function (list) {
          return list.map(function (r) {
            return r.value;
          });
        };
        renderTiles(values(monthly), values(quarterly));
        renderTrends(values(monthly));
        renderScorecards(all[5]);
        renderBreaches(all[4]);
        renderCost(cost);
        var cut = monthly[0].value ? monthly[0].value.cut : null;
        $("cut-label").textContent = cut ? t("reading_at", { t: moment(cut) }) : "";
        $("board").hidden = false;
        message(firstError ? errorText(firstError) : "", "error");
        state.loaded = true;
        setState("ready");
        followFragment();
      })
      .catch(function (err) {
        if (err instanceof BoardError && refused(err)) {
          return;
        }
        message(errorText(err), "error");
        setState("error");
      });
  }

  function start() {
    var today = meta("pl-today") || new Date().toISOString().slice(0, 10);
    state.zone = meta("pl-zone") || "UTC";
    state.month = today.slice(0, 7);
    state.quarter = quarterOf(state.month);
    for (var i = 11; i >= 0; i -= 1) {
      state.months.push(addMonths(state.month, -i));
    }
    $("period-label").textContent =
      t("this_month") + " " + monthLabel(state.month) + " · " + t("this_quarter") + " " + quarterLabel(state.quarter);
    $("lang-" + state.lang).classList.add("active");
    takeTokenFromFragment();

    $("signin-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var token = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
      if (!token) {
        return;
      }
      $("token-input").value = "";
      storeToken(token);
      load();
    });
    $("sign-out").addEventListener("click", function () {
      storeToken(null);
      state.token = null;
      state.loaded = false;
      closeDrill();
      showSignIn("", "info");
    });
    $("drill-close").addEventListener("click", closeDrill);
    $("drill").addEventListener("click", function (event) {
      if (event.target === $("drill")) {
        closeDrill();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !$("drill").hidden) {
        closeDrill();
      }
    });
    window.addEventListener("hashchange", function () {
      // A new #token=... (a link pasted into this tab) signs in again.
      if (takeTokenFromFragment() || (!state.loaded && storedToken())) {
        state.loaded = false;
        load();
        return;
      }
      followFragment();
    });
    load();
  }

  fetch("/board/assets/i18n.json", { credentials: "omit", cache: "no-cache" })
    .then(function (response) {
      return response.json();
    })
    .then(function (all) {
      state.labels = all[state.lang] || all.en || {};
    })
    .catch(function () {
      state.labels = {};
    })
    .then(start);
})();
