// opsbot console: live countdowns on the board. Pages work without this file.
(function () {
  "use strict";

  function human(seconds) {
    var late = seconds < 0, s = Math.abs(seconds);
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
        m = Math.floor(s % 3600 / 60), sec = Math.floor(s % 60);
    var text = d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m + "m " + sec + "s";
    return late ? text + " late" : "in " + text;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var left = (Date.parse(el.getAttribute("datetime")) - now) / 1000;
      if (!el.title) { el.title = el.textContent.trim(); }
      el.textContent = human(left);
      el.classList.toggle("late", left < 0);
    });
  }

  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSwap", tick);
  setInterval(tick, 1000);
})();

// KPI plots, drawn by Chart.js from the numbers the page carries (#kpi-data); a click on a
// bar opens the tasks behind it. Without JavaScript the same numbers are in the tables.
(function () {
  "use strict";

  function tasksUrl(base, query, figure, key) {
    var params = new URLSearchParams(query);
    params.set("figure", figure);
    params.set("key", key);
    return base + "?" + params.toString();
  }

  function draw(canvas, figure, data, base, query) {
    var unit = canvas.dataset.unit || "";
    return new window.Chart(canvas, {
      type: figure === "sla" || figure === "backlog" ? "line" : "bar",
      data: {
        labels: data.labels,
        datasets: [{ label: unit === "%" ? "% within SLA" : "tasks", data: data.values,
                     backgroundColor: "#1f6feb", borderColor: "#1f6feb", spanGaps: true }]
      },
      options: {
        animation: false, maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { beginAtZero: true, max: unit === "%" ? 100 : undefined,
                       ticks: { precision: 0 } } },
        onClick: function (_event, elements) {
          if (elements.length) {
            window.location = tasksUrl(base, query, figure, data.keys[elements[0].index]);
          }
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("kpi-data");
    if (!source || !window.Chart) { return; }
    var charts = JSON.parse(source.textContent);
    var query = JSON.parse(document.getElementById("kpi-query").textContent);
    var base = document.querySelector("[data-tasks-url]").dataset.tasksUrl;
    document.querySelectorAll("canvas[data-figure]").forEach(function (canvas) {
      var figure = canvas.dataset.figure;
      if (charts[figure]) { draw(canvas, figure, charts[figure], base, query); }
    });
  });
})();
