/* poolkit's interactive pooling page.
 *
 * Every number shown comes from the JSON embedded in the page (id "poolkit-data"), which poolkit
 * wrote from its engine's results; this script does no arithmetic on them, it only shows them.
 * In the live app (`poolkit serve`, data-live="1") a change of the form asks the server's JSON API
 * for a new explanation, and a file is sent to it to be read.  Text is always set with
 * textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  var root = document.getElementById("poolkit");
  var LIVE = root.getAttribute("data-live") === "1";
  var D = JSON.parse(document.getElementById("poolkit-data").textContent);
  var step = 0, playing = false, timer = null, version = 0, dialect = "poolkit";
  var cells = {};        // table id -> {key -> td}
  var containing = {};   // input key -> [window indices]
  var shares = [];       // per window: {key -> [share label, running-sum label]}
  var marked = [];       // [td, class] set for the current step
  var hovered = [];      // tds with the "hovered" class

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (k === "class") { e.className = attrs[k]; } else { e.setAttribute(k, attrs[k]); }
      }
    }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function key(r, c) { return r + "," + c; }
  function pos(rc) { return D.ndim === 1 ? String(rc[1]) : "(" + rc[0] + ", " + rc[1] + ")"; }
  function nWindows() { return D.windows.length; }
  function windowAt(r, c) { return r * D.out_shape2[1] + c; }

  // ------------------------------------------------------------------------------------------
  // building the page from the data
  // ------------------------------------------------------------------------------------------

  var header, toolbar, body, details, form, errorBox, statusLine;

  function buildShell() {
    root.textContent = "";
    header = el("header");
    root.appendChild(header);
    if (LIVE) { buildForm(); }
    toolbar = el("div", {"class": "toolbar", role: "group", "aria-label": "Step through the windows"});
    root.appendChild(toolbar);
    buildToolbar();
    body = el("div", {id: "pk-body"});
    root.appendChild(body);
    root.appendChild(el("footer", {id: "pk-footer"}));
  }

  function buildFooter() {
    document.getElementById("pk-footer").textContent = "Every number on this page was computed by poolkit " +
      D.poolkit_version + " (" + D.function + (D.backward ? " and " + D.function + "_backward" : "") +
      "); the page only shows them.";
  }

  function buildHeader() {
    header.textContent = "";
    header.appendChild(el("h1", {id: "pk-title"}, D.title));
    header.appendChild(el("p", {"class": "params", id: "pk-params"}, D.params));
    var rules = el("details", {"class": "rules"});
    rules.appendChild(el("summary", null, "Output size: " + D.out_shape.join("×")));
    rules.appendChild(el("code", null, D.size_formula));
    D.size_rules.forEach(function (r) { rules.appendChild(el("div", {"class": "mono"}, r)); });
    header.appendChild(rules);
  }

  function button(id, label, text, handler) {
    var b = el("button", {type: "button", id: id, "aria-label": label, title: label}, text);
    b.addEventListener("click", handler);
    return b;
  }

  function buildToolbar() {
    toolbar.appendChild(button("pk-first", "First window (Home)", "|◀", function () { stop(); show(0); }));
    toolbar.appendChild(button("pk-prev", "Previous window (←)", "◀", function () { stop(); show(step - 1); }));
    var play = button("pk-play", "Play (Space)", "▶ Play", togglePlay);
    play.setAttribute("aria-pressed", "false");
    toolbar.appendChild(play);
    toolbar.appendChild(button("pk-next", "Next window (→)", "▶", function () { stop(); show(step + 1); }));
    toolbar.appendChild(button("pk-last", "Last window (End)", "▶|", function () { stop(); show(nWindows() - 1); }));
    var slider = el("input", {type: "range", id: "pk-slider", min: "0", max: "0", value: "0", step: "1",
                              "aria-label": "Window"});
    slider.addEventListener("input", function () { stop(); show(parseInt(slider.value, 10)); });
    toolbar.appendChild(slider);
    toolbar.appendChild(el("span", {"class": "position", id: "pk-pos", "aria-hidden": "true"}));
    var speedLabel = el("label", null, "speed ");
    var speed = el("select", {id: "pk-speed"});
    [["1600", "slow"], ["800", "normal"], ["300", "fast"]].forEach(function (o) {
      var opt = el("option", {value: o[0]}, o[1]);
      if (o[0] === "800") { opt.selected = true; }
      speed.appendChild(opt);
    });
    speed.addEventListener("change", function () { if (playing) { stop(); togglePlay(); } });
    speedLabel.appendChild(speed);
    toolbar.appendChild(speedLabel);
    toolbar.appendChild(button("pk-theme", "Colour theme: follows the system", "Theme: auto", cycleTheme));
    var keys = el("p", {"class": "keys"});
    [["Space", "play / pause"], ["← →", "previous / next window"], ["Home End", "first / last"],
     ["Tab", "to a grid, then arrows to inspect its cells (Enter on an output cell jumps to its window)"]]
      .forEach(function (k, i) {
        if (i) { keys.appendChild(document.createTextNode(" · ")); }
        k[0].split(" ").forEach(function (name, j) {
          if (j) { keys.appendChild(document.createTextNode(" ")); }
          keys.appendChild(el("kbd", null, name));
        });
        keys.appendChild(document.createTextNode(" " + k[1]));
      });
    toolbar.appendChild(keys);
  }

  function cycleTheme() {
    var order = ["auto", "light", "dark"];
    var html = document.documentElement;
    var next = order[(order.indexOf(html.getAttribute("data-theme")) + 1) % order.length];
    html.setAttribute("data-theme", next);
    var b = document.getElementById("pk-theme");
    b.textContent = "Theme: " + next;
    b.setAttribute("aria-label", next === "auto" ? "Colour theme: follows the system" : "Colour theme: " + next);
  }

  function grid(id, caption, rows, cols, r0, c0, labelOf) {
    var table = el("table", {"class": "grid", id: id, role: "grid", "aria-label": caption});
    var map = {};
    var big = cols > 14 || rows > 14;
    if (big) { table.style.setProperty("--cw", "2.3em"); table.style.setProperty("--ch", "1.8em");
               table.style.setProperty("--fs", "0.8rem"); }
    var head = el("tr");
    head.appendChild(el("th", {"aria-hidden": "true"}));
    for (var c = c0; c < c0 + cols; c++) { head.appendChild(el("th", {"aria-hidden": "true"}, D.ndim === 1 ? c : c)); }
    table.appendChild(head);
    var first = true;
    for (var r = r0; r < r0 + rows; r++) {
      var tr = el("tr");
      tr.appendChild(el("th", {"aria-hidden": "true"}, D.ndim === 1 ? "" : r));
      for (c = c0; c < c0 + cols; c++) {
        var td = el("td", {role: "gridcell", tabindex: first ? "0" : "-1", "data-r": r, "data-c": c});
        first = false;
        var text = labelOf(r, c, td);
        td.textContent = text;
        map[key(r, c)] = td;
        tr.appendChild(td);
      }
      table.appendChild(tr);
    }
    cells[id] = map;
    table.addEventListener("keydown", gridKeys);
    return table;
  }

  function panel(id, title, sub, table) {
    var p = el("div", {"class": "panel", id: id});
    var h = el("h2", null, title + " ");
    if (sub) { h.appendChild(el("span", {"class": "sub"}, sub)); }
    p.appendChild(h);
    var s = el("div", {"class": "scroll"});
    s.appendChild(table);
    p.appendChild(s);
    return p;
  }

  function buildBody() {
    body.textContent = "";
    cells = {};
    var panels = el("div", {"class": "panels"});
    var lo = D.lo, hi = D.hi, shape = D.shape2;
    var inTable = grid("pk-in", "input with its padding", hi[0] - lo[0], hi[1] - lo[1], lo[0], lo[1], function (r, c, td) {
      var inside = r >= 0 && r < shape[0] && c >= 0 && c < shape[1];
      if (inside) {
        if (r === 0) { td.classList.add("in-top"); }
        if (r === shape[0] - 1) { td.classList.add("in-bottom"); }
        if (c === 0) { td.classList.add("in-left"); }
        if (c === shape[1] - 1) { td.classList.add("in-right"); }
        return D.x[r][c];
      }
      var padded = r >= -D.pads2[0][0] && r < shape[0] + D.pads2[0][1] && c >= -D.pads2[1][0] && c < shape[1] + D.pads2[1][1];
      td.classList.add(padded ? "pad" : "outside");
      return padded ? D.pad_label : "";
    });
    panels.appendChild(panel("pk-p-in", "Input", D.in_sub, inTable));
    var outTable = grid("pk-out", "output", D.out_shape2[0], D.out_shape2[1], 0, 0, function (r, c, td) {
      if (D.windows[windowAt(r, c)].x) { td.classList.add("extra"); }
      return "";
    });
    panels.appendChild(panel("pk-p-out", "Output", D.out_sub, outTable));
    if (D.backward) {
      var gin = grid("pk-gin", "gradient of the input", shape[0], shape[1], 0, 0, function () { return "0"; });
      panels.appendChild(panel("pk-p-gin", "Gradient of the input", "← the sum of every window's share", gin));
      var gout = grid("pk-gout", "gradient of the output", D.out_shape2[0], D.out_shape2[1], 0, 0, function (r, c) {
        return D.grad_output[r][c];
      });
      panels.appendChild(panel("pk-p-gout", "Gradient of the output",
                               D.default_grad ? "(1, 2, … so every share can be traced)" : "(given)", gout));
    }
    body.appendChild(panels);
    details = el("div", {"class": "details", id: "pk-details", "aria-live": "polite"});
    body.appendChild(details);
    body.appendChild(buildLegend());
    body.appendChild(buildDialects());
    [inTable, outTable].concat(D.backward ? [document.getElementById("pk-gin"), document.getElementById("pk-gout")] : [])
      .forEach(function (t) {
        t.addEventListener("mouseover", onHover);
        t.addEventListener("focusin", onHover);
        t.addEventListener("mouseleave", clearHover);
        t.addEventListener("focusout", clearHover);
      });
    // the windows that contain each input cell, and each window's gradient shares
    containing = {};
    shares = [];
    D.windows.forEach(function (w, i) {
      w.cells.forEach(function (rc, j) {
        if (w.reg[j] !== "i") { return; }
        var k = key(rc[0], rc[1]);
        (containing[k] = containing[k] || []).push(i);
      });
      var m = {};
      (w.gt || []).forEach(function (g) { m[key(g[0][0], g[0][1])] = [g[1], g[2]]; });
      shares.push(m);
    });
    var slider = document.getElementById("pk-slider");
    slider.max = String(nWindows() - 1);
  }

  function buildLegend() {
    var ul = el("ul", {"class": "legend", id: "pk-legend", "aria-label": "Legend"});
    function item(cls, text) {
      var li = el("li");
      li.appendChild(el("span", {"class": "swatch " + cls, "aria-hidden": "true"}));
      li.appendChild(el("span", null, text));
      ul.appendChild(li);
    }
    item("frame", "the input (thick frame)");
    item("win", "the current window's cells");
    if (D.op === "max") { item("winner", "the window's maximum (where its gradient goes)"); }
    item("done", "output cells computed so far");
    if (D.padded) {
      item("pad", D.op === "max" ? "padding: counts as −∞, never wins a max" :
           D.op === "avg" ? (D.count_include_pad ? "padding: counts as 0 and in the divisor" :
                             "padding: not counted (divisor = cells inside the input)") :
           "padding: counts as 0");
    }
    if (D.has_outside) { item("outside", "past the padding: only a ceil-mode window reaches here; never counted"); }
    if (D.has_extra) { item("extra", "a window that exists only in ceil mode"); }
    if (D.backward) { item("touched", "cells the current window's gradient goes to"); }
    item("share", "hover or focus a cell: the windows it belongs to");
    if (D.dialects && D.dialects.length) { item("differs", "a framework's value that differs from poolkit's"); }
    return ul;
  }

  // ------------------------------------------------------------------------------------------
  // the frameworks
  // ------------------------------------------------------------------------------------------

  function buildDialects() {
    var sec = el("section", {"class": "dialects", id: "pk-dialects", "aria-labelledby": "pk-dialects-h"});
    sec.appendChild(el("h2", {id: "pk-dialects-h"}, "The same layer in PyTorch, TensorFlow and ONNX"));
    sec.appendChild(el("p", {"class": "note"}, "Each framework's numbers come from poolkit.compat, which follows " +
      "its rules exactly (checked against the frameworks themselves in poolkit's tests); none is needed here."));
    var summary = el("ul", {"class": "dialect-summary", id: "pk-dialect-summary"});
    D.dialects.forEach(function (d) {
      var li = el("li", {"data-dialect": d.key});
      li.appendChild(el("strong", null, d.name + ": "));
      var cls = d.error ? "none" : (d.same ? "same" : "diff");
      var text = d.error ? "no equivalent" : (d.same ? "same numbers as poolkit" :
                 (d.differs ? d.n_differs + " of " + d.n_cells + " cells differ" :
                  "output " + d.out_shape.join("×") + " instead of " + D.out_shape.join("×")));
      li.appendChild(el("span", {"class": "badge " + cls}, text));
      summary.appendChild(li);
    });
    sec.appendChild(summary);
    var fs = el("fieldset", {"class": "dialect-switch"});
    fs.appendChild(el("legend", null, "Dialect"));
    [["poolkit", "poolkit"]].concat(D.dialects.map(function (d) { return [d.key, d.name]; })).forEach(function (o) {
      var lab = el("label");
      var input = el("input", {type: "radio", name: "pk-dialect", value: o[0], id: "pk-dialect-" + o[0]});
      if (o[0] === dialect) { input.checked = true; }
      input.addEventListener("change", function () { dialect = o[0]; showDialect(); });
      lab.appendChild(input);
      lab.appendChild(document.createTextNode(o[1]));
      fs.appendChild(lab);
    });
    sec.appendChild(fs);
    sec.appendChild(el("div", {id: "pk-dialect-view"}));
    return sec;
  }

  function showDialect() {
    var view = document.getElementById("pk-dialect-view");
    view.textContent = "";
    var d = null;
    D.dialects.forEach(function (e) { if (e.key === dialect) { d = e; } });
    if (!d) { dialect = "poolkit"; }
    view.setAttribute("data-dialect", dialect);
    var call = d ? d.call : D.call;
    if (call) { view.appendChild(el("code", {"class": "call", id: "pk-call"}, call)); }
    if (d && d.error) {
      view.appendChild(el("p", {"class": "error", id: "pk-dialect-error"}, d.name + ": " + d.error));
      return;
    }
    (d ? d.notes : []).forEach(function (n) { view.appendChild(el("p", {"class": "note"}, n)); });
    var out = d ? d.out : D.out;
    var rows = out.length, cols = out[0].length;
    var t = grid("pk-dialect-out", (d ? d.name : "poolkit") + " output", rows, cols, 0, 0, function (r, c, td) {
      if (d && d.differs && d.differs[r][c]) { td.classList.add("differs"); }
      return out[r][c];
    });
    var p = el("div", {"class": "panel"});
    p.appendChild(el("h2", null, (d ? d.name : "poolkit") + " output " + rows + "×" + cols +
                     (d && d.differs ? "" : "")));
    var s = el("div", {"class": "scroll"});
    s.appendChild(t);
    p.appendChild(s);
    view.appendChild(p);
  }

  // ------------------------------------------------------------------------------------------
  // one step: a window, the output so far, the gradient so far
  // ------------------------------------------------------------------------------------------

  function mark(td, cls) { td.classList.add(cls); marked.push([td, cls]); }

  function show(i) {
    var n = nWindows();
    i = Math.max(0, Math.min(n - 1, i));
    step = i;
    marked.forEach(function (m) { m[0].classList.remove(m[1]); });
    marked = [];
    var w = D.windows[i];
    var inCells = cells["pk-in"];
    w.cells.forEach(function (rc) {
      var td = inCells[key(rc[0], rc[1])];
      var win = w.am && w.am[0] === rc[0] && w.am[1] === rc[1];
      mark(td, win ? "winner" : "win");
    });
    var out = cells["pk-out"];
    D.windows.forEach(function (v, j) {
      var td = out[key(v.i[0], v.i[1])];
      td.textContent = j <= i ? v.r : "";
      if (j < i) { mark(td, "done"); } else if (j === i) { mark(td, "current"); }
    });
    if (D.backward) {
      var gin = cells["pk-gin"];
      var acc = {};
      if (i === n - 1) {
        for (var k in gin) { var p = k.split(","); acc[k] = D.grad_input[+p[0]][+p[1]]; }
      } else {
        for (var j = 0; j <= i; j++) { for (var s in shares[j]) { acc[s] = shares[j][s][1]; } }
      }
      for (var k2 in gin) {
        var label = acc[k2] === undefined ? "0" : acc[k2];
        gin[k2].textContent = label;
        gin[k2].classList.toggle("zero", label === "0");
      }
      for (var t in shares[i]) { if (gin[t]) { mark(gin[t], "touched"); } }
      mark(cells["pk-gout"][key(w.i[0], w.i[1])], "current");
    }
    var slider = document.getElementById("pk-slider");
    slider.value = String(i);
    var where = "window " + (i + 1) + " of " + n;
    slider.setAttribute("aria-valuetext", where + ", output " + pos(w.i));
    document.getElementById("pk-pos").textContent = where;
    if (!hovered.length) { describeStep(); }
  }

  function describeStep() {
    var w = D.windows[step];
    details.textContent = "";
    details.appendChild(el("p", null, "Window " + pos(w.i) + " (" + (step + 1) + " of " + nWindows() + "): " + w.where));
    details.appendChild(el("p", {"class": "formula", id: "pk-formula"}, w.f));
    if (w.x) { details.appendChild(el("p", null, "This window exists only because of ceil mode: floor mode stops before it.")); }
    if (D.backward) { details.appendChild(el("p", {"class": "formula", id: "pk-gradient"}, w.gw)); }
  }

  function togglePlay() {
    var b = document.getElementById("pk-play");
    if (playing) { stop(); return; }
    playing = true;
    b.textContent = "⏸ Pause";
    b.setAttribute("aria-pressed", "true");
    b.setAttribute("aria-label", "Pause (Space)");
    if (step >= nWindows() - 1) { show(0); }
    var ms = parseInt(document.getElementById("pk-speed").value, 10);
    timer = setInterval(function () {
      if (step >= nWindows() - 1) { stop(); return; }
      show(step + 1);
    }, ms);
  }

  function stop() {
    if (timer) { clearInterval(timer); timer = null; }
    playing = false;
    var b = document.getElementById("pk-play");
    if (b) { b.textContent = "▶ Play"; b.setAttribute("aria-pressed", "false"); b.setAttribute("aria-label", "Play (Space)"); }
  }

  // ------------------------------------------------------------------------------------------
  // hovering (or focusing) a cell
  // ------------------------------------------------------------------------------------------

  function hover(td) { td.classList.add("hovered"); hovered.push(td); }

  function clearHover() {
    hovered.forEach(function (td) { td.classList.remove("hovered", "share"); });
    hovered = [];
    if (details) { describeStep(); }
  }

  function onHover(e) {
    var td = e.target.closest ? e.target.closest("td") : null;
    if (!td || !td.hasAttribute("data-r")) { return; }
    var table = td.closest("table").id;
    var r = parseInt(td.getAttribute("data-r"), 10), c = parseInt(td.getAttribute("data-c"), 10);
    clearHover();
    if (table === "pk-out" || table === "pk-gout") { inspectOutput(r, c); } else { inspectInput(r, c); }
  }

  function inspectOutput(r, c) {
    var i = windowAt(r, c), w = D.windows[i];
    var inCells = cells["pk-in"];
    w.cells.forEach(function (rc) { var td = inCells[key(rc[0], rc[1])]; hover(td); td.classList.add("share"); });
    hover(cells["pk-out"][key(r, c)]);
    if (D.backward) { hover(cells["pk-gout"][key(r, c)]); }
    details.textContent = "";
    details.setAttribute("data-inspect", "output " + key(r, c));
    details.appendChild(el("p", null, "Output " + pos(w.i) + " = " + w.r + " comes from window " + (i + 1) + ": " + w.where));
    var vals = [];
    w.cells.forEach(function (rc, j) {
      vals.push(pos(rc) + " " + (w.reg[j] === "i" ? D.x[rc[0]][rc[1]] : (w.reg[j] === "p" ? "padding" : "past the padding")));
    });
    details.appendChild(el("p", {id: "pk-reduced"}, "Cells it reduces: " + vals.join(", ")));
    details.appendChild(el("p", {"class": "formula"}, w.f));
    if (w.dv !== null && w.dv !== undefined) {
      details.appendChild(el("p", {id: "pk-divisor"}, "Divisor: " + w.dv + " (" + w.dv_why + ")"));
    }
    if (w.x) { details.appendChild(el("p", null, "This window exists only because of ceil mode.")); }
    if (D.backward) { details.appendChild(el("p", {"class": "formula"}, w.gw)); }
  }

  function inspectInput(r, c) {
    var shape = D.shape2, k = key(r, c);
    var inside = r >= 0 && r < shape[0] && c >= 0 && c < shape[1];
    details.textContent = "";
    details.setAttribute("data-inspect", "input " + k);
    var td = cells["pk-in"][k];
    if (td) { hover(td); }
    if (!inside) {
      var why = td && td.classList.contains("pad") ?
        (D.op === "max" ? "A padding cell: it counts as −∞, so it never wins a max and gets no gradient." :
         D.op === "avg" ? (D.count_include_pad ? "A padding cell: it counts as 0, and in the divisor of every window that covers it." :
                           "A padding cell: it counts as 0 and not in the divisor (count_include_pad=False).") :
         "A padding cell: it counts as 0.") :
        "Past the padding: only a ceil-mode window reaches here, and it is never counted.";
      details.appendChild(el("p", null, "Cell " + pos([r, c]) + ". " + why));
      return;
    }
    if (D.backward && cells["pk-gin"][k]) { hover(cells["pk-gin"][k]); }
    var list = containing[k] || [];
    details.appendChild(el("p", {id: "pk-windows"}, "Input cell " + pos([r, c]) + " (value " + D.x[r][c] + ") lies in " +
      list.length + " window" + (list.length === 1 ? "" : "s") + (list.length ? ":" : " (no window covers it).")));
    var ul = el("ul", {id: "pk-shares"});
    list.forEach(function (i) {
      var w = D.windows[i];
      var o = cells["pk-out"][key(w.i[0], w.i[1])];
      hover(o);
      o.classList.add("share");
      if (D.backward) { hover(cells["pk-gout"][key(w.i[0], w.i[1])]); }
      var text = "window " + pos(w.i);
      if (D.op === "max") { text += w.am && w.am[0] === r && w.am[1] === c ? ": its maximum" : ": not its maximum"; }
      if (D.backward) {
        var s = shares[i][k];
        text += ", share of the gradient " + (s ? s[0] : "0");
      }
      ul.appendChild(el("li", {"data-window": key(w.i[0], w.i[1])}, text));
    });
    if (list.length) { details.appendChild(ul); }
    if (D.backward) {
      details.appendChild(el("p", {id: "pk-total"}, "Its gradient, the sum of these shares: " + D.grad_input[r][c]));
    }
  }

  function gridKeys(e) {
    var td = e.target.closest("td");
    if (!td) { return; }
    var table = td.closest("table");
    var map = cells[table.id];
    var r = parseInt(td.getAttribute("data-r"), 10), c = parseInt(td.getAttribute("data-c"), 10);
    var moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
    if (moves[e.key]) {
      var next = map[key(r + moves[e.key][0], c + moves[e.key][1])];
      if (next) { td.setAttribute("tabindex", "-1"); next.setAttribute("tabindex", "0"); next.focus(); }
      e.preventDefault();
      e.stopPropagation();
    } else if (e.key === "Enter" && (table.id === "pk-out" || table.id === "pk-gout")) {
      stop();
      show(windowAt(r, c));
      e.preventDefault();
    }
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    if (t.type === "range" && e.key === " ") { togglePlay(); e.preventDefault(); return; }  // the slider: Space plays
    if (t.closest && (t.closest("input, textarea, select, table.grid"))) { return; }
    var onButton = t.tagName === "BUTTON";
    if ((e.key === " " || e.key === "Enter") && onButton) { return; }
    if (e.key === " " || e.key === "k") { togglePlay(); e.preventDefault(); }
    else if (e.key === "ArrowRight" || e.key === "l") { stop(); show(step + 1); e.preventDefault(); }
    else if (e.key === "ArrowLeft" || e.key === "j") { stop(); show(step - 1); e.preventDefault(); }
    else if (e.key === "Home") { stop(); show(0); e.preventDefault(); }
    else if (e.key === "End") { stop(); show(nWindows() - 1); e.preventDefault(); }
  });

  // ------------------------------------------------------------------------------------------
  // the live app: the form, the JSON API, uploads
  // ------------------------------------------------------------------------------------------

  var fields = [
    ["matrix", "Matrix: a literal like [[1,2],[3,4]], or rows of numbers", "textarea"],
    ["op", "Operation", "select", [["max", "max"], ["avg", "average"], ["lp", "Lp"]]],
    ["kernel", "Kernel (2, 2x3)", "text"],
    ["stride", "Stride (empty: the kernel)", "text"],
    ["padding", "Padding (1, 1,0, ((0,1),(1,0)), same)", "text"],
    ["dilation", "Dilation", "text"],
    ["p", "p (Lp)", "number"],
    ["ceil_mode", "ceil mode", "check"],
    ["count_include_pad", "count padding in the divisor (average)", "check"],
    ["backward", "backward pass", "check"]
  ];

  function buildForm() {
    form = el("form", {"class": "params-form", id: "pk-form", "aria-label": "Pooling parameters", novalidate: ""});
    fields.forEach(function (f) {
      var lab = el("label", {"class": f[2] === "check" ? "check" : (f[2] === "textarea" ? "matrix" : "")});
      var input;
      if (f[2] === "textarea") {
        input = el("textarea", {name: f[0], id: "f-" + f[0], spellcheck: "false", rows: "5"});
      } else if (f[2] === "select") {
        input = el("select", {name: f[0], id: "f-" + f[0]});
        f[3].forEach(function (o) { input.appendChild(el("option", {value: o[0]}, o[1])); });
      } else if (f[2] === "check") {
        input = el("input", {type: "checkbox", name: f[0], id: "f-" + f[0]});
      } else {
        input = el("input", {type: f[2], name: f[0], id: "f-" + f[0], autocomplete: "off", spellcheck: "false"});
        if (f[2] === "number") { input.setAttribute("step", "any"); }
      }
      if (f[2] === "check") { lab.appendChild(input); lab.appendChild(document.createTextNode(f[1])); }
      else { lab.appendChild(document.createTextNode(f[1])); lab.appendChild(input); }
      form.appendChild(lab);
      input.addEventListener(f[2] === "check" || f[2] === "select" ? "change" : "input", schedule);
    });
    var actions = el("div", {"class": "row-actions"});
    var file = el("input", {type: "file", id: "f-file", accept: ".npy,.csv,.txt,image/*", "aria-label": "Load a .npy, .csv or image file"});
    var fileLabel = el("label", {"class": "check"}, "Load .npy / .csv / image: ");
    fileLabel.appendChild(file);
    file.addEventListener("change", upload);
    actions.appendChild(fileLabel);
    var go = el("button", {type: "submit", id: "f-go"}, "Explain");
    actions.appendChild(go);
    statusLine = el("span", {"class": "note", id: "pk-status", role: "status"});
    actions.appendChild(statusLine);
    form.appendChild(actions);
    form.addEventListener("submit", function (e) { e.preventDefault(); recompute(); });
    root.appendChild(form);
    errorBox = el("div", {"class": "error", id: "pk-error", role: "alert", hidden: ""});
    root.appendChild(errorBox);
    fillForm(D.form || {});
  }

  function fillForm(values) {
    fields.forEach(function (f) {
      var input = document.getElementById("f-" + f[0]);
      if (!(f[0] in values)) { return; }
      if (f[2] === "check") { input.checked = !!values[f[0]]; } else { input.value = values[f[0]]; }
    });
    syncEnabled();
  }

  function syncEnabled() {
    var op = document.getElementById("f-op").value;
    document.getElementById("f-p").disabled = op !== "lp";
    document.getElementById("f-count_include_pad").disabled = op !== "avg";
  }

  function formValues() {
    var v = {};
    fields.forEach(function (f) {
      var input = document.getElementById("f-" + f[0]);
      v[f[0]] = f[2] === "check" ? input.checked : input.value;
    });
    return v;
  }

  var pending = null, inflight = 0;
  function schedule() {
    syncEnabled();
    if (pending) { clearTimeout(pending); }
    pending = setTimeout(recompute, 300);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    body.classList.add("stale");
    root.setAttribute("data-state", "error");
    statusLine.textContent = "showing the last good result";
  }

  function post(path, payload) {
    return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(payload)})
      .then(function (resp) {
        return resp.text().then(function (text) {
          var data = null;
          try { data = JSON.parse(text); } catch (err) { data = null; }
          if (!data) { throw new Error("the server answered " + resp.status + ": " + text.slice(0, 200)); }
          return data;
        });
      });
  }

  function recompute() {
    if (pending) { clearTimeout(pending); pending = null; }
    var mine = ++inflight;
    root.setAttribute("data-state", "busy");
    statusLine.textContent = "computing…";
    post("api/explain", formValues()).then(function (res) {
      if (mine !== inflight) { return; }
      if (!res.ok) { showError(res.error); return; }
      errorBox.hidden = true;
      errorBox.textContent = "";
      body.classList.remove("stale");
      var keep = step;
      D = res.data;
      render(Math.min(keep, nWindows() - 1));
      statusLine.textContent = "computed by the engine in " + res.ms + " ms";
    }).catch(function (err) {
      if (mine !== inflight) { return; }
      showError("The server could not be reached (" + err.message + "). Is poolkit serve still running?");
    });
  }

  function upload() {
    var input = document.getElementById("f-file");
    var f = input.files && input.files[0];
    if (!f) { return; }
    var reader = new FileReader();
    reader.onload = function () {
      var bytes = new Uint8Array(reader.result), bin = "";
      for (var i = 0; i < bytes.length; i += 8192) { bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192)); }
      root.setAttribute("data-state", "busy");
      statusLine.textContent = "reading " + f.name + "…";
      post("api/load", {name: f.name, data: btoa(bin)}).then(function (res) {
        if (!res.ok) { showError(res.error); return; }
        document.getElementById("f-matrix").value = res.matrix;
        statusLine.textContent = res.note;
        recompute();
      }).catch(function (err) { showError("The server could not be reached (" + err.message + ")."); });
      input.value = "";
    };
    reader.readAsArrayBuffer(f);
  }

  // ------------------------------------------------------------------------------------------
  // start
  // ------------------------------------------------------------------------------------------

  function render(at) {
    stop();
    hovered = [];
    marked = [];
    buildHeader();
    buildBody();
    buildFooter();
    showDialect();
    show(at || 0);
    version += 1;
    root.setAttribute("data-version", String(version));
    root.setAttribute("data-state", "ready");
    document.title = D.title + " — poolkit";
  }

  buildShell();
  render(0);

  // inside a notebook's iframe: grow the frame to the page
  try {
    if (window.frameElement && window.ResizeObserver) {
      var fit = function () { window.frameElement.style.height = (document.documentElement.scrollHeight + 8) + "px"; };
      new ResizeObserver(fit).observe(document.body);
      fit();
    }
  } catch (err) { /* another origin: keep the frame's own height */ }
}());
