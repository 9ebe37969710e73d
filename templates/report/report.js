// graphc report: views of the graph (zoom, pan, collapse) and one selection shared by the
// drawing, the generated source, the schedule, the memory timeline and the model's lines.
// Plain DOM code, no library: the page must open without a network.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("graphc-data").textContent);
  const FULL = "*";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const canvas = $("#canvas");
  const state = { stage: data.stages[0], view: {}, boxes: new Map(), selected: null };

  // ---- views: one SVG per stage and group; a view box per SVG for zoom and pan ----------
  function viewsOf(stage) { return data.views[stage] || []; }
  function defaultView(stage) {
    const vs = viewsOf(stage);
    return vs.some((v) => v.id === FULL) ? FULL : (vs.length ? vs[0].id : null);
  }
  // Each view is a <template> until it is first shown (a large graph has hundreds of views:
  // the page stays light), then a <div class="view"> holding its SVG.
  const made = new Map();
  function viewDiv(stage, id) {
    const key = stage + "\u0000" + id;
    if (made.has(key)) return made.get(key);
    const src = $$("template.view-src", canvas).find((t) => t.dataset.stage === stage && t.dataset.view === id);
    if (!src) return undefined;
    const div = document.createElement("div");
    div.className = "view";
    div.dataset.stage = stage;
    div.dataset.view = id;
    div.hidden = true;
    div.append(src.content.cloneNode(true));
    canvas.append(div);
    made.set(key, div);
    return div;
  }
  function svgOf(div) { return div ? $("svg", div) : null; }

  function fit(svg) {
    const w = parseFloat(svg.getAttribute("width")), h = parseFloat(svg.getAttribute("height"));
    const cw = canvas.clientWidth || 800, ch = canvas.clientHeight || 560;
    // the whole drawing, but never so small that its text cannot be read: a tall drawing
    // then shows its top, at its full width
    let scale = Math.max(w / cw, h / ch, 0.6);
    let top = false;
    if (scale > 1.8) { scale = Math.max(w / cw, 1.8); top = h / ch > scale; }
    const vw = cw * scale, vh = ch * scale;
    state.boxes.set(svg, { x: (w - vw) / 2, y: top ? 0 : (h - vh) / 2, w: vw, h: vh });
    apply(svg);
  }
  function apply(svg) {
    const b = state.boxes.get(svg);
    svg.setAttribute("viewBox", `${b.x} ${b.y} ${b.w} ${b.h}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
  }
  function current() { return svgOf(viewDiv(state.stage, state.view[state.stage])); }
  function zoom(factor, cx, cy) {
    const svg = current();
    if (!svg) return;
    const b = state.boxes.get(svg);
    const px = cx === undefined ? 0.5 : cx, py = cy === undefined ? 0.5 : cy;
    const nw = b.w * factor, nh = b.h * factor;
    b.x += (b.w - nw) * px; b.y += (b.h - nh) * py; b.w = nw; b.h = nh;
    apply(svg);
  }

  function show(stage, id) {
    if (!viewDiv(stage, id)) return;
    const div = viewDiv(stage, id);
    state.stage = stage;
    state.view[stage] = id;
    made.forEach((d) => { d.hidden = d !== div; });
    $$("button.tab").forEach((b) => b.classList.toggle("on", b.dataset.stage === stage));
    const svg = current();
    if (!state.boxes.has(svg)) fit(svg);
    crumbs();
    const btn = $("#collapse");
    const vs = viewsOf(stage);
    btn.disabled = !(vs.some((v) => v.id === FULL) && vs.some((v) => v.id === ""));
    btn.textContent = id === FULL ? "collapse" : "expand";
    if (state.selected !== null) markDrawing(state.selected);
  }
  function leftOut(id) {  // a group whose inside the page does not hold (a very large graph)
    const g = data.groups[state.stage];
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = ` · the inside of ${g.label[id]} is not in this page (it draws at most ` +
      `${data.boxBudget} boxes per graph): graphc draw MODEL --view '${g.label[id]}' draws it`;
    $("#crumbs").append(note);
  }

  function crumbs() {
    const nav = $("#crumbs");
    nav.textContent = "";
    const vs = viewsOf(state.stage);
    let id = state.view[state.stage];
    if (id === FULL) { nav.textContent = "every node"; return; }
    const chain = [];
    while (id !== null && id !== undefined) {
      const v = vs.find((x) => x.id === id);
      if (!v) break;
      chain.unshift(v);
      id = v.parent;
    }
    chain.forEach((v, k) => {
      if (k) nav.append(" › ");
      const a = document.createElement(k === chain.length - 1 ? "b" : "a");
      a.textContent = v.id === "" ? "top level" : v.label;
      if (k < chain.length - 1) a.addEventListener("click", () => show(state.stage, v.id));
      nav.append(a);
    });
  }

  // ---- zoom and pan ---------------------------------------------------------------------
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoom(ev.deltaY > 0 ? 1.15 : 1 / 1.15, (ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height);
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    const svg = current();
    if (!svg || ev.button !== 0) return;
    drag = { x: ev.clientX, y: ev.clientY, moved: false, svg: svg };
  });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    drag.moved = true;
    canvas.classList.add("drag");
    const b = state.boxes.get(drag.svg);
    const r = canvas.getBoundingClientRect();
    const s = Math.max(b.w / r.width, b.h / r.height);
    b.x -= dx * s; b.y -= dy * s;
    drag.x = ev.clientX; drag.y = ev.clientY;
    apply(drag.svg);
  });
  window.addEventListener("mouseup", () => {
    canvas.classList.remove("drag");
    setTimeout(() => { drag = null; }, 0);
  });
  $("#zoom-in").addEventListener("click", () => zoom(1 / 1.3));
  $("#zoom-out").addEventListener("click", () => zoom(1.3));
  $("#fit").addEventListener("click", () => { const s = current(); if (s) fit(s); });
  $("#collapse").addEventListener("click", () => {
    show(state.stage, state.view[state.stage] === FULL ? "" : FULL);
  });
  $$("button.tab").forEach((b) => b.addEventListener("click", () => {
    const s = b.dataset.stage;
    show(s, state.view[s] !== undefined ? state.view[s] : defaultView(s));
  }));

  // ---- selection ------------------------------------------------------------------------

  // the groups of the stage shown that hold node n, innermost first
  function groupsHolding(n) {
    const g = data.groups[state.stage];
    const out = [];
    let id = g ? g.groupOf[n] : undefined;
    while (id !== undefined && id !== null) { out.push(id); id = g.parent[id]; }
    return out;
  }

  function markDrawing(n) {  // in the view shown (show() marks a view when it is shown)
    const root = viewDiv(state.stage, state.view[state.stage]);
    if (!root) return;
    $$(".node.sel, .node.sel-in, .node.partner", canvas).forEach((e) =>
      e.classList.remove("sel", "sel-in", "partner"));
    $$(".edge.hl", canvas).forEach((e) => e.classList.remove("hl"));
    const rec = data.nodes[n];
    const holding = new Set(groupsHolding(n).map((id) => "grp:" + id));
    $$(".node", root).forEach((e) => {
      if (e.dataset.key === "n" + n) e.classList.add("sel");
      else if (holding.has(e.dataset.key)) e.classList.add("sel-in");
      else if (rec && rec.gradOf !== null && e.dataset.key === "n" + rec.gradOf) e.classList.add("partner");
      else if (e.dataset.gradOf === "n" + n) e.classList.add("partner");
    });
    $$(".edge", root).forEach((e) => {
      if (e.dataset.src === "n" + n || e.dataset.dst === "n" + n) e.classList.add("hl");
    });
  }

  function locLine(loc) {
    const m = /^(.*):(\d+)$/.exec(loc || "");
    return m ? { file: m[1], line: Number(m[2]) } : null;
  }

  function details(n) {
    const r = data.nodes[n];
    const box = $("#details");
    box.textContent = "";
    if (!r) return;
    const t = document.createElement("table");
    const row = (k, v) => {
      const tr = t.insertRow();
      const th = document.createElement("th");
      th.textContent = k;
      tr.append(th);
      const td = tr.insertCell();
      if (v instanceof Node) td.append(v); else td.textContent = v;
    };
    const refs = (ids) => {
      const span = document.createElement("span");
      ids.forEach((u, k) => {
        if (k) span.append(", ");
        const a = document.createElement("a");
        a.className = "nref";
        a.dataset.node = u;
        a.textContent = data.nodes[u] ? data.nodes[u].name : "v" + u;
        span.append(a);
      });
      if (!ids.length) span.textContent = "none";
      return span;
    };
    row("node", `${r.name} (v${n})`);
    row("op", r.op);
    row("type", r.type);
    row("model line", r.loc);
    row("section", r.section);
    if (r.gradOf !== null) row("gradient of", refs([r.gradOf]));
    row("operands", refs(r.operands));
    row("used by", refs(r.users));
    if (r.outputs.length) row("output", r.outputs.join(", "));
    Object.entries(r.step).forEach(([f, k]) => row("step in " + f, String(k)));
    Object.entries(r.storage).forEach(([f, s]) => row("storage in " + f, s));
    row("source lines", r.lines.length ? r.lines.join(", ") : "none (no statement of its own)");
    if (r.value !== undefined) row("value", r.value);
    if (r.adjoint !== undefined) row("adjoint δ", r.adjoint);
    box.append(t);
  }

  function select(n, opts) {
    n = Number(n);
    if (!(String(n) in data.nodes)) return;
    state.selected = n;
    const rec = data.nodes[n];
    // the drawing: switch to a stage and view that shows the node, when this one does not
    if (!(opts && opts.fromDrawing)) {
      const here = viewDiv(state.stage, state.view[state.stage]);
      const shown = (div) => div && $$(".node", div).some((e) =>
        !e.classList.contains("context") && (e.dataset.key === "n" + n));
      if (!shown(here)) {  // this view, every node, or the innermost group holding it
        const stages = rec.section === "backward" ? ["grad"] : [state.stage, ...data.stages];
        outer: for (const s of stages) {
          const g = data.groups[s];
          const order = [state.view[s], FULL, g ? g.groupOf[n] : undefined];
          for (const id of order) {
            if (id !== undefined && shown(viewDiv(s, id))) { show(s, id); break outer; }
          }
          // its own group's view is left out: the innermost view there is (its group is marked)
          let id = g ? g.groupOf[n] : undefined;
          while (id !== undefined && id !== null && !viewDiv(s, id)) id = g.parent[id];
          if (id !== undefined && id !== null && (s === state.stage || rec.section === "backward")) {
            show(s, id);
            break;
          }
        }
      }
    }
    markDrawing(n);
    details(n);
    // the generated source
    $$("#source .l.hl").forEach((e) => e.classList.remove("hl"));
    let first = null;
    rec.lines.forEach((l) => {
      const e = $(`#source .l[data-l="${l}"]`);
      if (e) { e.classList.add("hl"); first = first || e; }
    });
    if (first && !(opts && opts.fromSource)) scrollInto($("#source"), first);
    // the schedule and the memory timeline
    $$("table.schedule tr.hl, table.schedule .op.hl").forEach((e) => e.classList.remove("hl"));
    $$(`table.schedule .op[data-node="${n}"]`).forEach((e) => {
      e.classList.add("hl");
      e.closest("tr").classList.add("hl");
    });
    $$(".gc-timeline .bar.hl, .gc-timeline .slot.hl").forEach((e) => e.classList.remove("hl"));
    $$(`.gc-timeline .bar[data-node="${n}"]`).forEach((e) => {
      e.classList.add("hl");
      const svg = e.ownerSVGElement;
      $$(`.slot[data-slot="${e.dataset.slot}"]`, svg).forEach((s) => s.classList.add("hl"));
    });
    // the model's line
    $$("#model .l.hl-model").forEach((e) => e.classList.remove("hl-model"));
    const at = locLine(rec.loc);
    if (at && data.modelFile && at.file === data.modelFile) {
      const e = $(`#model .l[data-l="${at.line}"]`);
      if (e) { e.classList.add("hl-model"); scrollInto($("#model"), e); }
    }
  }
  function scrollInto(box, el) {
    box.scrollTop = Math.max(0, el.offsetTop - box.offsetTop - box.clientHeight / 3);
  }

  canvas.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const g = ev.target.closest(".node");
    if (!g) return;
    const key = g.dataset.key;
    if (key.startsWith("grp:")) {
      const id = key.slice(4);
      if (viewDiv(state.stage, id)) show(state.stage, id);
      else leftOut(id);
      return;
    }
    select(Number(key.slice(1)), { fromDrawing: !g.classList.contains("context") });
  });
  $("#source").addEventListener("click", (ev) => {
    const line = ev.target.closest(".l");
    if (!line) return;
    const nodes = data.lines[line.dataset.l];
    if (nodes && nodes.length) select(nodes[0], { fromSource: true });
  });
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest("a.nref, table.schedule .op, .gc-timeline .bar");
    if (a && a.dataset.node !== undefined) select(a.dataset.node);
  });
  $$(".fn-select").forEach((s) => s.addEventListener("change", () => {
    const panel = s.closest(".panel");
    $$(".fn", panel).forEach((d) => { d.hidden = d.dataset.fn !== s.value; });
  }));

  window.graphcReport = { select: select, show: show, data: data };
  show(state.stage, defaultView(state.stage));
})();
