/* The supervisor's charts: the backlog and deadline risk over time, drawn with the vendored
   Chart.js from the JSON the page carries (json_script). The same figures are in the tables
   after each chart, so nothing is lost without JavaScript. No inline script: the page runs
   under a Content-Security-Policy without 'unsafe-inline'. */
(function () {
  "use strict";

  function draw() {
    var source = document.getElementById("supervision-series");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var reduced = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    // A fresh options object per chart: Chart.js keeps and resolves the one it is given.
    function options(stacked) {
      return {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduced ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { stacked: stacked, ticks: { maxTicksLimit: 12 } },
          y: { stacked: stacked, beginAtZero: true, ticks: { precision: 0 } }
        }
      };
    }

    var backlog = document.getElementById("backlog-chart");
    if (backlog) {
      new window.Chart(backlog, {
        type: "line",
        data: {
          labels: data.days,
          datasets: [{
            label: data.labels.backlog,
            data: data.backlog,
            borderColor: "#0b5cad",
            backgroundColor: "rgba(11, 92, 173, 0.15)",
            fill: true,
            pointRadius: 0,
            tension: 0
          }]
        },
        options: options(false)
      });
    }

    var risk = document.getElementById("risk-chart");
    if (risk) {
      new window.Chart(risk, {
        type: "bar",
        data: {
          labels: data.days,
          datasets: [
            { label: data.labels.overdue, data: data.overdue, backgroundColor: "#a4161a" },
            { label: data.labels.at_risk, data: data.at_risk, backgroundColor: "#d08b00" }
          ]
        },
        options: options(true)
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
