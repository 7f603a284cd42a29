/* The regulator's charts (Chart.js, vendored): the figures are the page's JSON block
   #regulator-chart-data, written by the server from the same indicators as the tables.
   No inline script: the page's Content-Security-Policy allows scripts of this site only. */
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#1e7a34", "#8a5a00", "#b3261e", "#6a3d9a"];

  function draw() {
    var source = document.getElementById("regulator-chart-data");
    if (!source || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var lang = document.documentElement.lang || "zh-CN";
    var money = new Intl.NumberFormat(lang, { style: "currency", currency: data.currency });
    var pct = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 2 });

    function series(list, type) {
      return list.map(function (item, i) {
        return {
          label: item.label,
          data: item.data,
          backgroundColor: COLOURS[i % COLOURS.length],
          borderColor: COLOURS[i % COLOURS.length],
          spanGaps: true,
          type: type
        };
      });
    }

    var volume = document.getElementById("chart-volume");
    if (volume) {
      volume.chart = new window.Chart(volume, {
        type: "bar",
        data: { labels: data.labels, datasets: series(data.volume, "bar") },
        options: {
          animation: false,
          scales: {
            x: { stacked: true },
            y: {
              stacked: true,
              beginAtZero: true,
              title: { display: true, text: data.words.volume },
              ticks: { callback: function (v) { return money.format(v); } }
            }
          },
          plugins: {
            tooltip: {
              callbacks: {
                label: function (c) { return c.dataset.label + ": " + money.format(c.parsed.y); }
              }
            }
          }
        }
      });
    }
    var overdue = document.getElementById("chart-overdue");
    if (overdue) {
      overdue.chart = new window.Chart(overdue, {
        type: "line",
        data: { labels: data.labels, datasets: series(data.overdue, "line") },
        options: {
          animation: false,
          scales: {
            y: {
              beginAtZero: true,
              suggestedMax: 0.2,
              title: { display: true, text: data.words.overdue },
              ticks: { callback: function (v) { return pct.format(v); } }
            }
          },
          plugins: {
            tooltip: {
              callbacks: {
                label: function (c) { return c.dataset.label + ": " + pct.format(c.parsed.y); }
              }
            }
          }
        }
      });
    }
    document.body.setAttribute("data-charts", "drawn");
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
