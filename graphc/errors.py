"""graphc's own exception types. Each message names the node, the user's line and the rule."""


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class GraphError(GraphcError, ValueError):
    """The model breaks the IR schema: a cycle, an unknown op, a wrong arity, a bad parameter."""


class ShapeError(GraphError):
    """Operand shapes or dtypes do not fit the op's rule."""


class InputError(GraphcError, ValueError):
    """A value passed to a model at call time is missing, unknown, or of the wrong shape/dtype."""


class BuildError(GraphcError, RuntimeError):
    """Generating or compiling native code failed."""


class PlanError(GraphcError, AssertionError):
    """A memory plan would let a kernel read a value after its bytes were overwritten."""


class DrawError(GraphcError, ValueError):
    """A drawing or report cannot be made as asked: an unknown stage or file type, or a missing
    optional tool (the message says what to install)."""
