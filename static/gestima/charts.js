/* Charts of the admin pages, drawn with the vendored Chart.js (static/vendor/chartjs/) from JSON the page
   carries in a json_script element (the CSP runs no inline script, so data never travels as code).

   Markup (templates/admin/gestima/chart.html): <figure data-chart="ID-of-the-json"> holding a hidden
   .dash-chart-canvas with a <canvas>, and a <details> table of the same figures. With the chart drawn the
   canvas shows and the table folds away (still one click away for screen readers and exact figures);
   without JavaScript, or if Chart.js is missing, the table stays open.

   The JSON (gestima.dashboard.chart_spec): {title, kind, stacked, integer, x_label, y_label (with its unit),
   unit (for tooltips), labels: [...], series: [{name, values: [...]}]}. */
(function () {
  "use strict";

  // Colour-blind-safe (Okabe-Ito); enough for a handful of reviewers or providers, then it repeats.
  const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"];

  function draw(figure) {
    const source = document.getElementById(figure.dataset.chart);
    const holder = figure.querySelector(".dash-chart-canvas");
    const canvas = holder && holder.querySelector("canvas");
    if (!source || !canvas || typeof window.Chart === "undefined") return;
    const spec = JSON.parse(source.textContent);
    if (!spec.series || spec.series.length === 0) return;  // nothing to draw: the table says "No figures yet"
    const unit = spec.unit ? ` (${spec.unit})` : "";
    holder.hidden = false;
    new window.Chart(canvas, {
      type: spec.kind || "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map((series, i) => ({
          label: series.name,
          data: series.values,
          backgroundColor: PALETTE[i % PALETTE.length],
          borderColor: PALETTE[i % PALETTE.length],
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: {
          legend: { display: true, position: "top" },
          title: { display: false },  // the figure's caption says it, once
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${item.formattedValue}${unit}` } },
        },
        scales: {
          x: { stacked: !!spec.stacked, title: { display: true, text: spec.x_label } },
          y: {
            stacked: !!spec.stacked, beginAtZero: true, title: { display: true, text: spec.y_label },
            ticks: spec.integer ? { precision: 0 } : {},  // counts: no 0.4 of a decision
          },
        },
      },
    });
    const table = figure.querySelector("details.dash-chart-table");
    if (table) table.open = false;
  }

  function drawAll() {
    document.querySelectorAll("figure[data-chart]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
