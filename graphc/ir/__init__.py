"""The IR: a networkx MultiDiGraph with a documented schema, its builder, printer and verifier."""

from graphc.ir.dag import describe, operands  # noqa: F401
from graphc.ir.graph import Graph, Value, as_graph  # noqa: F401
from graphc.ir.printer import format_graph  # noqa: F401
from graphc.ir.verify import verify  # noqa: F401
