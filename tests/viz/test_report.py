"""The HTML report as a file: self-contained, and built from the compiler's own records (every
node, every source line, every arena buffer of the plan)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.passes.plan_report import default_sizes, totals
from graphc.viz.report import report_dir, report_html
from tests.models import ROOT, mlp, seed_inputs, seed_net


class Page(HTMLParser):
    """The parts of the page the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[dict] = []
        self.source: dict[int, str] = {}
        self.source_attrs: dict[int, dict] = {}
        self.steps: list[dict] = []  # the schedules' rows
        self.bars: list[dict] = []
        self.links: list[str] = []
        self._line: int | None = None
        self._depth = 0
        self._in_data = False
        self._fn = ""
        self.data_text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for k in ("src", "href", "xlink:href", "action"):
            if k in a:
                self.links.append(a[k])
        cls = (a.get("class") or "").split()
        if tag == "template" and "view-src" in cls:  # a view, until the page shows it
            self.views.append({"stage": a["data-stage"], "view": a["data-view"], "nodes": 0})
        if tag == "g" and "node" in cls and "context" not in cls and self.views:
            self.views[-1]["nodes"] += len((a.get("data-nodes") or "").split())
        if tag == "div" and "fn" in cls:
            self._fn = a["data-fn"]
        if tag == "g" and "bar" in cls:
            self.bars.append({**a, "fn": self._fn})
        if tag == "tr" and "data-nodes" in a:
            self.steps.append({**a, "fn": self._fn})
        if tag == "div" and "l" in cls and self._line is None and "data-l" in a:
            self._line, self._depth = int(a["data-l"]), 0
            self.source.setdefault(self._line, "")
            self.source_attrs[self._line] = a
        elif self._line is not None and tag == "div":
            self._depth += 1
        if tag == "script" and a.get("id") == "graphc-data":
            self._in_data = True

    def handle_endtag(self, tag):
        if tag == "div" and self._line is not None:
            if self._depth == 0:
                self._line = None
            else:
                self._depth -= 1
        if tag == "script":
            self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data_text += data
        elif self._line is not None:
            self.source[self._line] += data


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    return p


def page_data(page: Page) -> dict:
    return json.loads(page.data_text.replace("<\\/", "</"))


def test_report_is_one_self_contained_page():
    st = run_stages(seed_net(), source_file="seed_network.py")
    html = report_html(st, inputs=seed_inputs(), model_file=ROOT / "examples" / "seed_network.py")
    page = parse(html)
    assert all(link.startswith("#") for link in page.links), page.links
    # no address to fetch: the only URL is SVG's namespace name, which is never loaded
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {"http://www.w3.org/2000/svg"}
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    for asset in ("report.js", "report.css"):  # shipped in the wheel, inlined in the page
        text = (report_dir() / asset).read_text()
        assert text.strip()[:200].replace("</", "<\\/") in html


def test_report_draws_every_node_and_lists_the_source():
    st = run_stages(seed_net(), source_file="seed_network.py")
    page = parse(report_html(st))
    full = {v["stage"]: v["nodes"] for v in page.views if v["view"] == "*"}
    assert full["graph"] == len(st.graph)
    prog, _ = st.programs["value_and_grad"]
    assert full["grad"] == len(prog.graph)
    lines = st.source.splitlines()
    assert len(page.source) == len(lines)
    for i, text in enumerate(lines, start=1):  # each line: its number, then its text
        assert page.source[i] == f"{i}{text or ' '}"
    data = page_data(page)
    assert set(data["nodes"]) == {str(n) for n in prog.graph.nx.nodes}


@pytest.mark.parametrize("model", ["seed", "mlp", "chain"])
def test_steps_nodes_and_source_lines_name_the_kernels_the_records_call(model):
    """The page's kernels against the module records: each step of each schedule names the
    kernels its rows call, each kernel's lines are its rendered functions, and a kernel's nodes
    (what a click on it selects) are those of every step calling it."""
    from graphc.codegen.cython import kernel_source
    from tests.viz.test_groups import chain
    from tests.viz.test_sourcemap import row_kernels

    g = {"seed": seed_net, "mlp": lambda: mlp(np.random.default_rng(0))[0],
         "chain": lambda: chain(20)}[model]()  # fmt: skip
    st = run_stages(g)
    page = parse(report_html(st))
    data = page_data(page)
    number = {k["name"]: int(x) for x, k in data["kernels"].items()}
    callers: dict[str, list[tuple[str, int]]] = {}
    of_node: dict[int, set[str]] = {}
    for fn, (prog, _) in st.programs.items():
        want = row_kernels(st, fn)
        rows = [r for r in page.steps if r["fn"] == fn]
        assert [r["data-nodes"] for r in rows] == [" ".join(map(str, s.nodes)) for s in prog.steps]
        for k, r in enumerate(rows):
            assert [data["kernels"][x]["name"] for x in r["data-k"].split()] == want.get(k, [])
        for k, names in want.items():
            for name in names:
                callers.setdefault(name, []).append((fn, k))
                for n in prog.steps[k].nodes:
                    of_node.setdefault(n, set()).add(name)
    assert set(number) == set(callers)
    lines = st.source.splitlines()
    own = len(st.module.kernels)
    for name, k in number.items():
        kern = data["kernels"][str(k)]
        shown = sorted(i for i, a in page.source_attrs.items() if a.get("data-k") == str(k))
        if k < own:
            text = kernel_source(k, st.module.kernels[k])
            assert [lines[i - 1] for i in shown] == [t for t in text.splitlines() if t.strip()]
            assert kern["spans"][0][0] == shown[0] and kern["spans"][-1][1] == shown[-1]
        else:
            assert not shown and kern["runtime"] and name == st.module.runtime[k - own]
        assert sorted(map(tuple, kern["steps"])) == sorted(callers[name])
        nodes = [n for fn, j in callers[name] for n in st.programs[fn][0].steps[j].nodes]
        assert kern["nodes"] == list(dict.fromkeys(nodes))
    for n, rec in data["nodes"].items():
        assert {data["kernels"][str(k)]["name"] for k in rec["kernels"]} == of_node.get(
            int(n), set()
        )


@pytest.mark.parametrize("model", ["seed", "mlp"])
def test_timeline_has_a_bar_per_arena_value_and_the_plan_totals(model):
    g = seed_net() if model == "seed" else mlp(np.random.default_rng(0))[0]
    st = run_stages(g)
    page = parse(report_html(st))
    html = report_html(st)
    for fn, (prog, plan) in st.programs.items():
        arena = {n: int(s.ref) for n, s in plan.storage.items() if s.kind == "arena"}
        bars = [(int(b["data-node"]), int(b["data-slot"])) for b in page.bars if b["fn"] == fn]
        assert sorted(bars) == sorted(arena.items()) and bars
        t = totals(prog, plan, default_sizes(prog, st.size_hint))
        for kind, n in (("naive", t.naive_bytes), ("planned", t.arena_bytes),
                        ("floor", t.live_peak_bytes)):  # fmt: skip
            assert f'<b class="{kind}">{n}</b>' in html


def test_checkpointed_values_are_marked(tmp_path):
    from tests.viz.test_groups import chain

    g = chain(60)
    st = run_stages(g, memory_budget=1, size_hint=4096)
    assert st.checkpointing is not None and st.checkpointing.recomputed_steps > 0
    html = report_html(st)
    marked = set(re.findall(r'class="bar [a-z]+ (checkpoint|recomputed)', html))
    assert marked == {"checkpoint", "recomputed"}


@pytest.mark.compiler
def test_compiled_module_shows_its_report_inline(tmp_path):
    m = gc.compile(seed_net(), out_dir=tmp_path)
    html = m._repr_html_()
    assert "seed_net" in html and "<iframe srcdoc=" in html
    assert "value_and_grad" in html and ("cache hit in" in html or "built in" in html)


def test_a_very_large_graph_keeps_its_outer_views_within_the_budget(monkeypatch):
    import graphc.viz.report as report
    from tests.viz.test_groups import chain

    monkeypatch.setattr(report, "BOX_BUDGET", 150)
    st = run_stages(chain(400), functions=("value_and_grad",))
    html = report_html(st)
    page = parse(html)
    data = json.loads(page.data_text.replace("<\\/", "</"))
    for stage in ("graph", "grad"):
        shown = {v["view"] for v in page.views if v["stage"] == stage}
        left = set(data["groups"][stage]["leftOut"])
        parents = data["groups"][stage]["parent"]
        assert left and "" in shown and not (left & shown)
        assert shown | left == set(parents)  # every group: drawn, or named as left out
        for gid in left:  # what is left out lies deeper than what is drawn
            assert parents[gid] in shown or parents[gid] in left


def test_timeline_of_a_long_program_stays_narrow_and_valid():
    from graphc.viz.timeline import marks, timeline
    from tests.viz.test_groups import chain

    st = run_stages(chain(1200), functions=("value_and_grad",))
    prog, plan = st.programs["value_and_grad"]
    sizes = default_sizes(prog, st.size_hint)
    t = timeline(prog, plan, sizes, marks(prog, st.graph.next_id, False))
    width = float(re.search(r'width="([0-9.]+)"', t.svg).group(1))
    assert len(prog.steps) > 1000 and width < 3200
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([-0-9.]+)"', t.svg)]
    assert widths and min(widths) > 0
