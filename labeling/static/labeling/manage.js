// The manager's console: small conveniences over pages that work without JavaScript.
// - forms with data-confirm ask before they submit (htmx forms use hx-confirm);
// - buttons with data-copy copy the text of their target (the new API token);
// - "Add a criterion" adds a row to the criteria formset (without JavaScript the server's empty row does).
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  function showCopyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (!navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        const target = document.querySelector(button.dataset.copy);
        if (!target) return;
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
        });
      });
    });
  }

  // A new criterion row: the formset's empty form (in a <template>) with __prefix__ replaced by the
  // next index, and the management form's TOTAL_FORMS counting it, so Django reads the row.
  function addCriterionRows() {
    document.querySelectorAll("[data-criteria]").forEach(function (box) {
      const template = box.querySelector("template[data-criterion-template]");
      const total = box.querySelector('input[name$="-TOTAL_FORMS"]');
      const table = box.querySelector("table");
      const button = box.querySelector("button[data-add-criterion]");
      if (!template || !total || !table || !button) return;
      button.hidden = false;
      button.addEventListener("click", function () {
        const index = String(Number(total.value));
        const row = template.content.firstElementChild.cloneNode(true);
        row.querySelectorAll("[name], [id], [for], [aria-describedby]").forEach(function (element) {
          ["name", "id", "for", "aria-describedby"].forEach(function (attribute) {
            const value = element.getAttribute(attribute);
            if (value) element.setAttribute(attribute, value.replace(/__prefix__/g, index));
          });
        });
        table.appendChild(row);
        total.value = String(Number(index) + 1);
        const key = row.querySelector('input[name$="-key"]');
        if (key) key.focus();
      });
    });
  }

  function ready() {
    showCopyButtons();
    addCriterionRows();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
