"""TF1's variable sharing: `variable_scope`, `get_variable` and the initializers it takes.

    def dense(x, units):
        w = sl.get_variable("w", [x.shape[1], units])           # glorot_uniform by default
        b = sl.get_variable("b", [units], initializer=sl.zeros_initializer())
        return sl.matmul(x, w) + b

    with sl.variable_scope("layer"):
        y1 = dense(x1, 10)                                     # creates layer/w, layer/b
    with sl.variable_scope("layer", reuse=True):
        y2 = dense(x2, 10)                                     # shares them

Each graph keeps its own store of the variables get_variable created, by full name. Creating
one that exists, or reusing one that does not, is a ValueError that says which and what to set
(reuse=True, or sl.AUTO_REUSE to create-or-reuse). A variable_scope also opens a name scope of
its name, so the ops inside are named under it; the variables are named by the variable scope
alone, as in TF1. `reuse` is inherited: inside a reusing scope every nested scope reuses.
A `custom_getter(getter, name, *args, **kwargs)` wraps variable creation; nested scopes' getters
compose, the outer one outermost.
"""

import contextlib
import functools
import math

import numpy as np

from sluice import array_ops
from sluice import dtypes
from sluice import framework
from sluice import random_ops
from sluice import tensor_shape
from sluice import variables


class _AutoReuse:
    def __repr__(self):
        return "AUTO_REUSE"


AUTO_REUSE = _AutoReuse()
REGULARIZATION_LOSSES = "regularization_losses"


class VariableScope:
    """The settings get_variable uses inside a `variable_scope` block."""

    def __init__(self, name, reuse=False, initializer=None, regularizer=None,
                 custom_getter=None, dtype=dtypes.float32, original_name_scope=""):
        self.name = name
        self.reuse = reuse
        self.initializer = initializer
        self.regularizer = regularizer
        self.custom_getter = custom_getter
        self.dtype = dtype
        self.original_name_scope = original_name_scope

    def reuse_variables(self):
        """Makes get_variable in this scope reuse existing variables from now on."""
        self.reuse = True

    def set_initializer(self, initializer):
        self.initializer = initializer

    def __repr__(self):
        return "<VariableScope {!r} reuse={}>".format(self.name, self.reuse)


def _state(graph):
    """The graph's (variable store {full name: Variable}, scope stack, scope name counts)."""
    d = graph.__dict__
    if "_variable_store" not in d:
        d["_variable_store"] = {}
        d["_variable_scopes"] = [VariableScope("")]
        d["_variable_scope_counts"] = {}
    return d["_variable_store"], d["_variable_scopes"], d["_variable_scope_counts"]


def get_variable_scope():
    """The innermost VariableScope of the default graph (the root one outside any block)."""
    return _state(framework.get_default_graph())[1][-1]


def _join(prefix, name):
    return "{}/{}".format(prefix, name) if prefix else name


def _compose(outer, inner):
    """A custom getter that runs `inner` with `outer` wrapped around the real getter."""
    if outer is None:
        return inner
    if inner is None:
        return outer
    return lambda getter, *args, **kwargs: outer(functools.partial(inner, getter), *args,
                                                 **kwargs)


@contextlib.contextmanager
def variable_scope(name_or_scope=None, default_name=None, values=None, initializer=None,
                   regularizer=None, reuse=None, custom_getter=None, dtype=None,
                   auxiliary_name_scope=True):
    """A block whose get_variable calls create (or, with reuse, share) variables named
    "<scope>/<name>". `name_or_scope` is a name (joined to the enclosing scope) or a
    VariableScope to re-enter; without it, `default_name` made unique ("dense", "dense_1")."""
    del values  # TF1 uses it only to pick the graph.
    graph = framework.get_default_graph()
    _, stack, counts = _state(graph)
    parent = stack[-1]
    if isinstance(name_or_scope, VariableScope):
        base = name_or_scope
        full, name_scope = base.name, base.original_name_scope
    elif name_or_scope:
        base, full = parent, _join(parent.name, str(name_or_scope))
        name_scope = str(name_or_scope)
    elif default_name:
        base = parent
        unique = str(default_name)
        n = counts.get(_join(parent.name, unique), 0)
        counts[_join(parent.name, str(default_name))] = n + 1
        if n:
            unique = "{}_{}".format(default_name, n)
        full, name_scope = _join(parent.name, unique), unique
    else:
        raise ValueError("variable_scope needs a name, a VariableScope or a default_name")
    if reuse is not None and reuse not in (True, False) and reuse is not AUTO_REUSE:
        raise ValueError("reuse must be True, False, None or sl.AUTO_REUSE, got {!r}".format(
            reuse))
    # reuse=False (or None) inherits: once a scope reuses, every scope inside it does.
    inherited = parent.reuse if base is parent else base.reuse
    new_reuse = True if inherited is True or reuse is True else (
        AUTO_REUSE if AUTO_REUSE in (inherited, reuse) else False)
    scope = VariableScope(
        full, reuse=new_reuse,
        initializer=initializer if initializer is not None else base.initializer,
        regularizer=regularizer if regularizer is not None else base.regularizer,
        custom_getter=_compose(parent.custom_getter if base is parent else base.custom_getter,
                               custom_getter),
        dtype=dtypes.as_dtype(dtype) if dtype is not None else base.dtype)
    stack.append(scope)
    try:
        if auxiliary_name_scope:
            with graph.name_scope(name_scope) as prefix:
                if not scope.original_name_scope:
                    scope.original_name_scope = prefix
                yield scope
        else:
            yield scope
    finally:
        stack.pop()


def get_variable(name, shape=None, dtype=None, initializer=None, regularizer=None,
                 trainable=True, collections=None, caching_device=None, partitioner=None,
                 validate_shape=True, use_resource=None, custom_getter=None, constraint=None):
    """The variable "<current variable scope>/<name>": created (with `initializer`, the scope's,
    or glorot_uniform for floats and zeros for integers) unless it exists; shared when the
    scope reuses. `initializer` may also be a tensor or array (then `shape` is its shape)."""
    del caching_device, validate_shape, use_resource
    if partitioner is not None:
        raise NotImplementedError("get_variable(partitioner=) is not supported yet")
    if constraint is not None:
        raise NotImplementedError("get_variable(constraint=) is not supported")
    scope = get_variable_scope()
    full = _join(scope.name, name)
    getter = _compose(scope.custom_getter, custom_getter)
    kwargs = dict(shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                  trainable=trainable, collections=collections)
    if getter is None:
        return _get_or_create(full, **kwargs)
    return getter(_get_or_create, full, **kwargs)


def _get_or_create(name, shape=None, dtype=None, initializer=None, regularizer=None,
                   trainable=True, collections=None, **unused):
    graph = framework.get_default_graph()
    store, _, _ = _state(graph)
    scope = get_variable_scope()
    reuse = scope.reuse
    if shape is not None and not isinstance(shape, (list, tuple)):
        shape = [shape] if isinstance(shape, (int, np.integer)) else list(shape)
    if name in store:
        if reuse is False:
            raise ValueError(
                "Variable {} already exists, disallowed. Did you mean to set reuse=True or "
                "reuse=sl.AUTO_REUSE in variable_scope?".format(name))
        found = store[name]
        if shape is not None and not found.get_shape().is_compatible_with(shape):
            raise ValueError("Trying to share variable {}, but specified shape {} and found "
                             "shape {}".format(name, list(shape), found.get_shape().as_list()))
        if dtype is not None and dtypes.as_dtype(dtype) != found.dtype:
            raise ValueError("Trying to share variable {}, but specified dtype {} and found "
                             "dtype {}".format(name, dtypes.as_dtype(dtype).name,
                                               found.dtype.name))
        return found
    if reuse is True:
        raise ValueError(
            "Variable {} does not exist, or was not created with get_variable(). Did you mean "
            "to set reuse=sl.AUTO_REUSE in variable_scope?".format(name))
    if initializer is None:
        initializer = scope.initializer
    # A tensor, array or literal initializer is the value itself.
    value = framework._as_tensor_or_none(initializer)
    if value is None and isinstance(initializer, np.ndarray):
        value = initializer
    elif value is None and isinstance(initializer, (list, tuple, float, int)):
        value = np.asarray(initializer,
                           dtype=dtypes.as_dtype(dtype or scope.dtype).as_numpy_dtype)
    if value is not None:
        tensor = framework._as_tensor_or_none(value)
        value_shape = (tensor.get_shape() if tensor is not None
                       else tensor_shape.TensorShape(np.shape(value)))
        if shape is not None and not value_shape.is_compatible_with(shape):
            raise ValueError("variable {}: the initializer's shape {} is not the shape {} "
                             "given".format(name, value_shape, list(shape)))
        if dtype is None:
            dtype = tensor.dtype if tensor is not None else value.dtype
    dtype = dtypes.as_dtype(dtype if dtype is not None else scope.dtype)
    prefix, _, short = name.rpartition("/")
    with graph.name_scope(prefix + "/" if prefix else ""):
        if value is None:
            if shape is None or any(d is None for d in shape):
                raise ValueError("Shape of a new variable ({}) must be fully defined, but "
                                 "instead was {}".format(name, shape))
            shape = [int(d) for d in shape]
            if initializer is None:
                initializer = (glorot_uniform_initializer() if dtype.is_floating
                               else zeros_initializer())
            with graph.name_scope(short + "/Initializer"):
                value = initializer(shape, dtype=dtype)
        var = variables.Variable(value, trainable=trainable, name=short, dtype=dtype)
    if var.op.name != name:
        raise ValueError("cannot create variable {}: an operation of that name exists (it "
                         "became {})".format(name, var.op.name))
    store[name] = var
    for key in collections or ():
        if key not in (variables.GLOBAL_VARIABLES, variables.TRAINABLE_VARIABLES):
            graph.add_to_collection(key, var)
    regularizer = regularizer if regularizer is not None else scope.regularizer
    if regularizer is not None:
        with graph.name_scope(name + "/Regularizer/"):
            loss = regularizer(var)
        if loss is not None:
            graph.add_to_collection(REGULARIZATION_LOSSES, loss)
    return var


# ---------------------------------------------------------------------------------------------
# Initializers: objects called with (shape, dtype) that return the initial value's Tensor.

class Initializer:
    """Base of the initializers: called with (shape, dtype) it returns the initial value."""
    def __call__(self, shape, dtype=None, partition_info=None):
        raise NotImplementedError


class zeros_initializer(Initializer):  # noqa: N801  (TF1's name)
    """Every element 0."""
    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.zeros(shape, dtype=dtype or self.dtype)


class ones_initializer(Initializer):  # noqa: N801
    """Every element 1."""
    def __init__(self, dtype=dtypes.float32):
        self.dtype = dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return array_ops.ones(shape, dtype=dtype or self.dtype)


class constant_initializer(Initializer):  # noqa: N801
    """Every element `value`, or the array `value` (of the variable's shape or size)."""

    def __init__(self, value=0, dtype=dtypes.float32):
        self.value = value
        self.dtype = dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = dtypes.as_dtype(dtype or self.dtype)
        v = np.asarray(self.value, dtype=dtype.as_numpy_dtype)
        if v.size == 1:
            return array_ops.constant(np.full(shape, v.reshape(()), dtype=v.dtype))
        if v.size != int(np.prod(shape)):
            raise ValueError("constant_initializer: {} values for a variable of shape {}".format(
                v.size, list(shape)))
        return array_ops.constant(v.reshape(shape))


class random_normal_initializer(Initializer):  # noqa: N801
    """Normal samples with the given mean and stddev (seeded like random_normal)."""
    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=dtypes.float32):
        self.mean, self.stddev, self.seed, self.dtype = mean, stddev, seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_normal(shape, self.mean, self.stddev, dtype or self.dtype,
                                        seed=self.seed)


class truncated_normal_initializer(random_normal_initializer):  # noqa: N801
    """Normal samples redrawn beyond two standard deviations (as truncated_normal)."""
    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.truncated_normal(shape, self.mean, self.stddev, dtype or self.dtype,
                                           seed=self.seed)


class random_uniform_initializer(Initializer):  # noqa: N801
    """Uniform samples in [minval, maxval) (maxval default 1)."""
    def __init__(self, minval=0.0, maxval=None, seed=None, dtype=dtypes.float32):
        self.minval = minval
        self.maxval = 1.0 if maxval is None else maxval
        self.seed, self.dtype = seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        return random_ops.random_uniform(shape, self.minval, self.maxval, dtype or self.dtype,
                                         seed=self.seed)


def _fans(shape):
    """(fan_in, fan_out) as TF computes them: a conv filter's receptive field multiplies both."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


class glorot_uniform_initializer(Initializer):  # noqa: N801
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010):
    get_variable's default for float variables."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        self.seed, self.dtype = seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        fan_in, fan_out = _fans(list(shape))
        limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        return random_ops.random_uniform(shape, -limit, limit, dtype or self.dtype,
                                         seed=self.seed)


class glorot_normal_initializer(Initializer):  # noqa: N801
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) / 0.8796 (the truncation's
    correction, as TF's variance_scaling)."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        self.seed, self.dtype = seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        fan_in, fan_out = _fans(list(shape))
        stddev = math.sqrt(2.0 / max(fan_in + fan_out, 1)) / .87962566103423978
        return random_ops.truncated_normal(shape, 0.0, stddev, dtype or self.dtype,
                                           seed=self.seed)
