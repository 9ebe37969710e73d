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
  // One node, or the nodes of a step's row, or those of every step calling a kernel: the
  // nodes' own lines of the source (statements and rows) are lit strongly ("hl"), the lines
  // of the kernels they run, which other steps share, apart ("hk").

  // the groups of the stage shown that hold node n, innermost first
  function groupsHolding(n) {
    const g = data.groups[state.stage];
    const out = [];
    let id = g ? g.groupOf[n] : undefined;
    while (id !== undefined && id !== null) { out.push(id); id = g.parent[id]; }
    return out;
  }

  // elements by a data attribute, indexed once: a large page has hundreds of thousands
  const indexes = new Map();
  function byData(selector, attr, value) {
    if (!indexes.has(selector)) {
      const m = new Map();
      $$(selector).forEach((e) => {
        const k = e.getAttribute(attr);
        if (!m.has(k)) m.set(k, []);
        m.get(k).push(e);
      });
      indexes.set(selector, m);
    }
    return indexes.get(selector).get(String(value)) || [];
  }

  function markDrawing(sel) {  // in the view shown (show() marks a view when it is shown)
    const root = viewDiv(state.stage, state.view[state.stage]);
    if (!root || !sel) return;
    $$(".node.sel, .node.sel-in, .node.partner", canvas).forEach((e) =>
      e.classList.remove("sel", "sel-in", "partner"));
    $$(".edge.hl", canvas).forEach((e) => e.classList.remove("hl"));
    const keys = new Set(sel.nodes.map((n) => "n" + n));
    const holding = new Set();
    sel.nodes.forEach((n) => groupsHolding(n).forEach((id) => holding.add("grp:" + id)));
    const one = sel.nodes.length === 1 ? sel.nodes[0] : null;
    const rec = one === null ? null : data.nodes[one];
    $$(".node", root).forEach((e) => {
      const key = e.dataset.key;
      if (keys.has(key)) e.classList.add("sel");
      else if (holding.has(key)) e.classList.add("sel-in");
      else if (rec && rec.gradOf !== null && key === "n" + rec.gradOf) e.classList.add("partner");
      else if (one !== null && e.dataset.gradOf === "n" + one) e.classList.add("partner");
    });
    if (one === null) return;
    $$(".edge", root).forEach((e) => {
      if (e.dataset.src === "n" + one || e.dataset.dst === "n" + one) e.classList.add("hl");
    });
  }

  function locLine(loc) {
    const m = /^(.*):(\d+)$/.exec(loc || "");
    return m ? { file: m[1], line: Number(m[2]) } : null;
  }

  function table(rows) {
    const t = document.createElement("table");
    rows.forEach(([k, v]) => {
      const tr = t.insertRow();
      const th = document.createElement("th");
      th.textContent = k;
      tr.append(th);
      const td = tr.insertCell();
      if (v instanceof Node) td.append(v); else td.textContent = v;
    });
    return t;
  }
  function refs(ids, most) {
    const span = document.createElement("span");
    const shown = most ? ids.slice(0, most) : ids;
    shown.forEach((u, k) => {
      if (k) span.append(", ");
      const a = document.createElement("a");
      a.className = "nref";
      a.dataset.node = u;
      a.textContent = data.nodes[u] ? data.nodes[u].name : "v" + u;
      span.append(a);
    });
    if (shown.length < ids.length) span.append(` … and ${ids.length - shown.length} more`);
    if (!ids.length) span.textContent = "none";
    return span;
  }
  function krefs(ks) {
    const span = document.createElement("span");
    ks.forEach((k, i) => {
      if (i) span.append(", ");
      const a = document.createElement("a");
      a.className = "kref";
      a.dataset.k = k;
      const kern = data.kernels[k];
      a.textContent = kern ? (kern.runtime ? "runtime " : "") + kern.name : "kernel " + k;
      span.append(a);
      if (kern && kern.steps.length > 1) span.append(` (shared by ${kern.steps.length} steps)`);
    });
    if (!ks.length) span.textContent = "none";
    return span;
  }

  function details(n) {
    const r = data.nodes[n];
    const box = $("#details");
    box.textContent = "";
    if (!r) return;
    const rows = [["node", `${r.name} (v${n})`], ["op", r.op], ["type", r.type],
      ["model line", r.loc], ["section", r.section]];
    if (r.gradOf !== null) rows.push(["gradient of", refs([r.gradOf])]);
    rows.push(["operands", refs(r.operands)], ["used by", refs(r.users)]);
    if (r.outputs.length) rows.push(["output", r.outputs.join(", ")]);
    Object.entries(r.step).forEach(([f, k]) => rows.push(["step in " + f, String(k)]));
    Object.entries(r.storage).forEach(([f, s]) => rows.push(["storage in " + f, s]));
    rows.push(["source lines", r.lines.length ? r.lines.join(", ") : "none (no statement of its own)"]);
    rows.push(["runs kernel", krefs(r.kernels)]);
    if (r.value !== undefined) rows.push(["value", r.value]);
    if (r.adjoint !== undefined) rows.push(["adjoint δ", r.adjoint]);
    box.append(table(rows));
  }

  function kernelDetails(k) {
    const kern = data.kernels[k];
    const box = $("#details");
    box.textContent = "";
    if (!kern) return;
    const lines = kern.spans.map(([a, b]) => a === b ? String(a) : `${a}–${b}`).join(", ");
    const steps = kern.steps.map(([f, s]) => `${f} step ${s}`).join(", ");
    box.append(table([
      ["kernel", (kern.runtime ? "runtime " : "") + kern.name],
      ["does", kern.doc || (kern.runtime ? "graphc's runtime (graphc_rt.h)" : "")],
      ["source lines", lines || "none (in graphc's runtime)"],
      [`called by ${kern.steps.length} step${kern.steps.length === 1 ? "" : "s"}`, steps || "none"],
      ["their nodes", refs(kern.nodes, 200)],
    ]));
  }

  // A selection: `nodes`, shown by its first (the drawing's view, the details) unless a
  // kernel is named; `kernels`: the kernels lit apart.
  function choose(sel, opts) {
    const n = sel.nodes[0];
    state.selected = sel;
    // a selection with a backward node is shown in the gradient's drawing, which has them all
    const back = sel.nodes.some((u) => data.nodes[u].section === "backward");
    // the drawing: switch to a stage and view that shows the node, when this one does not
    if (!(opts && opts.fromDrawing)) {
      const here = viewDiv(state.stage, state.view[state.stage]);
      const shown = (div) => div && (!back || div.dataset.stage === "grad") &&
        $$(".node", div).some((e) => !e.classList.contains("context") && (e.dataset.key === "n" + n));
      if (!shown(here)) {  // this view, every node, or the innermost group holding it
        const stages = back ? ["grad"] : [state.stage, ...data.stages];
        outer: for (const s of stages) {
          const g = data.groups[s];
          const order = [state.view[s], FULL, g ? g.groupOf[n] : undefined];
          for (const id of order) {
            if (id !== undefined && shown(viewDiv(s, id))) { show(s, id); break outer; }
          }
          // its own group's view is left out: the innermost view there is (its group is marked)
          let id = g ? g.groupOf[n] : undefined;
          while (id !== undefined && id !== null && !viewDiv(s, id)) id = g.parent[id];
          if (id !== undefined && id !== null && (s === state.stage || back)) {
            show(s, id);
            break;
          }
        }
      }
    }
    markDrawing(sel);
    if (sel.kernel !== undefined) kernelDetails(sel.kernel); else details(n);
    // the generated source: the nodes' own lines, then their kernels' lines
    $$("#source .l.hl, #source .l.hk").forEach((e) => e.classList.remove("hl", "hk"));
    let first = null;
    sel.nodes.forEach((u) => (data.nodes[u] ? data.nodes[u].lines : []).forEach((l) => {
      byData("#source .l", "data-l", l).forEach((e) => {
        e.classList.add("hl");
        if (!first || Number(e.dataset.l) < Number(first.dataset.l)) first = e;
      });
    }));
    let kfirst = null;
    sel.kernels.forEach((k) => byData("#source .l.k", "data-k", k).forEach((e) => {
      e.classList.add("hk");
      kfirst = kfirst || e;
    }));
    const to = sel.kernel !== undefined ? kfirst || first : first || kfirst;
    if (to && !(opts && opts.fromSource)) scrollInto($("#source"), to);
    // the schedule and the memory timeline
    $$("table.schedule tr.hl, table.schedule tr.hk, table.schedule .op.hl").forEach((e) =>
      e.classList.remove("hl", "hk"));
    sel.nodes.forEach((u) => byData("table.schedule .op", "data-node", u).forEach((e) => {
      e.classList.add("hl");
      e.closest("tr").classList.add("hl");
    }));
    const ks = new Set(sel.kernels.map(String));
    $$("table.schedule tr[data-k]").forEach((tr) => {
      if (tr.dataset.k.split(" ").some((k) => ks.has(k))) tr.classList.add("hk");
    });
    $$(".gc-timeline .bar.hl, .gc-timeline .slot.hl").forEach((e) => e.classList.remove("hl"));
    const slots = new Set();  // each timeline's rows of the buffers lit
    sel.nodes.forEach((u) => byData(".gc-timeline .bar", "data-node", u).forEach((e) => {
      e.classList.add("hl");
      slots.add(e.closest(".fn").dataset.fn + " " + e.dataset.slot);
    }));
    $$(".gc-timeline .slot").forEach((e) => {
      if (slots.has(e.closest(".fn").dataset.fn + " " + e.dataset.slot)) e.classList.add("hl");
    });
    // the model's lines
    $$("#model .l.hl-model").forEach((e) => e.classList.remove("hl-model"));
    const at = new Set();
    sel.nodes.forEach((u) => {
      const m = locLine(data.nodes[u] && data.nodes[u].loc);
      if (m && data.modelFile && m.file === data.modelFile) at.add(m.line);
    });
    let mfirst = null;
    Array.from(at).sort((a, b) => a - b).forEach((l) => byData("#model .l", "data-l", l).forEach((e) => {
      e.classList.add("hl-model");
      mfirst = mfirst || e;
    }));
    if (mfirst) scrollInto($("#model"), mfirst);
  }
  function select(n, opts) {
    n = Number(n);
    if (!(String(n) in data.nodes)) return;
    choose({ nodes: [n], kernels: data.nodes[n].kernels }, opts);
  }
  function selectKernel(k, opts) {
    const kern = data.kernels[k];
    const nodes = kern ? kern.nodes.filter((u) => String(u) in data.nodes) : [];
    if (!nodes.length) return;
    choose({ nodes: nodes, kernels: [Number(k)], kernel: Number(k) }, opts);
  }
  function selectLine(l, opts) {  // a statement: its node; a row: its step's nodes
    const nodes = (data.lines[l] || []).filter((u) => String(u) in data.nodes);
    if (!nodes.length) return;
    const kernels = new Set();
    nodes.forEach((u) => data.nodes[u].kernels.forEach((k) => kernels.add(k)));
    choose({ nodes: nodes, kernels: Array.from(kernels) }, opts);
  }
  function scrollInto(box, el) {  // el a third of the way down box
    const at = el.getBoundingClientRect().top - box.getBoundingClientRect().top + box.scrollTop;
    box.scrollTop = Math.max(0, at - box.clientHeight / 3);
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
    if (data.lines[line.dataset.l]) selectLine(line.dataset.l, { fromSource: true });
    else if (line.dataset.k !== undefined) selectKernel(line.dataset.k, { fromSource: true });
  });
  document.addEventListener("click", (ev) => {
    const k = ev.target.closest("a.kref");
    if (k) { selectKernel(k.dataset.k); return; }
    const a = ev.target.closest("a.nref, table.schedule .op, .gc-timeline .bar");
    if (a && a.dataset.node !== undefined) select(a.dataset.node);
  });
  $$(".fn-select").forEach((s) => s.addEventListener("change", () => {
    const panel = s.closest(".panel");
    $$(".fn", panel).forEach((d) => { d.hidden = d.dataset.fn !== s.value; });
  }));

  window.graphcReport = { select: select, selectKernel: selectKernel, selectLine: selectLine,
    show: show, data: data };
  show(state.stage, defaultView(state.stage));
})();
