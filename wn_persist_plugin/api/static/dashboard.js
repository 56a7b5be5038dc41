/* wn-persist dashboard: one page over the JSON API (/api/v1/...), views in the URL
 * fragment, charts drawn with the vendored Chart.js. No build step, no inline script. */
"use strict";

(() => {
  const TOKEN_KEY = "wn-persist-api-token";
  const PERIODS = ["daily", "weekly", "monthly"];
  const METRICS = {
    kills: "Kills",
    deaths: "Deaths",
    isk_destroyed: "ISK destroyed",
    isk_lost: "ISK lost",
    solo_kills: "Solo kills",
    final_blows: "Final blows",
    efficiency: "Efficiency",
  };
  const ISK_METRICS = new Set(["isk_destroyed", "isk_lost"]);
  const COLORS = {
    kills: "#4ade80",
    deaths: "#f87171",
    destroyed: "#60a5fa",
    lost: "#fbbf24",
    text: "#c9d1d9",
    muted: "#8b949e",
    grid: "rgba(139, 148, 158, 0.18)",
  };
  const LEADERBOARD_LIMIT = 25;
  const MAIL_PAGE = 20;
  const CHARACTER_PAGE = 100;
  const WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

  const main = document.getElementById("view");
  let charts = [];
  let renderSeq = 0;

  // --- formatting -----------------------------------------------------------------------

  /** ISK as people write it: 1.2b, 350m, 12k. */
  function isk(value) {
    const n = Number(value);
    if (value === null || value === undefined || !Number.isFinite(n)) return "–";
    const abs = Math.abs(n);
    for (const [size, suffix] of [[1e12, "t"], [1e9, "b"], [1e6, "m"], [1e3, "k"]]) {
      if (abs >= size) {
        const scaled = n / size;
        const text = Math.abs(scaled) >= 100 ? scaled.toFixed(0) : scaled.toFixed(1);
        return text.replace(/\.0$/, "") + suffix;
      }
    }
    return n.toFixed(0);
  }

  function percent(value) {
    return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)}%`;
  }

  function count(value) {
    return Number(value || 0).toLocaleString("en-US");
  }

  function figure(metric, value) {
    if (ISK_METRICS.has(metric)) return isk(value);
    if (metric === "efficiency") return percent(value);
    return count(value);
  }

  function day(iso) {
    return iso ? iso.slice(0, 10) : "–";
  }

  function when(iso) {
    return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)}` : "–";
  }

  function periodLabel(period, start) {
    return period === "monthly" ? start.slice(0, 7) : start;
  }

  function named(entity, kind) {
    if (!entity) return "unknown";
    return entity.name || `${kind} ${entity.id}`;
  }

  // --- DOM helpers (text only: no HTML from data) ----------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function select(name, label, options, value, onChange) {
    const id = `select-${name}`;
    const control = el(
      "select",
      { id, name, onchange: (event) => onChange(event.target.value) },
      options.map(([optionValue, text]) =>
        el("option", { value: optionValue, selected: optionValue === value }, text)
      )
    );
    return el("label", { class: "control", for: id }, el("span", { text: label }), control);
  }

  function card(label, value, tone) {
    return el(
      "div",
      { class: `card${tone ? ` tone-${tone}` : ""}` },
      el("div", { class: "card-label", text: label }),
      el("div", { class: "card-value", text: value })
    );
  }

  function panel(title, ...children) {
    return el("section", { class: "panel" }, el("h2", { text: title }), ...children);
  }

  function chartBox(name, tall) {
    const canvas = el("canvas", { dataset: { chart: name }, role: "img", "aria-label": name });
    return { box: el("div", { class: `chart-box${tall ? " tall" : ""}` }, canvas), canvas };
  }

  function characterLink(id, name) {
    return el("a", { href: `#/character/${id}`, text: name || `Pilot ${id}` });
  }

  function empty(text) {
    return el("p", { class: "empty", text });
  }

  // --- the API, with the token ------------------------------------------------------------

  class ApiError extends Error {}

  let tokenPrompt = null;

  /** Ask for the token once (concurrent 401s share one prompt). */
  function askToken(message) {
    if (tokenPrompt) return tokenPrompt;
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    document.getElementById("token-message").textContent = message;
    document.documentElement.dataset.state = "token";
    tokenPrompt = new Promise((resolve) => {
      form.addEventListener(
        "submit",
        (event) => {
          event.preventDefault();
          sessionStorage.setItem(TOKEN_KEY, input.value.trim());
          input.value = "";
          dialog.close();
          tokenPrompt = null;
          document.documentElement.dataset.state = "loading";
          resolve();
        },
        { once: true }
      );
    });
    dialog.showModal();
    input.focus();
    return tokenPrompt;
  }

  async function api(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    for (;;) {
      const token = sessionStorage.getItem(TOKEN_KEY);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(`api/v1/${path}${query}`, { headers, cache: "no-cache" });
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        await askToken(token ? "That token was refused; try again." : "This server needs its API token.");
        continue;
      }
      if (!response.ok) {
        const problem = await response.json().catch(() => null);
        throw new ApiError((problem && problem.detail) || `${response.status} ${response.statusText}`);
      }
      return response.json();
    }
  }

  // --- charts ----------------------------------------------------------------------------

  function setupChartDefaults() {
    Chart.defaults.color = COLORS.text;
    Chart.defaults.borderColor = COLORS.grid;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 12;
  }

  function addChart(canvas, config) {
    charts.push(new Chart(canvas, config));
  }

  function destroyCharts() {
    for (const chart of charts) chart.destroy();
    charts = [];
  }

  const iskAxis = { ticks: { callback: (value) => isk(value) }, beginAtZero: true };
  const iskTooltip = {
    callbacks: { label: (ctx) => `${ctx.dataset.label}: ${isk(ctx.parsed.y)}` },
  };

  /** Kills and deaths per period (bars), then ISK destroyed and lost (bars), on two canvases. */
  function trendCharts(labels, rows, killsLabel, deathsLabel) {
    const counts = chartBox("trend-counts");
    const money = chartBox("trend-isk");
    const container = el(
      "div",
      { class: "charts" },
      panel(`${killsLabel} and ${deathsLabel.toLowerCase()}`, counts.box),
      panel("ISK destroyed and lost", money.box)
    );
    const draw = () => {
      addChart(counts.canvas, {
        type: "bar",
        data: {
          labels,
          datasets: [
            { label: killsLabel, data: rows.map((r) => r.kills), backgroundColor: COLORS.kills },
            { label: deathsLabel, data: rows.map((r) => r.deaths), backgroundColor: COLORS.deaths },
          ],
        },
        options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      });
      addChart(money.canvas, {
        type: "bar",
        data: {
          labels,
          datasets: [
            { label: "ISK destroyed", data: rows.map((r) => Number(r.isk_destroyed)), backgroundColor: COLORS.destroyed },
            { label: "ISK lost", data: rows.map((r) => Number(r.isk_lost)), backgroundColor: COLORS.lost },
          ],
        },
        options: { scales: { y: iskAxis }, plugins: { tooltip: iskTooltip } },
      });
    };
    return { container, draw };
  }

  function topChart(name, title, entries, color, format) {
    const show = format || count;
    if (!entries.length) return { container: panel(title, empty("No data.")), draw: () => {} };
    const box = chartBox(name);
    box.box.style.height = `${Math.max(140, entries.length * 34 + 40)}px`;
    return {
      container: panel(title, box.box),
      draw: () =>
        addChart(box.canvas, {
          type: "bar",
          data: {
            labels: entries.map((e) => e.label),
            datasets: [{ label: title, data: entries.map((e) => e.count), backgroundColor: color }],
          },
          options: {
            indexAxis: "y",
            plugins: {
              legend: { display: false },
              tooltip: { callbacks: { label: (ctx) => show(ctx.parsed.x) } },
            },
            scales: { x: { beginAtZero: true, ticks: { precision: 0, callback: (value) => show(value) } } },
          },
        }),
    };
  }

  /** A weekday x UTC hour grid drawn on a canvas (Monday first), redrawn on resize. */
  function heatmap(grid) {
    const canvas = el("canvas", { class: "heatmap", dataset: { chart: "activity-heatmap" }, role: "img", "aria-label": "activity by weekday and UTC hour" });
    const box = el("div", { class: "heatmap-box" }, canvas);
    const max = Math.max(0, ...grid.flat());
    canvas.dataset.max = String(max);
    const paint = () => {
      const width = box.clientWidth;
      if (!width) return;
      const left = 36;
      const top = 4;
      const bottom = 20;
      const cell = (width - left) / 24;
      const rowHeight = Math.min(28, Math.max(14, cell));
      const height = top + rowHeight * 7 + bottom;
      const ratio = window.devicePixelRatio || 1;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
      const ctx = canvas.getContext("2d");
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.font = `11px ${getComputedStyle(document.body).fontFamily}`;
      ctx.fillStyle = COLORS.muted;
      ctx.textBaseline = "middle";
      WEEKDAYS.forEach((name, row) => ctx.fillText(name, 0, top + row * rowHeight + rowHeight / 2));
      ctx.textAlign = "center";
      for (let hour = 0; hour < 24; hour += cell < 22 ? 3 : 2) {
        ctx.fillText(String(hour).padStart(2, "0"), left + hour * cell + cell / 2, top + rowHeight * 7 + bottom / 2 + 2);
      }
      grid.forEach((hours, row) =>
        hours.forEach((value, hour) => {
          const strength = max ? value / max : 0;
          ctx.fillStyle = value
            ? `rgba(248, 113, 113, ${0.18 + 0.82 * strength})`
            : "rgba(139, 148, 158, 0.10)";
          ctx.fillRect(left + hour * cell + 1, top + row * rowHeight + 1, cell - 2, rowHeight - 2);
        })
      );
    };
    const observer = new ResizeObserver(paint);
    return {
      container: panel("Activity by weekday and hour (UTC)", box, el("p", { class: "muted small", text: `Darker: more involvements (busiest hour: ${max}).` })),
      draw: () => {
        paint();
        observer.observe(box);
        charts.push({ destroy: () => observer.disconnect() });
      },
    };
  }

  // --- views -----------------------------------------------------------------------------

  function periodsOf(items, period) {
    return items.map((item) => [item.period_start, periodLabel(period, item.period_start)]).reverse();
  }

  async function viewGroup(params) {
    const period = PERIODS.includes(params.get("period")) ? params.get("period") : "monthly";
    const data = await api("group/stats", { period });
    return () => {
      const totals = data.totals;
      const rows = data.items;
      const trend = trendCharts(rows.map((r) => periodLabel(period, r.period_start)), rows, "Kills", "Losses");
      const head = el(
        "div",
        { class: "view-head" },
        el("h1", { text: "The group" }),
        el("div", { class: "controls" }, select("period", "Period", PERIODS.map((p) => [p, p]), period, (value) => go("", { period: value })))
      );
      const cards = el(
        "div",
        { class: "cards" },
        card("Kills", count(totals.kills), "kills"),
        card("Losses", count(totals.deaths), "deaths"),
        card("ISK destroyed", isk(totals.isk_destroyed), "destroyed"),
        card("ISK lost", isk(totals.isk_lost), "lost"),
        card("Efficiency", percent(totals.efficiency)),
        card("Solo kills", count(totals.solo_kills)),
        card("Pilots per kill", totals.average_attackers === null ? "–" : Number(totals.average_attackers).toFixed(1))
      );
      const note = el("p", { class: "muted small", text: "Each mail counts once for the group, however many tracked pilots were on it." });
      const body = rows.length ? trend.container : empty("No stored killmails yet.");
      return { nodes: [head, cards, note, body], draw: rows.length ? trend.draw : () => {} };
    };
  }

  async function viewLeaderboard(params) {
    const period = PERIODS.includes(params.get("period")) ? params.get("period") : "monthly";
    const by = METRICS[params.get("by")] ? params.get("by") : "kills";
    const group = await api("group/stats", { period });
    const starts = periodsOf(group.items, period);
    const wanted = params.get("start");
    const start = starts.some(([value]) => value === wanted) ? wanted : starts.length ? starts[0][0] : null;
    const board = start
      ? await api("leaderboard", { period, start, by, limit: LEADERBOARD_LIMIT })
      : { items: [] };
    return () => {
      const change = (key) => (value) => go("leaderboard", { period, start, by, [key]: value, ...(key === "period" ? { start: "" } : {}) });
      const head = el(
        "div",
        { class: "view-head" },
        el("h1", { text: "Leaderboard" }),
        el(
          "div",
          { class: "controls" },
          select("period", "Period", PERIODS.map((p) => [p, p]), period, change("period")),
          start ? select("start", "Starting", starts, start, change("start")) : null,
          select("by", "Ranked by", Object.entries(METRICS), by, change("by"))
        )
      );
      if (!board.items.length) return { nodes: [head, empty("No statistics for this period yet.")], draw: () => {} };
      // The ranked figure is always a column; on a phone only it and the kills stay.
      const columns = ["kills", "deaths", "isk_destroyed", "isk_lost", "efficiency"];
      if (!columns.includes(by)) columns.push(by);
      const short = { efficiency: "Eff.", isk_destroyed: "ISK destroyed", isk_lost: "ISK lost" };
      const columnClass = (key) => `num${key === by ? " ranked" : key === "kills" ? "" : " hide-sm"}`;
      const table = el(
        "table",
        { class: "board", id: "leaderboard" },
        el("thead", {}, el("tr", {},
          el("th", { class: "num", text: "#" }),
          el("th", { text: "Pilot" }),
          columns.map((key) => el("th", { class: columnClass(key), text: short[key] || METRICS[key] }))
        )),
        el("tbody", {}, board.items.map((row) =>
          el("tr", { dataset: { characterId: row.character_id, value: String(row[by] ?? "") } },
            el("td", { class: "num rank", text: row.rank }),
            el("td", {}, characterLink(row.character_id, row.character_name)),
            columns.map((key) => el("td", { class: columnClass(key), dataset: { metric: key }, text: figure(key, row[key]) }))
          )
        ))
      );
      const top = board.items.slice(0, 10).filter((row) => row[by] !== null);
      const chart = topChart(
        "leaderboard",
        `${METRICS[by]}, top ${top.length}`,
        top.map((row) => ({ label: row.character_name || `Pilot ${row.character_id}`, count: Number(row[by]) })),
        by === "deaths" || by === "isk_lost" ? COLORS.deaths : COLORS.destroyed,
        (value) => figure(by, value)
      );
      const caption = el("p", { class: "muted small", text: `${period} period ${board.period_start} – ${board.period_end}` });
      return {
        nodes: [head, caption, el("div", { class: "split" }, panel("Ranking", el("div", { class: "table-wrap" }, table)), chart.container)],
        draw: chart.draw,
      };
    };
  }

  async function viewCharacters(params) {
    const data = await api("characters");
    return () => {
      const sortKey = ["kills", "deaths", "name", "last"].includes(params.get("sort")) ? params.get("sort") : "kills";
      const filter = (params.get("q") || "").toLowerCase();
      const sorters = {
        kills: (a, b) => b.kills - a.kills || b.deaths - a.deaths || a.id - b.id,
        deaths: (a, b) => b.deaths - a.deaths || b.kills - a.kills || a.id - b.id,
        name: (a, b) => (a.name || "").localeCompare(b.name || "") || a.id - b.id,
        last: (a, b) => (b.last_involvement || "").localeCompare(a.last_involvement || "") || a.id - b.id,
      };
      const items = data.items
        .filter((c) => !filter || (c.name || "").toLowerCase().includes(filter) || String(c.id) === filter)
        .sort(sorters[sortKey]);
      let shown = 0;
      const tbody = el("tbody");
      const more = el("button", { type: "button", class: "more" });
      const showMore = () => {
        const next = items.slice(shown, shown + CHARACTER_PAGE);
        shown += next.length;
        tbody.append(...next.map((c) =>
          el("tr", { dataset: { characterId: c.id } },
            el("td", {}, characterLink(c.id, c.name)),
            el("td", { class: "hide-sm", text: c.corporation ? c.corporation.ticker || c.corporation.name || "" : "" }),
            el("td", { class: "num", text: count(c.kills) }),
            el("td", { class: "num", text: count(c.deaths) }),
            el("td", { class: "num hide-sm", text: day(c.last_involvement) })
          )
        ));
        more.hidden = shown >= items.length;
        more.textContent = `Show ${Math.min(CHARACTER_PAGE, items.length - shown)} more of ${items.length - shown}`;
      };
      more.addEventListener("click", showMore);
      showMore();
      const search = el("input", { type: "search", id: "character-filter", placeholder: "Name or id", value: params.get("q") || "" });
      search.addEventListener("change", () => go("characters", { sort: sortKey, q: search.value }));
      const head = el(
        "div",
        { class: "view-head" },
        el("h1", { text: "Tracked pilots" }),
        el(
          "div",
          { class: "controls" },
          el("label", { class: "control", for: "character-filter" }, el("span", { text: "Find" }), search),
          select("sort", "Sorted by", [["kills", "kills"], ["deaths", "deaths"], ["name", "name"], ["last", "last seen"]], sortKey, (value) => go("characters", { sort: value, q: params.get("q") || "" }))
        )
      );
      const caption = el("p", { class: "muted small", text: `${count(data.items.length)} tracked${filter ? `, ${count(items.length)} match` : ""}; kills and deaths from the monthly statistics.` });
      const table = el("table", { id: "characters" },
        el("thead", {}, el("tr", {},
          el("th", { text: "Pilot" }),
          el("th", { class: "hide-sm", text: "Corp" }),
          el("th", { class: "num", text: "Kills" }),
          el("th", { class: "num", text: "Deaths" }),
          el("th", { class: "num hide-sm", text: "Last seen" })
        )),
        tbody
      );
      return { nodes: [head, caption, items.length ? el("div", { class: "table-wrap panel" }, table, more) : empty("No tracked pilot matches.")], draw: () => {} };
    };
  }

  /** The most frequent entries over every period's top list, summed. */
  function summedTop(items, key, kind) {
    const totals = new Map();
    for (const item of items) {
      for (const entry of item[key]) {
        const id = entry.id === null ? "unknown" : String(entry.id);
        const known = totals.get(id) || { label: entry.id === null ? "unknown" : named(entry, kind), count: 0 };
        known.count += entry.count;
        totals.set(id, known);
      }
    }
    return [...totals.values()].sort((a, b) => b.count - a.count || a.label.localeCompare(b.label)).slice(0, 8);
  }

  async function viewCharacter(params, id) {
    const period = PERIODS.includes(params.get("period")) ? params.get("period") : "monthly";
    const [profile, stats, activity, mails] = await Promise.all([
      api(`characters/${id}`),
      api(`characters/${id}/stats`, { period }),
      api(`characters/${id}/activity`),
      api(`characters/${id}/killmails`, { limit: MAIL_PAGE }),
    ]);
    return () => {
      const totals = profile.totals;
      const rows = stats.items;
      const head = el(
        "div",
        { class: "view-head" },
        el("div", {},
          el("h1", { text: profile.name || `Pilot ${id}` }),
          el("p", { class: "muted small" },
            [profile.corporation ? `[${profile.corporation.ticker || profile.corporation.name || profile.corporation.id}]` : null,
              `seen ${day(profile.first_involvement)} – ${day(profile.last_involvement)}`].filter(Boolean).join(" · "),
            " · ",
            el("a", { href: `https://zkillboard.com/character/${id}/`, target: "_blank", rel: "noopener noreferrer", text: "zKillboard" }))
        ),
        el("div", { class: "controls" }, select("period", "Period", PERIODS.map((p) => [p, p]), period, (value) => go(`character/${id}`, { period: value })))
      );
      const cards = el(
        "div",
        { class: "cards" },
        card("Kills", count(totals.kills), "kills"),
        card("Deaths", count(totals.deaths), "deaths"),
        card("ISK destroyed", isk(totals.isk_destroyed), "destroyed"),
        card("ISK lost", isk(totals.isk_lost), "lost"),
        card("Efficiency", percent(totals.efficiency)),
        card("Solo kills", count(totals.solo_kills)),
        card("Final blows", count(totals.final_blows))
      );
      const parts = [];
      const draws = [];
      if (rows.length) {
        const trend = trendCharts(rows.map((r) => periodLabel(period, r.period_start)), rows, "Kills", "Deaths");
        parts.push(trend.container);
        draws.push(trend.draw);
      } else {
        parts.push(empty(`No ${period} statistics for this pilot yet.`));
      }
      const heat = heatmap(activity.counts);
      const ships = topChart("top-ships", "Top ships", summedTop(rows, "top_ships", "type"), COLORS.destroyed);
      const regions = topChart("top-regions", "Top regions", summedTop(rows, "top_regions", "region"), COLORS.lost);
      parts.push(el("div", { class: "charts" }, heat.container, el("div", { class: "stack" }, ships.container, regions.container)));
      draws.push(heat.draw, ships.draw, regions.draw);
      parts.push(el("p", { class: "muted small", text: `Top ships and regions: each ${period} period's top 3, summed.` }));
      parts.push(mailList(mails.items));
      return { nodes: [head, cards, ...parts], draw: () => draws.forEach((draw) => draw()) };
    };
  }

  function mailList(items) {
    if (!items.length) return panel("Latest kills and losses", empty("No stored killmails."));
    const rows = items.map((mail) => {
      const loss = mail.role === "victim";
      return el(
        "li",
        { class: `mail ${loss ? "loss" : "kill"}`, dataset: { killmailId: mail.killmail_id, role: mail.role } },
        el("span", { class: `badge ${loss ? "loss" : "kill"}`, text: loss ? "Loss" : mail.solo ? "Solo" : "Kill" }),
        el("span", { class: "mail-main" },
          el("span", { class: "mail-ship", text: named(mail.ship, "type") }),
          el("span", { class: "muted small", text: `${named(mail.system, "system")} · ${named(mail.region, "region")} · ${mail.attacker_count} attacker${mail.attacker_count === 1 ? "" : "s"}${mail.final_blow ? " · final blow" : ""}` })
        ),
        el("span", { class: "mail-side" },
          el("span", { class: "mail-value", text: isk(mail.total_value) }),
          el("span", { class: "muted small", text: when(mail.kill_time) })
        ),
        el("a", { class: "zkb", href: mail.zkillboard_url, target: "_blank", rel: "noopener noreferrer", text: "zKill ↗", "aria-label": `killmail ${mail.killmail_id} on zKillboard` })
      );
    });
    return panel("Latest kills and losses", el("ol", { class: "mails", id: "mails" }, rows));
  }

  // --- routing ---------------------------------------------------------------------------

  const ROUTES = [
    [/^$/, "group", viewGroup],
    [/^leaderboard$/, "leaderboard", viewLeaderboard],
    [/^characters$/, "characters", viewCharacters],
    [/^character\/(\d+)$/, "character", viewCharacter],
  ];

  function go(path, params) {
    const clean = Object.entries(params || {}).filter(([, value]) => value !== "" && value !== null && value !== undefined);
    const query = clean.length ? `?${new URLSearchParams(clean)}` : "";
    location.hash = `#/${path}${query}`;
  }

  async function render() {
    const seq = ++renderSeq;
    const raw = location.hash.replace(/^#\/?/, "");
    const [path, query] = raw.split("?");
    const params = new URLSearchParams(query || "");
    const route = ROUTES.find(([pattern]) => pattern.test(path));
    const root = document.documentElement;
    root.dataset.state = "loading";
    for (const link of document.querySelectorAll("[data-nav]")) {
      link.classList.toggle("active", route && (link.dataset.nav === route[1] || (route[1] === "character" && link.dataset.nav === "characters")));
    }
    let view;
    try {
      if (!route) throw new ApiError(`No such page: #/${path}`);
      const match = path.match(route[0]);
      const build = await route[2](params, ...match.slice(1));
      if (seq !== renderSeq) return;
      view = build();
    } catch (error) {
      if (seq !== renderSeq) return;
      destroyCharts();
      main.replaceChildren(el("div", { class: "error", role: "alert", text: error instanceof ApiError ? error.message : `The page failed: ${error.message}` }));
      root.dataset.view = route ? route[1] : "none";
      root.dataset.state = "error";
      return;
    }
    destroyCharts();
    main.replaceChildren(...view.nodes);
    view.draw();
    root.dataset.view = route[1];
    root.dataset.state = "ready";
    window.scrollTo(0, 0);
  }

  setupChartDefaults();
  // The token dialog stays until a token is given (Escape does not close it).
  document.getElementById("token-dialog").addEventListener("cancel", (event) => event.preventDefault());
  window.addEventListener("hashchange", render);
  render();
})();
