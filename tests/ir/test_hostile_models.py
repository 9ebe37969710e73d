"""Hostile model files and names: loading never runs code, every malformed part is a clear
GraphError, and text from a model reaches the generated source only escaped."""

import ast
import copy
import io
import json
import tokenize

import networkx as nx
import numpy as np
import pytest

import graphc as gc
from graphc.compiler import run_stages
from graphc.errors import GraphError, ShapeError
from graphc.ir.dag import clean_loc
from tests.models import seed_net

BASE = json.loads(seed_net().to_json())
PAYLOAD = "__import__('os').system('touch {marker}')"
# Quotes of every kind, a docstring's end, a newline, a NUL, a backslash escape, a comment and
# Cython that would run if it got out of its string or comment.
EVIL = 'm.py:1 """; import os; os.system("echo pwned") # \\N{x} \x00 \n cdef int x = 1 \'\'\''


def node(d: dict, n: int) -> dict:
    return next(x for x in d["nodes"] if x["id"] == n)


def edited(edit) -> str:
    d = copy.deepcopy(BASE)
    edit(d)
    return json.dumps(d)


def rename_symbol(d: dict, sym: str) -> None:
    for n in (0, 1):
        node(d, n)["shape"][0] = sym


# ---- the JSON form --------------------------------------------------------------------------
MALFORMED = {
    # not JSON, or not an object
    "not json": ("{'nodes': []}", r"not a graphc model: the text is not JSON"),
    "truncated": (json.dumps(BASE)[:-5], r"the text is not JSON"),
    "nested too deep": ("[" * 100_000 + "]" * 100_000, r"the text is not JSON"),
    "number too long": ('{"nodes": [' + "9" * 5000 + "]}", r"the text is not JSON"),
    "a list": ("[]", r"the top level is a list, not an object"),
    "bytes not text": (b"\xff\xfe", r"the text is not JSON"),
    "not text": (12, r"a model's JSON must be text, got int"),
    # the schema: missing, extra and wrong-typed fields
    "no edges": (
        json.dumps({k: v for k, v in BASE.items() if k != "edges"}),
        r"\['edges'\] are missing",
    ),
    "extra top field": (json.dumps(dict(BASE, code="x")), r"\['code'\] are unknown"),
    "undirected": (json.dumps(dict(BASE, directed=False)), r"directed multigraph"),
    "no outputs": (edited(lambda d: d["graph"].pop("outputs")), r"the model's 'outputs'"),
    "nodes not a list": (json.dumps(dict(BASE, nodes={})), r"'nodes' and 'edges' must be lists"),
    "node not an object": (edited(lambda d: d["nodes"].append(3)), r"is a int, not an object"),
    "node without id": (edited(lambda d: node(d, 9).pop("id")), r"'id' must be an int >= 0"),
    "negative node id": (edited(lambda d: node(d, 9).update(id=-9)), r"'id' must be an int >= 0"),
    "bool node id": (edited(lambda d: node(d, 9).update(id=True)), r"'id' must be an int >= 0"),
    "node id twice": (edited(lambda d: node(d, 9).update(id=8)), r"node id 8 is used twice"),
    "misspelt field": (
        edited(lambda d: node(d, 17).update(parms=node(d, 17).pop("params"))),
        r"node 17: unknown field 'parms'",
    ),
    "extra node field": (
        edited(lambda d: node(d, 9).update(code=PAYLOAD)),
        r"node 9: unknown field 'code'",
    ),
    "node without op": (edited(lambda d: node(d, 9).pop("op")), r"node 9: .*'op' is missing"),
    "edge to nowhere": (
        edited(lambda d: d["edges"].append({"source": 0, "target": 99, "port": 0})),
        r"target 99 is not the id of a node",
    ),
    "edge without port": (
        edited(lambda d: d["edges"][0].pop("port")),
        r"must have the fields 'source', 'target', 'port'",
    ),
    "extra edge field": (
        edited(lambda d: d["edges"][0].update(weight=1)),
        r"must have the fields 'source', 'target', 'port'",
    ),
    "port a string": (
        edited(lambda d: d["edges"][1].update(port="1")),
        r"v7 \(matmul\) at models.py:\d+: its operand edge from v0 has port '1'",
    ),
    "port a bool": (edited(lambda d: d["edges"][1].update(port=False)), r"has port False"),
    "port negative": (edited(lambda d: d["edges"][1].update(port=-1)), r"has port -1"),
    "op a list": (edited(lambda d: node(d, 9).update(op=["tanh"])), r"unknown op \['tanh'\]"),
    "params a list": (
        edited(lambda d: node(d, 9).update(params=[1])),
        r"v9 \(sigmoid\) at models.py:\d+: 'params' must be a dict, got list",
    ),
    "unknown param": (
        edited(lambda d: node(d, 9).update(params={"code": PAYLOAD})),
        r"sigmoid takes no parameter 'code'",
    ),
    "param a string of code": (
        edited(lambda d: node(d, 17).update(params={"axis": [0, 1], "keepdims": EVIL})),
        r"v17 \(mean\) at models.py:\d+: parameter keepdims=.* of mean must be True or False",
    ),
    "param an int for a bool": (
        edited(lambda d: node(d, 7).update(params={"transpose_a": 0, "transpose_b": 1})),
        r"parameter transpose_a=0 of matmul must be True or False",
    ),
    "param a string axis": (
        edited(lambda d: node(d, 17).update(params={"axis": ["0"], "keepdims": False})),
        r"parameter axis=\('0',\) of mean must be None, a bool, an int",
    ),
    "leaf with params": (
        edited(lambda d: node(d, 0).update(params={"a": 1})),
        r"v0 'x' \(input\) at models.py:\d+: a leaf \(input\) takes no params",
    ),
    "loc not a string": (edited(lambda d: node(d, 9).update(loc=5)), r"'loc' must be a str"),
    "grad_of negative": (
        edited(lambda d: node(d, 9).update(grad_of=-5)),
        r"'grad_of' must be a node id \(an int >= 0\), got -5",
    ),
    "output id a float": (
        edited(lambda d: d["graph"].update(outputs={"loss": 17.0})),
        r"output 'loss' refers to node 17.0, which is not in the graph",
    ),
    "output id a bool": (
        edited(lambda d: d["graph"].update(outputs={"loss": True})),
        r"output 'loss' refers to node True",
    ),
    "outputs a list": (
        edited(lambda d: d["graph"].update(outputs=[17])),
        r"'outputs' must be a list of \[name, node id\] pairs",
    ),
    # ops and structure
    "unknown op": (edited(lambda d: node(d, 9).update(op="system")), r"unknown op 'system'"),
    "op of code": (
        edited(lambda d: node(d, 9).update(op=PAYLOAD)),
        r"v9 \(.*\) at models.py:\d+: unknown op",
    ),
    "cycle": (
        edited(lambda d: d["edges"].append({"source": 17, "target": 9, "port": 1})),
        r"the graph has a cycle: v9 \(sigmoid\) at models.py:\d+ -> v11",
    ),
    "self loop": (
        edited(lambda d: d["edges"].append({"source": 9, "target": 9, "port": 1})),
        r"the graph has a cycle: v9 \(sigmoid\)",
    ),
    # absurd shapes
    "negative dim": (
        edited(lambda d: node(d, 2).update(shape=[-2, 3])),
        r"v2 'W1' \(input\) at models.py:\d+: dimension -2 is negative",
    ),
    "10**12 elements": (
        edited(lambda d: node(d, 2).update(shape=[10**6, 10**6])),
        r"v2 'W1' .*: dimension 1000000 makes the shape hold more than 2\*\*36 elements",
    ),
    "a 31-digit dim": (
        edited(lambda d: node(d, 2).update(shape=[0, 10**30])),
        r"more than 2\*\*36 elements; use a symbolic size",
    ),
    "float dim": (
        edited(lambda d: node(d, 2).update(shape=[2.0, 3])),
        r"dimension 2.0 is neither an int nor a symbol name",
    ),
    "bool dim": (edited(lambda d: node(d, 2).update(shape=[True, 3])), r"dimension True is a bool"),
    "list dim": (edited(lambda d: node(d, 2).update(shape=[[2], 3])), r"dimension \[2\] is"),
    "shape null": (
        edited(lambda d: node(d, 2).update(shape=None)),
        r"shape None is not a sequence of dimensions",
    ),
    "rank 40": (
        edited(lambda d: node(d, 0).update(shape=["N"] + [1] * 38 + [3])),
        r"v0 'x' \(input\) at models.py:\d+: a shape has at most 32 dimensions",
    ),
    # names
    "graph name of code": (
        edited(lambda d: d["graph"].update(name=EVIL)),
        r"graph name .* must be an ASCII Python identifier \(it names the compiled module\)",
    ),
    "graph name a path": (
        edited(lambda d: d["graph"].update(name="../../etc/x")),
        r"graph name '../../etc/x' must be an ASCII Python identifier",
    ),
    "graph name a keyword": (edited(lambda d: d["graph"].update(name="import")), r"graph name"),
    "graph name not ASCII": (edited(lambda d: d["graph"].update(name="modèle")), r"graph name"),
    "graph name Cython's": (
        edited(lambda d: d["graph"].update(name="builtins")),
        r"graph name 'builtins' is a name Cython keeps for itself",
    ),
    "graph name a dunder": (edited(lambda d: d["graph"].update(name="__init__")), r"Cython keeps"),
    "input name of code": (
        edited(lambda d: node(d, 0).update(name=EVIL)),
        r"input name .* must be an ASCII Python identifier",
    ),
    "input name with a quote": (edited(lambda d: node(d, 0).update(name='x"')), r"input name"),
    "input name with NUL": (edited(lambda d: node(d, 0).update(name="x\x00")), r"input name"),
    "input name a keyword": (edited(lambda d: node(d, 0).update(name="lambda")), r"input name"),
    "input names folding alike": (
        # NFKC makes the ligature "ﬁ" the identifier "fi" in Python and Cython source
        edited(lambda d: [node(d, 0).update(name="ﬁ"), node(d, 1).update(name="fi")]),
        r"input name 'ﬁ' must be an ASCII Python identifier",
    ),
    "symbol of code": (
        edited(lambda d: rename_symbol(d, EVIL)),
        r"symbolic dimension .* must be an ASCII identifier",
    ),
    "symbol with a quote": (edited(lambda d: rename_symbol(d, 'N"')), r"symbolic dimension 'N\"'"),
    "symbol with a backslash": (edited(lambda d: rename_symbol(d, "N\\")), r"symbolic dimension"),
    "symbol not ASCII": (edited(lambda d: rename_symbol(d, "Ñ")), r"must be an ASCII identifier"),
    "output name with a newline": (
        edited(lambda d: d["graph"].update(outputs={"loss\nimport os": 17})),
        r"output name 'loss\\nimport os' must be a non-empty printable string",
    ),
    "output name with NUL": (
        edited(lambda d: d["graph"].update(outputs={"loss\x00": 17})),
        r"must be a non-empty printable string",
    ),
    "output name empty": (edited(lambda d: d["graph"].update(outputs={"": 17})), r"non-empty"),
    # constants: numbers only
    "const of objects": (
        edited(lambda d: node(d, 15).update(value={"dtype": "object", "shape": [], "data": 1})),
        r"node 15: const 'value' is malformed: dtype 'object' is not one of",
    ),
    "const of strings": (
        edited(lambda d: node(d, 15).update(value={"dtype": "float64", "shape": [], "data": "1"})),
        r"node 15: const 'value' is malformed: 'data' must hold numbers",
    ),
    "const int too big": (
        edited(
            lambda d: node(d, 15).update(
                dtype="int64", value={"dtype": "int64", "shape": [], "data": 10**30}
            )
        ),
        r"node 15: const 'value' is malformed",
    ),
    "const of the wrong size": (
        edited(
            lambda d: node(d, 15).update(
                value={"dtype": "float64", "shape": [10**9, 10**9], "data": []}
            )
        ),
        r"node 15: const 'value' is malformed: cannot reshape",
    ),
    "const not an object": (
        edited(lambda d: node(d, 15).update(value=[2.0])),
        r"must be an object with the fields dtype, shape and data",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_model_file_is_a_clear_graph_error(case):
    text, pattern = MALFORMED[case]
    with pytest.raises(GraphError, match=pattern):
        gc.Graph.from_json(text)


def test_the_base_model_loads():
    """The cases above each break one thing of a model that loads."""
    g = gc.Graph.from_json(json.dumps(BASE))
    assert g.to_json() == seed_net().to_json()
    assert gc.Graph.from_json(edited(lambda d: d["graph"].pop("name"))).name == "model"


def test_loading_runs_no_code(tmp_path):
    """Code in every text field of a model is data: loading, rendering and printing it runs
    none of it (it would create the marker file)."""
    marker = tmp_path / "ran"
    code = PAYLOAD.format(marker=marker)
    fields = [
        lambda d: node(d, 9).update(loc=code),
        lambda d: node(d, 9).update(op=code),
        lambda d: node(d, 0).update(name=code),
        lambda d: node(d, 0).update(dtype=code),
        lambda d: node(d, 0).update(role=code),
        lambda d: d["graph"].update(name=code),
        lambda d: d["graph"].update(outputs={code: 17}),
        lambda d: rename_symbol(d, code),
        lambda d: node(d, 17).update(params={"axis": code, "keepdims": False}),
        lambda d: node(d, 15).update(value={"dtype": "float64", "shape": [], "data": code}),
    ]
    loaded = 0
    for edit in fields:
        try:
            g = gc.Graph.from_json(edited(edit))
        except GraphError:
            continue
        loaded += 1
        str(g)
        run_stages(g)
    assert not marker.exists()
    assert loaded == 2  # the loc and the output name are text a model may hold


# ---- the builder ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build, error, pattern",
    [
        (lambda: gc.Graph('m"; import os'), GraphError, r"graph name .* ASCII Python identifier"),
        (lambda: gc.Graph("x\n"), GraphError, r"graph name 'x\\n'"),
        (lambda: gc.Graph("cython"), GraphError, r"graph name 'cython' is a name Cython keeps"),
        (lambda: gc.Graph().input('x"""'), GraphError, r"data name 'x\"\"\"' at .*\.py:\d+"),
        (lambda: gc.Graph().param("x\\"), GraphError, r"param name 'x\\\\' at"),
        (lambda: gc.Graph().input("x", shape=(10**12,)), ShapeError, r"more than 2\*\*36"),
        (lambda: gc.Graph().input("x", shape=(-1,)), ShapeError, r"dimension -1 is negative"),
        (lambda: gc.Graph().input("x", shape=(1,) * 33), ShapeError, r"at most 32 dimensions"),
        (lambda: gc.Graph().input("x", shape=("N-1",)), ShapeError, r"symbolic dimension 'N-1'"),
        (
            lambda: gc.broadcast_to(gc.Graph("b").input("x", shape=(3,)), (10**6, 10**6, 3)),
            ShapeError,
            r"more than 2\*\*36 elements",
        ),
        (
            lambda: gc.Graph().input("x", shape=(2**20, 1)) * np.ones((1, 2**20)),
            ShapeError,
            r"v\d+ \(mul\) at test_hostile_models.py:\d+: .*more than 2\*\*36 elements",
        ),
    ],
)
def test_builder_refuses_hostile_names_and_shapes(build, error, pattern):
    with pytest.raises(error, match=pattern):
        build()


def test_output_names_may_hold_any_printable_text():
    g = gc.Graph("outs")
    x = g.input("x", shape=(2,))
    for name in ("a\nb", "", "a\x00", "a\u2028b"):
        with pytest.raises(GraphError, match="must be a non-empty printable string"):
            g.output(name, x)
    g.output('y"""\\\'', gc.sum(x))  # shown in the source only as a literal or in a comment
    assert list(g.outputs) == ['y"""\\\'']


def test_hand_built_graph_with_hostile_loc_is_cleaned():
    G = nx.MultiDiGraph(name="h", outputs={"y": 1})
    G.add_node(0, op="input", role="data", name="x", shape=(2,), dtype="float64", params={})
    G.add_node(1, op="tanh", params={}, loc=EVIL)
    G.add_edge(0, 1, port=0)
    g = gc.Graph.from_networkx(G)
    assert g.nx.nodes[1]["loc"] == clean_loc(EVIL)
    assert G.nodes[1]["loc"] == EVIL  # the caller's graph is left alone
    gc.verify(g)
    g.nx.nodes[1]["loc"] = EVIL  # written in after the checks
    with pytest.raises(GraphError, match=r"v1 \(tanh\) at .*'loc' .* holds quotes"):
        gc.verify(g)


def test_clean_loc():
    assert clean_loc("model.py:12") == "model.py:12"
    assert clean_loc('a"b\\c\nd\x00e\u2028') == "a'b/c?d?e?"
    text = clean_loc(EVIL)
    assert text.isprintable() and '"' not in text and "\\" not in text


# ---- what reaches the generated source --------------------------------------------------------
PLAIN_LOC, PLAIN_OUT = "plainloc.py:7", "plainout"
EVIL_OUT = 'loss"""\\\'; __import__("os").system("echo pwned") #'


def text_model(loc: str, out: str) -> gc.Graph:
    """A model with a gather (whose index checks quote node descriptions in the source), a
    reduction and a matrix product; every node records `loc`, the loss is output `out`."""
    g = gc.Graph("hostile_text")
    with g.at(loc):
        x = g.input("x", shape=("N", 3))
        w = g.param("w", shape=(3,))
        idx = g.input("idx", shape=("B",), dtype="int64")
        table = g.param("table", shape=(5, 3))
        loss = gc.sum(gc.tanh(x) @ w) + gc.sum(gc.take(table, idx) * 0.5)
        g.output(out, loss)
    return g


def tokens(source: str, replace: dict[str, str] | None = None) -> list[tuple[str, object]]:
    """The source as Python tokens without comments; string literals by value, with the
    replacements made in them."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL):
            continue
        if tok.type == tokenize.STRING:
            value = ast.literal_eval(tok.string)
            for old, new in (replace or {}).items():
                value = value.replace(old, new) if isinstance(value, str) else value
            out.append(("STRING", value))
        else:
            out.append((tokenize.tok_name[tok.type], tok.string))
    return out


def comments(source: str, replace: dict[str, str] | None = None) -> list[str]:
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            text = tok.string
            for old, new in (replace or {}).items():
                text = text.replace(old, new)
            out.append(text)
    return out


@pytest.mark.parametrize("via", ["builder", "json"])
def test_hostile_text_reaches_the_source_only_escaped(via):
    """The source of a model whose locs, output name and source file hold code is the source
    of the same model with plain text, token for token (string literals compared by value),
    with the text escaped; comments differ only by the escaped text."""
    plain = run_stages(text_model(PLAIN_LOC, PLAIN_OUT), source_file="plain.py").source
    if via == "builder":
        g = text_model(EVIL, EVIL_OUT)
    else:
        d = json.loads(text_model(PLAIN_LOC, PLAIN_OUT).to_json())
        for x in d["nodes"]:
            x["loc"] = EVIL
        ((name, node),) = d["graph"]["outputs"]
        assert name == PLAIN_OUT
        d["graph"]["outputs"] = [[EVIL_OUT, node]]
        g = gc.Graph.from_json(json.dumps(d))
    evil_file = 'f"""\n__import__("os").system("echo pwned")\n\\x.py'
    evil = run_stages(g, source_file=evil_file).source
    escaped = {PLAIN_LOC: clean_loc(EVIL), PLAIN_OUT: EVIL_OUT}
    assert tokens(evil) == tokens(plain, escaped)
    header = evil_file.replace('"', "'").replace("\\", "/")  # as in every comment
    header = "".join(c if c.isprintable() else "?" for c in header)
    assert comments(evil) == comments(plain, dict(escaped, **{"plain.py": header}))
    assert PLAIN_LOC in plain and clean_loc(EVIL) in evil
    assert ("STRING", EVIL_OUT) in tokens(evil)  # only ever a string literal
    # nothing of the payload is outside a string literal or a comment
    code = [t for t in tokens(evil) if t[0] != "STRING"]
    assert ("NAME", "__import__") not in code and ("NAME", "system") not in code


@pytest.mark.compiler
def test_keyword_names_compile_and_run(tmp_path):
    """Input and symbol names that are C or Cython keywords, or names the generated code uses
    itself, are only ever parts of longer names there; with a hostile loc and output name the
    module builds and computes what the interpreter does. An output of rank 12 (more than the
    8 dims the generated code once had room for) comes back whole."""
    g = gc.Graph("int")
    with g.at(EVIL):
        a = g.input("double", shape=("int", 2))
        b = g.param("cdef", shape=(2,))
        c = g.param("struct", shape=("nogil",))
        d = g.input("got", shape=("int",), dtype="int64")
        e = g.input("NULL", shape=("int",), dtype="bool")
        rows = gc.where(e, gc.tanh(a @ b), gc.take(c, d))
        g.output(EVIL_OUT, gc.sum(rows * rows))
        g.output("deep", gc.tanh(a.reshape(("int",) + (1,) * 10 + (2,))))
    m = gc.compile(g, out_dir=tmp_path, functions=["value_and_grad"])
    inputs = {
        "double": np.array([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]]),
        "cdef": np.array([0.3, -0.7]),
        "struct": np.array([1.5, -2.5, 0.5, 4.0]),
        "got": np.array([3, 0, 1]),
        "NULL": np.array([True, False, True]),
    }
    outs, grads = m.value_and_grad(**inputs)
    want_outs, want_grads = gc.value_and_grad(g, inputs, of=EVIL_OUT)
    np.testing.assert_allclose(outs[EVIL_OUT], want_outs[EVIL_OUT], rtol=1e-12)
    assert outs["deep"].shape == (3,) + (1,) * 10 + (2,)
    np.testing.assert_allclose(outs["deep"], np.tanh(inputs["double"]).reshape(3, *[1] * 10, 2))
    assert set(grads) == {"cdef", "struct"}
    for k in grads:
        np.testing.assert_allclose(grads[k], want_grads[k], rtol=1e-12)
    assert m.INPUTS == ("double", "cdef", "struct", "got", "NULL")
