// Keyboard shortcuts for the annotate page. No inline script: CSP forbids it.
// 1/A: left better, 2/B: right better, 3/T: tie, Enter: submit.
(function () {
  "use strict";
  var KEYS = { "1": "A", a: "A", "2": "B", b: "B", "3": "tie", t: "tie" };

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "radio") || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var form = document.querySelector("#item form.judge");
    if (!form) return;
    var choice = KEYS[event.key.toLowerCase()];
    if (choice) {
      var radio = form.querySelector('input[name="choice"][value="' + choice + '"]');
      if (radio) {
        radio.checked = true;
        radio.focus();
        event.preventDefault();
      }
      return;
    }
    if (event.key === "Enter") {
      // Links, buttons and summaries keep their own Enter (e.g. "Skip this item").
      if (event.target.closest && event.target.closest("a, button, summary, select, textarea, [role=button]")) return;
      event.preventDefault();
      if (form.querySelector('input[name="choice"]:checked')) {
        form.requestSubmit();
      } else {
        form.reportValidity();
      }
    }
  });
})();
