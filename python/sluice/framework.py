"""Graphs, operations and tensors; the default graph; name scopes, devices, control dependencies.

The graph itself lives in the C++ engine: `Graph` is a thin subclass of the core's graph class,
and `Operation` / `Tensor` are handles on its nodes and outputs. Op functions (`sl.add`, ...)
add nodes to the graph of their tensor inputs, or to the default graph::

    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None, 4], name="x")
        with sl.name_scope("dense"), sl.device("/job:worker/task:0"):
            y = sl.nn.relu(x @ w)             # node "dense/Relu" requesting that device

Errors while building raise at the line that built the node (sluice.errors.*Error, with the
node's name, op and shapes in the message). Building a graph is single-threaded: use one
thread per graph, or a lock.
"""

import contextlib
import os
import sys
import threading

from sluice import dtypes
from sluice import tensor_shape
from sluice._core import core as _core

Tensor = _core.Tensor
Operation = _core.Operation

# TF1's shape objects over the engine's tuples (see tensor_shape.py).
_engine_shape = Tensor.__dict__["shape"].fget
Tensor.shape = property(lambda t: tensor_shape.shape_of(_engine_shape(t)),
                        doc="The static shape: a TensorShape (None for unknown sizes), or None "
                            "when even the rank is unknown.")
Tensor.get_shape = lambda t: tensor_shape.TensorShape(_engine_shape(t))

_PACKAGE_DIR = os.path.dirname(__file__)


def _caller_location():
    """"file.py:line" of the innermost caller outside the sluice package."""
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == _PACKAGE_DIR:
        frame = frame.f_back
    if frame is None:
        return ""
    return "{}:{}".format(os.path.basename(frame.f_code.co_filename), frame.f_lineno)


class Graph(_core.Graph):
    """A dataflow graph: Operations (nodes) connected by Tensors (their outputs).

    Build it inside `with g.as_default():` (or pass tensors of `g` to op functions), then run it
    with `sl.Session(graph=g)`. Operations may be added at any time, also after a session ran
    (the session then runs the larger graph, keeping its variables); `finalize()` freezes the
    graph for good.

    Methods inherited from the engine: get_operation_by_name(name),
    get_tensor_by_name("node:0"), get_operations(), unique_name(name), finalize(), finalized,
    len(g) (the number of operations).
    """

    seed = None  # The graph-level random seed (sl.set_random_seed).

    def as_default(self):
        """A context manager that makes this graph the default graph of the current thread."""
        return _default_graph_context(self)

    @contextlib.contextmanager
    def name_scope(self, name):
        """A context manager that prefixes the names of new operations with `name/`.

        Nested scopes join with "/". A name already used becomes unique ("dense_1"); a name
        ending in "/" re-enters that exact scope; None or "" returns to the top level.
        Yields the full scope prefix, ending in "/".
        """
        prefix = self._push_name_scope(name)
        try:
            yield prefix
        finally:
            self._pop_frame()

    @contextlib.contextmanager
    def device(self, device_name):
        """A context manager that requests `device_name` (e.g. "/job:worker/task:1") for new
        operations; None or "" clears the request. The innermost device wins.

        `device_name` may also be a function (TF1's device functions, such as
        train.replica_device_setter): it is called with an object whose `type` is the new
        operation's op type ("Variable" for variables; "" for the nodes of a gradient or
        optimizer builder), `name` its name when known, `bytes` a variable's size (else -1)
        and `device` the request of the enclosing block, and returns the device string."""
        if callable(device_name):
            outer = self._current_device()
            choose = device_name
            self._push_device_function(
                lambda op_type, name, nbytes: choose(
                    _DeviceRequest(op_type, outer, name, nbytes)) or "")
            try:
                yield
            finally:
                self._pop_frame()
            return
        self._push_device(device_name)
        try:
            yield
        finally:
            self._pop_frame()

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs):
        """A context manager: new operations run only after every Operation or Tensor in
        `control_inputs`. Nested blocks accumulate; `None` clears the dependencies."""
        self._push_control_dependencies(None if control_inputs is None else list(control_inputs))
        try:
            yield
        finally:
            self._pop_frame()

    def to_dot(self, devices=None, title="sluice"):
        """The graph placed on `devices` (full device names; default: one CPU per task the
        operations request) as Graphviz DOT: a cluster per device, each cross-device transfer
        one bold edge labelled with dtype, shape and bytes, control edges dashed."""
        return self._to_dot(list(devices or []), title)

    def to_svg(self, devices=None, title="sluice"):
        """`to_dot` rendered by Graphviz's `dot` (install the `graphviz` package); RuntimeError
        saying so when `dot` is not installed."""
        import shutil
        import subprocess
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError("Graph.to_svg needs Graphviz's `dot` (apt-get install graphviz); "
                               "Graph.to_dot gives the text it would render")
        return subprocess.run([dot, "-Tsvg"], input=self.to_dot(devices, title), check=True,
                              capture_output=True, text=True).stdout

    def add_to_collection(self, key, value):
        """Appends `value` to the user collection `key` of this graph."""
        if key in _collection_providers:
            raise KeyError("collection {!r} is kept by the graph itself".format(key))
        self.__dict__.setdefault("_collections", {}).setdefault(key, []).append(value)

    def get_collection(self, key):
        """The values of collection `key`, in the order they joined it: the graph's own
        "variables" (every variable) and "trainable_variables", or a collection filled with
        add_to_collection (empty if there is none)."""
        provider = _collection_providers.get(key)
        if provider is not None:
            return provider(self)
        return list(self.__dict__.get("_collections", {}).get(key, []))

    def __repr__(self):
        return "<sluice.Graph with {} operations>".format(len(self))


class _DeviceRequest:
    """What a device function sees of an operation about to be built."""

    def __init__(self, op_type, device, name="", nbytes=-1):
        self.type = op_type
        self.device = device
        self.name = name
        self.bytes = nbytes  # A variable's value's size; -1 for other operations.

    def __repr__(self):
        return "<operation of type {!r}>".format(self.type)


# Collections the graph computes from what it holds (the variables), by key: the module that
# defines them registers a function of the graph here.
_collection_providers = {}


def register_collection(key, provider):
    """Makes `provider(graph)` the contents of collection `key` of every graph."""
    _collection_providers[key] = provider


# How values that are not Tensors become one: (type, function(value, dtype, name)) pairs. The
# first registration whose type matches wins, except that those for `object` (array_ops
# registers constant() for any literal) are tried only after every other.
_conversion_functions = []


def register_tensor_conversion_function(base_type, conversion_func):
    """Makes convert_to_tensor turn instances of `base_type` into Tensors with
    `conversion_func(value, dtype=None, name=None)`; earlier registrations win, and one for
    `object` is a fallback tried last."""
    _conversion_functions.append((base_type, conversion_func))
    _conversion_functions.sort(key=lambda entry: entry[0] is object)  # Stable: keeps order.


class _DefaultGraphState(threading.local):
    def __init__(self):
        super().__init__()
        self.stack = []


_state = _DefaultGraphState()
_global_default_graph = None
_global_lock = threading.Lock()


@contextlib.contextmanager
def _default_graph_context(graph):
    _state.stack.append(graph)
    try:
        yield graph
    finally:
        _state.stack.pop()


def get_default_graph():
    """The graph op functions add to: the innermost `Graph.as_default()` of this thread, else
    the process-wide global graph."""
    global _global_default_graph
    if _state.stack:
        return _state.stack[-1]
    with _global_lock:
        if _global_default_graph is None:
            _global_default_graph = Graph()
        return _global_default_graph


def reset_default_graph():
    """Replaces the global default graph by an empty one.

    Raises:
      AssertionError: inside a `Graph.as_default()` block (that graph would stay default).
    """
    global _global_default_graph
    if _state.stack:
        raise AssertionError("reset_default_graph() inside a Graph.as_default() block")
    with _global_lock:
        _global_default_graph = Graph()


def name_scope(name):
    """`get_default_graph().name_scope(name)`: prefixes new operation names with `name/`."""
    return get_default_graph().name_scope(name)


def device(device_name):
    """`get_default_graph().device(device_name)`: requests a device for new operations, e.g.
    `with sl.device("/job:worker/task:0"):`."""
    return get_default_graph().device(device_name)


def get_collection(key, scope=None):
    """The default graph's collection `key`; with `scope`, only the values whose name starts
    with it."""
    values = get_default_graph().get_collection(key)
    if scope is None:
        return values
    return [v for v in values if getattr(v, "name", "").startswith(scope)]


def add_to_collection(name, value):
    """Appends `value` to the default graph's collection `name`."""
    get_default_graph().add_to_collection(name, value)


class GraphKeys:
    """TF1's names of the standard collections."""
    GLOBAL_VARIABLES = "variables"
    VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    REGULARIZATION_LOSSES = "regularization_losses"
    GLOBAL_STEP = "global_step"
    SUMMARIES = "summaries"
    LOSSES = "losses"


def control_dependencies(control_inputs):
    """`get_default_graph().control_dependencies(...)`: new operations run after these."""
    return get_default_graph().control_dependencies(control_inputs)


def _as_tensor_or_none(value):
    if isinstance(value, Tensor):
        return value
    as_tensor = getattr(value, "_as_tensor", None)
    return as_tensor() if as_tensor is not None else None


def _graph_of(values):
    """The graph of the first tensor among `values` (nested lists allowed), else the default."""
    for v in values:
        if isinstance(v, (list, tuple)):
            for item in v:
                t = _as_tensor_or_none(item)
                if t is not None:
                    return t.graph
        else:
            t = _as_tensor_or_none(v)
            if t is not None:
                return t.graph
    return get_default_graph()


def _op(op_type, inputs, attrs=None, name=None, graph=None):
    """Adds an `op_type` node; one entry of `inputs` per input argument of the op (a list for
    list arguments). Literals (numbers, lists, numpy arrays) become constants. Returns the
    Operation."""
    g = graph if graph is not None else _graph_of(inputs)
    return g._add_op(op_type, list(inputs), attrs or {}, name, _caller_location())


def convert_to_tensor(value, dtype=None, name=None):
    """`value` as a Tensor: a Tensor (or Variable) is returned as is, anything else becomes a
    constant.

    Args:
      value: a Tensor, Variable, numpy array, Python number or nested list.
      dtype: optional DType the result must have (literals are converted to it).
      name: name of the constant, if one is made.

    Raises:
      ValueError: a Tensor of another dtype than `dtype`.
    """
    t = _as_tensor_or_none(value)
    if t is not None:
        if dtype is not None and t.dtype != dtypes.as_dtype(dtype):
            raise ValueError(
                "tensor {} has dtype {}, not the requested {}".format(
                    t.name, t.dtype.name, dtypes.as_dtype(dtype).name
                )
            )
        return t
    for base_type, conversion_func in _conversion_functions:
        if isinstance(value, base_type):
            return conversion_func(value, dtype=dtype, name=name)
    raise TypeError("cannot convert {!r} to a Tensor".format(value))
