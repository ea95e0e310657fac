// The auditor pages' small script (templates/audit/). Loaded as a file, never inline, so that a
// Content-Security-Policy without 'unsafe-inline' allows it. Without it the pages still work:
// they show the state at load and a reload link.
(function () {
  "use strict";

  // An error summary takes the focus, so that keyboard and screen-reader users land on it.
  function focusErrors() {
    var summary = document.querySelector("[data-error-summary]");
    if (summary) {
      summary.focus();
    }
  }

  // Exports still queued or running are polled every 2 s until they finish.
  var POLL_MS = 2000;

  function label(table, key) {
    return table.getAttribute("data-label-" + key) || key;
  }

  function update(table, row, data) {
    var status = row.querySelector("[data-status]");
    if (status && status.getAttribute("data-status") !== data.status) {
      status.setAttribute("data-status", data.status);
      status.textContent = label(table, data.status);
    }
    var bar = row.querySelector("progress");
    if (bar) {
      bar.max = Math.max(data.total, 1);
      bar.value = data.progress;
    }
    var text = row.querySelector("[data-progress-text]");
    if (text) {
      text.textContent = data.progress + " " + label(table, "of") + " " + data.total;
    }
    if (data.status === "done" && data.download) {
      var cell = row.querySelector("[data-download-cell]");
      if (cell && !cell.querySelector("a")) {
        var link = document.createElement("a");
        link.href = data.download;
        link.setAttribute("download", "");
        link.textContent = label(table, "download");
        cell.textContent = "";
        cell.appendChild(link);
      }
    }
    if (data.status === "failed" && data.error) {
      var error = row.querySelector("[data-error]");
      if (!error && status) {
        error = document.createElement("small");
        error.className = "error";
        error.setAttribute("data-error", "");
        status.parentNode.appendChild(document.createTextNode(" "));
        status.parentNode.appendChild(error);
      }
      if (error) {
        error.textContent = data.error;
      }
    }
  }

  function poll(table, row) {
    var url = row.getAttribute("data-poll");
    window.fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("export status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        update(table, row, data);
        if (data.status === "queued" || data.status === "running") {
          window.setTimeout(function () { poll(table, row); }, POLL_MS);
        } else {
          row.removeAttribute("data-poll");
        }
      })
      .catch(function () {
        // A network hiccup: try again later; the reload link still shows the state.
        window.setTimeout(function () { poll(table, row); }, POLL_MS * 2);
      });
  }

  function pollExports() {
    var tables = document.querySelectorAll("table[data-exports]");
    Array.prototype.forEach.call(tables, function (table) {
      var rows = table.querySelectorAll("tr[data-poll]");
      Array.prototype.forEach.call(rows, function (row) {
        window.setTimeout(function () { poll(table, row); }, POLL_MS);
      });
    });
  }

  function start() {
    focusErrors();
    pollExports();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
