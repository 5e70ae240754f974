// Keyboard navigation as in mail readers: j/k move, Enter opens, s stars.
// Loaded from the console itself (the Content-Security-Policy allows no inline script).
"use strict";
(function () {
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr.row")); }
  var current = -1;
  function focus(index) {
    var all = rows();
    if (!all.length) { return; }
    index = Math.max(0, Math.min(all.length - 1, index));
    if (current >= 0 && all[current]) { all[current].classList.remove("focused"); }
    current = index;
    all[current].classList.add("focused");
    all[current].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) { return; }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var all = rows();
    if (event.key === "j") { focus(current + 1); event.preventDefault(); }
    else if (event.key === "k") { focus(current < 0 ? 0 : current - 1); event.preventDefault(); }
    else if (event.key === "Enter" && current >= 0 && all[current] && all[current].dataset.href) {
      window.location.assign(all[current].dataset.href); event.preventDefault();
    } else if (event.key === "s") {
      var form = null;
      if (current >= 0 && all[current] && all[current].dataset.star) { form = document.getElementById(all[current].dataset.star); }
      else { var button = document.getElementById("star-button"); if (button) { button.click(); event.preventDefault(); return; } }
      if (form) { form.submit(); event.preventDefault(); }
    }
  });
  // Shredding asks again in the page that follows; nothing else needs script.
})();
