// Upload page: drag and drop, one request per file with its progress bar, at most three at a
// time; each answer is the file's outcome row (the same fragment the server renders without
// script). Without JavaScript the form posts every file at once and the page lists the outcomes.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData) return;
  var input = document.getElementById("files");
  var zone = document.getElementById("dropzone");
  var rows = document.getElementById("upload-rows");
  var csrf = form.querySelector("input[name=csrf_token]").value;
  var queue = [];
  var running = 0;

  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.remove("over");
    });
  });
  zone.addEventListener("drop", function (event) {
    enqueue(Array.prototype.slice.call(event.dataTransfer.files));
  });
  form.addEventListener("submit", function (event) {
    if (!input.files.length) return; // the server answers with the error next to the field
    event.preventDefault();
    enqueue(Array.prototype.slice.call(input.files));
    input.value = "";
  });

  function enqueue(files) {
    files.forEach(function (file) {
      var row = document.createElement("tr");
      row.setAttribute("data-file", file.name);
      row.setAttribute("data-outcome", "uploading");
      row.innerHTML = '<td></td><td><progress max="100" value="0"></progress></td><td>…</td>';
      row.cells[0].textContent = file.name;
      rows.insertBefore(row, rows.firstChild);
      queue.push({ file: file, row: row });
    });
    next();
  }

  function next() {
    while (running < 3 && queue.length) {
      running += 1;
      send(queue.shift());
    }
  }

  function send(item) {
    var data = new FormData();
    data.append("csrf_token", csrf);
    data.append("files", item.file, item.file.name);
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("X-Requested-With", "fetch");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.onprogress = function (event) {
      if (event.lengthComputable) {
        item.row.querySelector("progress").value = Math.round((event.loaded * 100) / event.total);
      }
    };
    xhr.onload = function () {
      var holder = document.createElement("tbody");
      holder.innerHTML = xhr.responseText;
      var fresh = holder.querySelector("tr");
      if (fresh) {
        item.row.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
      } else {
        item.row.setAttribute("data-outcome", "failed");
        item.row.cells[2].textContent = "HTTP " + xhr.status;
      }
      done();
    };
    xhr.onerror = function () {
      item.row.setAttribute("data-outcome", "failed");
      item.row.cells[2].textContent = "network error";
      done();
    };
    xhr.send(data);
  }

  function done() {
    running -= 1;
    next();
  }
})();
