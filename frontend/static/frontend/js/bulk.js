// The Files page's "tick every file on this page" box. Without JavaScript
// the box stays hidden and each row is ticked on its own.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var all = document.getElementById("select-all");
    if (!all) return;
    var rows = Array.prototype.slice.call(document.querySelectorAll(".row-select"));
    if (!rows.length) return;
    all.hidden = false;
    function sync() {
      var ticked = rows.filter(function (box) { return box.checked; }).length;
      all.checked = ticked === rows.length;
      all.indeterminate = ticked > 0 && ticked < rows.length;
    }
    all.addEventListener("change", function () {
      rows.forEach(function (box) { box.checked = all.checked; });
      sync();
    });
    rows.forEach(function (box) { box.addEventListener("change", sync); });
    sync();
  });
})();
