"""Variables: tensors whose values live in the session and persist across runs.

    w = sl.Variable(sl.random_normal([4, 8], seed=1), name="w")
    step = w.assign_add(sl.ones([4, 8]))      # a Tensor: the new value
    init = sl.global_variables_initializer()
    with sl.Session() as sess:
        sess.run(init)
        sess.run(step)

Variables are built by the engine's ops::VariableWithInit (ops/variables.h): a Variable node
"w" and its initializer "w/Initializer". The graph is the registry: global_variables() and
global_variables_initializer() find every variable with an initializer, optimizer slots
included. A Variable object is a light view of the reading tensor, so views of one variable
compare equal.
"""

import numpy as np

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import tensor_shape
from sluice._core import core as _core

GLOBAL_VARIABLES = "variables"
TRAINABLE_VARIABLES = "trainable_variables"


class Variable:
    """A mutable tensor kept by the session between runs.

    Reading a Variable in an op (`sl.matmul(x, w)`, `w + 1`) reads its current value. Run
    `w.initializer` (or `sl.global_variables_initializer()`) before the first read.

    Args:
      initial_value: a Tensor, numpy array, number or nested list (or a callable returning
        one); its static shape becomes the variable's shape.
      trainable: whether optimizers update it (it joins trainable_variables()).
      name: the variable's node name (made unique in the current name scope).
      dtype: optional DType; the initial value is converted (literals) or cast (tensors).
    """

    def __init__(self, initial_value, trainable=True, name=None, dtype=None):
        if callable(initial_value):
            initial_value = initial_value()
        graph = framework._graph_of([initial_value])
        location = framework._caller_location()
        init = framework._as_tensor_or_none(initial_value)
        if init is None:
            if dtype is not None:
                initial_value = np.asarray(initial_value,
                                           dtype=dtypes.as_dtype(dtype).as_numpy_dtype)
        elif dtype is not None and init.dtype != dtypes.as_dtype(dtype):
            with graph.as_default():
                initial_value = array_ops.cast(init, dtype)
        self._variable = _core._add_variable(
            graph, initial_value, name or "Variable", bool(trainable), location)

    @classmethod
    def _from_tensor(cls, tensor):
        v = cls.__new__(cls)
        v._variable = tensor
        return v

    def _as_tensor(self):
        return self._variable

    def value(self):
        """The Tensor that reads the variable's current value."""
        return self._variable

    def read_value(self):
        """A new Tensor (an Identity) reading the current value."""
        return array_ops.identity(self._variable)

    @property
    def name(self):
        """The name of the reading tensor, "w:0"."""
        return self._variable.name

    @property
    def op(self):
        """The Variable Operation that reads the value."""
        return self._variable.op

    @property
    def dtype(self):
        """The element type."""
        return self._variable.dtype

    @property
    def shape(self):
        """The static shape (a TensorShape, None for unknown sizes)."""
        return self._variable.shape

    def get_shape(self):
        """The static shape as a TensorShape."""
        return self._variable.get_shape()

    @property
    def graph(self):
        """The Graph holding the variable."""
        return self._variable.graph

    @property
    def device(self):
        """The device requested for the variable."""
        return self._variable.device

    @property
    def initializer(self):
        """The Operation ("<name>/Initializer") that assigns the initial value."""
        return _core._initializer_of(self._variable)

    @property
    def initial_value(self):
        """The Tensor holding the initial value."""
        return self.initializer.inputs[1]

    @property
    def trainable(self):
        """Whether optimizers update this variable by default."""
        return _core._is_trainable(self._variable)

    def assign(self, value, name=None):
        """Sets the value (same shape); returns a Tensor of the new value."""
        return assign(self, value, name=name)

    def assign_add(self, delta, name=None):
        """Adds `delta` (same shape) in place; returns a Tensor of the new value."""
        return assign_add(self, delta, name=name)

    def assign_sub(self, delta, name=None):
        """Subtracts `delta` (same shape) in place; returns a Tensor of the new value."""
        return assign_sub(self, delta, name=name)

    def eval(self, session=None):
        """The current value, read with `session` (default: the default session)."""
        return self._variable.eval(session=session)

    def __eq__(self, other):
        return isinstance(other, Variable) and self._variable == other._variable

    def __hash__(self):
        return hash(self._variable)

    def __repr__(self):
        return "<sluice.Variable '{}' shape={} dtype={}>".format(
            self.op.name, self.shape, self.dtype.name)


class PartitionedVariable:
    """One variable stored as several Variables cut along one axis ("parts", TF1's
    PartitionedVariable), made by `get_variable(..., partitioner=...)`: each part is an ordinary
    variable named "<name>/part_<i>", so a device function (replica_device_setter) places each
    on its own ps task, and the model uses the whole as one variable. Used in an op it reads the
    parts joined along the axis; `sl.nn.embedding_lookup(pv, ids)` instead routes each id to its
    part, so only the looked-up rows leave each part's task. `sl.train.Saver` saves it as one
    tensor under `name`, so a checkpoint restores onto any number of parts.

    The first (size % parts) parts hold one row more than the rest (TF1's layout).
    """

    def __init__(self, name, shape, dtype, parts, axis):
        self._name = name
        self._shape = list(shape)
        self._dtype = dtype
        self._parts = list(parts)
        self._axis = axis

    @property
    def name(self):
        """The full variable's name (the parts are "<name>/part_<i>")."""
        return self._name

    @property
    def dtype(self):
        return self._dtype

    @property
    def shape(self):
        return tensor_shape.TensorShape(self._shape)

    def get_shape(self):
        """The full variable's shape."""
        return self.shape

    @property
    def axis(self):
        """The axis the variable is cut along."""
        return self._axis

    @property
    def graph(self):
        return self._parts[0].graph

    def __iter__(self):
        return iter(self._parts)

    def __len__(self):
        return len(self._parts)

    def _get_variable_list(self):
        """The parts, in order (TF1's name)."""
        return list(self._parts)

    def _get_partitions(self):
        """How many parts along each dimension (TF1's name)."""
        return [len(self._parts) if d == self._axis else 1 for d in range(len(self._shape))]

    def offsets(self):
        """Where each part starts along the axis."""
        starts, at = [], 0
        for part in self._parts:
            starts.append(at)
            at += part.shape[self._axis]
        return starts

    def as_tensor(self):
        """The parts joined along the axis: the whole variable's current value (a Concat in
        the current device scope)."""
        with self.graph.as_default():
            return array_ops.concat([p.value() for p in self._parts], self._axis,
                                    name=self._name.rpartition("/")[2] + "_concat")

    def _as_tensor(self):
        return self.as_tensor()

    def __repr__(self):
        return "<sluice.PartitionedVariable '{}' shape={} dtype={} parts={}>".format(
            self._name, self._shape, self._dtype.name, len(self._parts))


def _assign_op(op_type, ref, value, name, location):
    """An Assign-family Operation writing `value` into the variable `ref` reads."""
    ref = framework._as_tensor_or_none(ref)
    if ref is None:
        raise TypeError("{} needs a Variable, got {!r}".format(op_type, ref))
    handle = ref.graph._write_handle(ref, location)
    return ref.graph._add_op(op_type, [handle, value], {}, name, location)


def assign(ref, value, name=None):
    """Sets the variable `ref` (a Variable, or the tensor of a Variable node) to `value`;
    returns a Tensor of the new value."""
    return _assign_op("Assign", ref, value, name, framework._caller_location()).outputs[0]


def assign_add(ref, value, name=None):
    """Adds `value` to the variable `ref`; returns a Tensor of the new value."""
    return _assign_op("AssignAdd", ref, value, name, framework._caller_location()).outputs[0]


def assign_sub(ref, value, name=None):
    """Subtracts `value` from the variable `ref`; returns a Tensor of the new value."""
    return _assign_op("AssignSub", ref, value, name, framework._caller_location()).outputs[0]


def _scatter_op(op_type, ref, indices, updates, name, location):
    ref = framework._as_tensor_or_none(ref)
    if ref is None:
        raise TypeError("{} needs a Variable, got {!r}".format(op_type, ref))
    handle = ref.graph._write_handle(ref, location)
    return ref.graph._add_op(op_type, [handle, indices, updates], {}, name, location).outputs[0]


def scatter_add(ref, indices, updates, use_locking=False, name=None):
    """Adds updates[i, ...] to row indices[i] of the variable `ref` (updates: indices.shape +
    the variable's row shape; repeated indices add up); returns a Tensor of the new value.
    Every update of a variable holds its lock, so `use_locking` is accepted and ignored."""
    del use_locking
    return _scatter_op("ScatterAdd", ref, indices, updates, name, framework._caller_location())


def scatter_sub(ref, indices, updates, use_locking=False, name=None):
    """Subtracts updates[i, ...] from row indices[i] of the variable `ref`."""
    del use_locking
    return _scatter_op("ScatterSub", ref, indices, updates, name, framework._caller_location())


def scatter_update(ref, indices, updates, use_locking=True, name=None):
    """Sets row indices[i] of the variable `ref` to updates[i, ...] (a repeated index: the last
    update wins)."""
    del use_locking
    return _scatter_op("ScatterUpdate", ref, indices, updates, name,
                       framework._caller_location())


def _collection(graph, key):
    tensors = _core._global_variables(graph)
    if key == TRAINABLE_VARIABLES:
        tensors = [t for t in tensors if _core._is_trainable(t)]
    elif key != GLOBAL_VARIABLES:
        raise KeyError("unknown collection {!r} (use {!r} or {!r})".format(
            key, GLOBAL_VARIABLES, TRAINABLE_VARIABLES))
    return [Variable._from_tensor(t) for t in tensors]


framework.register_collection(GLOBAL_VARIABLES, lambda g: _collection(g, GLOBAL_VARIABLES))
framework.register_collection(TRAINABLE_VARIABLES, lambda g: _collection(g, TRAINABLE_VARIABLES))


def global_variables():
    """Every Variable of the default graph (optimizer slots included), in creation order."""
    return _collection(framework.get_default_graph(), GLOBAL_VARIABLES)


def trainable_variables():
    """The Variables of the default graph created with trainable=True, in creation order."""
    return _collection(framework.get_default_graph(), TRAINABLE_VARIABLES)


def initialize_all_variables():
    """TensorFlow 1's older name of `global_variables_initializer`."""
    return global_variables_initializer()


def variables_initializer(var_list, name="init"):
    """An Operation that runs the initializers of the Variables in `var_list`."""
    if not var_list:
        return array_ops.no_op(name=name)
    return array_ops.group(*[v.initializer for v in var_list], name=name)


def global_variables_initializer():
    """An Operation (named "init") that initialises every variable of the default graph built
    so far, optimizer slots included: build it after the optimizer."""
    g = framework.get_default_graph()
    return _core._global_variables_initializer(g, "init", framework._caller_location())
