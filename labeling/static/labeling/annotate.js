// The annotate page's keyboard, ranking and timing. No inline script: CSP forbids it.
// Pairwise: 1/A, 2/B, 3/T choose; Z/X/C strength; D differences. Ranking: 1-8 select,
// arrows (or K/J) move, = ties. Always: N both bad, R rationale, S skip, G guidelines,
// ? help, Enter submit (Ctrl+Enter from the rationale).
(function () {
  "use strict";
  var CHOICES = { "1": "A", a: "A", "2": "B", b: "B", "3": "tie", t: "tie" };
  var STRENGTH = { z: "1", x: "2", c: "3" };
  var selected = null;
  var visibleMs = 0;
  var visibleSince = document.visibilityState === "visible" ? Date.now() : null;

  function form() { return document.querySelector("#item form.judge"); }
  function isRanking(f) { return f && f.classList.contains("mode-ranking"); }
  function typing(el) {
    var tag = el && el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (el && el.isContentEditable) ||
      (tag === "INPUT" && ["radio", "checkbox", "button", "submit"].indexOf(el.type) < 0);
  }
  function check(f, selector) {
    var input = f.querySelector(selector);
    if (input) { input.checked = true; input.focus(); }
    return !!input;
  }

  // ---- time the page was visible, sent with the judgment ----
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { visibleSince = Date.now(); }
    else if (visibleSince !== null) { visibleMs += Date.now() - visibleSince; visibleSince = null; }
  });
  function stampVisible(f) {
    var field = f.querySelector('input[name="visible_seconds"]');
    var total = visibleMs + (visibleSince !== null ? Date.now() - visibleSince : 0);
    if (field) { field.value = (total / 1000).toFixed(1); }
  }
  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (!f.classList.contains("judge")) { return; }
    stampVisible(f);
    if (f.dataset.live && window.fetch) { event.preventDefault(); send(f); }
  }, true);
  document.addEventListener("htmx:afterSwap", reset);

  function reset() {
    visibleMs = 0; selected = null;
    visibleSince = document.visibilityState === "visible" ? Date.now() : null;
  }

  // ---- submit: show the item leased ahead at once, send the judgment behind it ----
  function send(f) {
    var item = document.getElementById("item");
    var shownBefore = item.dataset.assignment;
    var body = new FormData(f);
    var upcoming = document.getElementById("next-item");
    if (upcoming) {
      item.querySelector(".item-body").replaceChildren(upcoming.content.cloneNode(true));
      item.dataset.assignment = upcoming.dataset.assignment;
      upcoming.remove();
      var error = item.querySelector(".error");
      if (error) { error.remove(); }
      ["mine", "today"].forEach(function (name) {
        var count = item.querySelector('[data-testid="' + name + '"]');
        if (count) { count.textContent = String(Number(count.textContent) + 1); }
      });
      reset();
      if (window.htmx) { window.htmx.process(item); }
    } else {
      f.querySelectorAll('button[type="submit"]').forEach(function (b) { b.disabled = true; });
    }
    fetch(f.action, { method: "POST", body: body, headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) { return response.text().then(function (text) { return [response, text]; }); })
      .then(function (result) { settle(result[0], result[1], shownBefore); })
      .catch(function () {
        var status = document.querySelector("#item .progress");
        if (status) { status.insertAdjacentHTML("afterend", '<p class="error" role="alert">Your judgment could not be sent; check your connection and reload.</p>'); }
      });
  }

  // The server answers with the current item and the next one leased ahead. When it
  // is the item already on screen, keep what the annotator is doing and refresh the rest.
  function settle(response, text, shownBefore) {
    var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("item");
    var item = document.getElementById("item");
    if (!fresh || !item) { return; }
    if (response.ok && fresh.dataset.assignment && fresh.dataset.assignment === item.dataset.assignment && fresh.dataset.assignment !== shownBefore) {
      item.querySelector(".progress").replaceWith(fresh.querySelector(".progress"));
      var old = document.getElementById("next-item");
      if (old) { old.remove(); }
      var upcoming = fresh.querySelector("#next-item");
      if (upcoming) { item.appendChild(upcoming); }
      return;
    }
    item.replaceWith(fresh);
    reset();
    if (window.htmx) { window.htmx.process(fresh); }
  }

  // ---- ranking: the list order is the ranking; a "tied" item shares the rank above ----
  function items(f) { return Array.prototype.slice.call(f.querySelectorAll("li.rank-item")); }
  function renumber(f) {
    var rank = 0;
    items(f).forEach(function (li, index) {
      if (index === 0) { li.classList.remove("tied"); }
      if (!li.classList.contains("tied")) { rank = index + 1; }
      li.querySelector(".rank-input").value = rank;
    });
  }
  function announce(f, text) {
    var status = f.querySelector(".status");
    if (status) { status.textContent = text; }
  }
  function describe(f, li) {
    return "Response " + li.dataset.label + " is now rank " + li.querySelector(".rank-input").value +
      (li.classList.contains("tied") ? ", tied with the one above" : "") + ".";
  }
  function select(f, li) {
    items(f).forEach(function (other) { other.classList.remove("selected"); other.removeAttribute("aria-current"); });
    selected = li;
    if (items(f).some(function (other) { return !other.querySelector(".rank-input").value; })) { renumber(f); }
    li.classList.add("selected");
    li.setAttribute("aria-current", "true");
    announce(f, "Selected response " + li.dataset.label + ".");
  }
  function move(f, li, step) {
    var list = li.parentNode;
    if (step < 0 && li.previousElementSibling) { list.insertBefore(li, li.previousElementSibling); }
    if (step > 0 && li.nextElementSibling) { list.insertBefore(li.nextElementSibling, li); }
    renumber(f);
    announce(f, describe(f, li));
  }
  function tie(f, li) {
    if (!li.previousElementSibling) { announce(f, "The first response cannot tie with one above."); return; }
    li.classList.toggle("tied");
    renumber(f);
    announce(f, describe(f, li));
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var f = button.closest("form.judge") || form();
    var li = button.closest("li.rank-item");
    var action = button.dataset.action;
    if (action === "up" || action === "down") { move(f, li, action === "up" ? -1 : 1); select(f, li); }
    else if (action === "tie") { tie(f, li); }
    else if (action === "expand") {
      var box = button.closest(".response");
      var open = box.classList.toggle("expanded");
      button.setAttribute("aria-expanded", String(open));
      button.textContent = open ? "Collapse" : "Expand";
    } else if (action === "diff") { toggleDiff(f, button); }
    else if (action === "help") { help(); }
  });
  function toggleDiff(f, button) {
    button = button || f.querySelector('button[data-action="diff"]');
    if (!button) { return; }
    var on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(on));
    f.querySelectorAll(".response").forEach(function (box) {
      box.querySelector(".rendered").hidden = on;
      box.querySelector(".diffview").hidden = !on;
    });
  }
  function help() {
    var dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open) { dialog.showModal(); }
  }

  // drag and drop
  var dragged = null;
  document.addEventListener("dragstart", function (event) {
    var li = event.target.closest && event.target.closest("li.rank-item");
    if (!li) { return; }
    dragged = li;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", li.dataset.responseId);
  });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest && event.target.closest("li.rank-item")) { event.preventDefault(); }
  });
  document.addEventListener("drop", function (event) {
    var target = event.target.closest && event.target.closest("li.rank-item");
    if (!dragged || !target || target === dragged) { return; }
    event.preventDefault();
    var box = target.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    target.parentNode.insertBefore(dragged, after ? target.nextElementSibling : target);
    var f = target.closest("form.judge");
    renumber(f);
    select(f, dragged);
    announce(f, describe(f, dragged));
    dragged = null;
  });
  document.addEventListener("dragend", function () { dragged = null; });

  // ---- the keyboard ----
  document.addEventListener("keydown", function (event) {
    var f = form();
    var key = event.key;
    if (event.target.tagName === "TEXTAREA" && key === "Enter" && (event.ctrlKey || event.metaKey) && f) {
      event.preventDefault(); f.requestSubmit(); return;
    }
    if (key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    var skipReason = event.target.name === "reason" && event.target.form && event.target.form.classList.contains("skip") ? event.target : null;
    if (key === "Enter" && skipReason && skipReason.value) {
      event.preventDefault(); skipReason.form.requestSubmit(); return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target) || !f) { return; }
    var lower = key.toLowerCase();
    if (key === "?") { event.preventDefault(); help(); return; }
    if (lower === "n") { event.preventDefault(); var bad = f.querySelector('input[name="both_bad"]'); bad.checked = !bad.checked; return; }
    if (lower === "r") { event.preventDefault(); f.querySelector('textarea[name="rationale"]').focus(); return; }
    if (lower === "g") { var d = document.querySelector("details.guidelines"); if (d) { d.open = !d.open; } return; }
    if (lower === "s") {
      var skip = document.querySelector("#item form.skip");
      if (skip) {
        event.preventDefault();
        var reason = skip.elements.namedItem("reason");  // in the decision bar, tied to the form by its form attribute
        if (reason && !reason.value) { reason.focus(); } else { skip.requestSubmit(); }
      }
      return;
    }
    if (isRanking(f)) {
      var list = items(f);
      var index = "12345678".indexOf(key);
      if (index < 0) { index = "abcdefgh".indexOf(lower); }
      if (index >= 0 && key.length === 1) {
        var byLabel = list.filter(function (li) { return li.dataset.label === "ABCDEFGH"[index]; })[0];
        if (byLabel) { event.preventDefault(); select(f, byLabel); }
        return;
      }
      if (selected && (key === "ArrowUp" || lower === "k")) { event.preventDefault(); move(f, selected, -1); return; }
      if (selected && (key === "ArrowDown" || lower === "j")) { event.preventDefault(); move(f, selected, 1); return; }
      if (selected && (key === "=" || key === "+")) { event.preventDefault(); tie(f, selected); return; }
    } else {
      if (CHOICES[lower]) { event.preventDefault(); check(f, 'input[name="choice"][value="' + CHOICES[lower] + '"]'); return; }
      if (STRENGTH[lower]) { event.preventDefault(); check(f, 'input[name="strength"][value="' + STRENGTH[lower] + '"]'); return; }
      if (lower === "d") { event.preventDefault(); toggleDiff(f); return; }
    }
    if (key === "Enter") {
      // Links, buttons and summaries keep their own Enter (e.g. "Skip this item").
      if (event.target.closest && event.target.closest("a, button, summary, select, [role=button]")) { return; }
      event.preventDefault();
      if (isRanking(f) && items(f).some(function (li) { return !li.querySelector(".rank-input").value; })) {
        // Untouched: say what to do, and keep the focus (and so the shortcuts) where it is.
        announce(f, "Put the responses in order first: press a response's letter, then ↑ or ↓ to move it (= ties it with the one above).");
        return;
      }
      if (f.checkValidity()) { f.requestSubmit(); } else { f.reportValidity(); }
    }
  });
})();
