/* Charts of the admin pages, drawn with the vendored Chart.js (static/vendor/chartjs/) from JSON the page
   carries in a json_script element (the CSP runs no inline script, so data never travels as code).

   Markup (templates/admin/gestima/chart.html): <figure data-chart="ID-of-the-json"> holding a hidden
   .dash-chart-canvas with a <canvas>, and a <details> table of the same figures. With the chart drawn the
   canvas shows and the table folds away (still one click away for screen readers and exact figures);
   without JavaScript, or if Chart.js is missing, the table stays open.

   The JSON (gestima/charts.py): {title, kind, stacked, integer, x_label, y_label (with its unit), unit (for
   tooltips), x_scale and y_scale ("category", "linear", "logarithmic"), labels (categories), series: [{name,
   values, kind?, style? ("point": markers only, "interval": a light floating bar), marker? (a point style),
   colour? (an index into the palette)}], table: {columns, rows, footer}}. A value is a number, null, {x, y} on numeric axes,
   or [low, high] (an interval, drawn as a floating bar). A live page hands new specs to
   window.GestimaCharts.update(figureId, spec) (static/gestima/live.js): the chart and its table follow. */
(function () {
  "use strict";

  // Colour-blind-safe (Okabe-Ito); enough for a handful of series, then it repeats.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];
  const charts = new Map();

  function dataset(spec, series, i) {
    const colour = PALETTE[(series.colour ?? i) % PALETTE.length];
    const kind = series.kind || spec.kind || "bar";
    const markers = series.style === "point" || kind === "scatter";
    const interval = series.style === "interval";  // a thin, light bar from low to high behind its point
    return {
      type: kind,
      label: series.name,
      data: series.values,
      backgroundColor: interval ? `${colour}66` : colour,
      borderColor: colour,
      borderWidth: interval ? 1 : undefined,
      barPercentage: interval ? 0.3 : undefined,
      showLine: !markers,
      pointRadius: series.marker ? 8 : markers ? 4 : 2,  // checkpoints stand out from the curve they sit on
      pointStyle: series.marker || "circle",
      spanGaps: true,
      order: kind === "bar" ? 2 : 1,  // lines and markers in front of bars
    };
  }

  function axis(spec, which) {
    const type = spec[`${which}_scale`] || (which === "x" ? "category" : "linear");
    const options = { type, stacked: !!spec.stacked, title: { display: true, text: spec[`${which}_label`] } };
    if (which === "y" && type !== "logarithmic") options.beginAtZero = true;
    if (which === "y" && spec.integer) options.ticks = { precision: 0 };  // counts: no 0.4 of a decision
    if (type === "logarithmic") {  // 1, 2, 5, 10, 20, 50 ...: every minor tick labelled would run together
      options.ticks = { callback: (value) => ([1, 2, 5].includes(Number((value / 10 ** Math.floor(Math.log10(value))).toFixed(6)))
        ? String(value) : "") };
    }
    return options;
  }

  function config(spec) {
    const unit = spec.unit ? ` ${spec.unit}` : "";
    return {
      type: spec.kind || "bar",
      data: { labels: spec.labels, datasets: spec.series.map((series, i) => dataset(spec, series, i)) },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: true, position: "top" },
          title: { display: false },  // the figure's caption says it, once
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${item.formattedValue}${unit}` } },
        },
        scales: { x: axis(spec, "x"), y: axis(spec, "y") },
      },
    };
  }

  function fillRow(row, cells) {
    row.replaceChildren(...cells.map((value, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) cell.scope = "row";
      cell.textContent = value === null || value === undefined ? "" : String(value);  // text only, never markup
      return cell;
    }));
  }

  function rewriteTable(figure, spec) {
    const body = figure.querySelector("details.dash-chart-table tbody");
    if (!body || !spec.table) return;
    body.replaceChildren(...spec.table.rows.map((cells) => {
      const row = document.createElement("tr");
      fillRow(row, cells);
      return row;
    }));
  }

  function draw(figure, spec) {
    const holder = figure.querySelector(".dash-chart-canvas");
    const canvas = holder && holder.querySelector("canvas");
    if (!canvas || typeof window.Chart === "undefined") return;
    if (!spec.series || spec.series.length === 0) return;  // nothing to draw: the table says "No figures yet"
    holder.hidden = false;
    const empty = figure.querySelector(".dash-chart-empty");  // a live chart's first points have arrived
    if (empty) empty.remove();
    const existing = charts.get(figure.id);
    if (existing) {
      existing.data = config(spec).data;
      existing.update("none");
    } else {
      charts.set(figure.id, new window.Chart(canvas, config(spec)));
    }
    const table = figure.querySelector("details.dash-chart-table");
    if (table && !existing) table.open = false;
  }

  function drawAll() {
    document.querySelectorAll("figure[data-chart]").forEach((figure) => {
      const source = document.getElementById(figure.dataset.chart);
      if (source) draw(figure, JSON.parse(source.textContent));
    });
  }

  // For live pages: new figures for a chart already on the page (the table is rewritten from the same JSON).
  window.GestimaCharts = {
    update(figureId, spec) {
      const figure = document.getElementById(figureId);
      if (!figure || !spec) return;
      rewriteTable(figure, spec);
      draw(figure, spec);
    },
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
