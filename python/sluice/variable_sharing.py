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
                 custom_getter=None, dtype=dtypes.float32, original_name_scope="",
                 partitioner=None):
        self.name = name
        self.partitioner = partitioner
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
                   auxiliary_name_scope=True, partitioner=None):
    """A block whose get_variable calls create (or, with reuse, share) variables named
    "<scope>/<name>" (cut into parts by `partitioner` when one is set, here or in
    get_variable). `name_or_scope` is a name (joined to the enclosing scope) or a
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
        dtype=dtypes.as_dtype(dtype) if dtype is not None else base.dtype,
        partitioner=partitioner if partitioner is not None else base.partitioner)
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
    if constraint is not None:
        raise NotImplementedError("get_variable(constraint=) is not supported")
    scope = get_variable_scope()
    full = _join(scope.name, name)
    partitioner = partitioner if partitioner is not None else scope.partitioner
    if partitioner is not None:
        return _get_partitioned(full, partitioner, shape=shape, dtype=dtype,
                                initializer=initializer, regularizer=regularizer,
                                trainable=trainable, collections=collections)
    getter = _compose(scope.custom_getter, custom_getter)
    kwargs = dict(shape=shape, dtype=dtype, initializer=initializer, regularizer=regularizer,
                  trainable=trainable, collections=collections)
    if getter is None:
        return _get_or_create(full, **kwargs)
    return getter(_get_or_create, full, **kwargs)


def _no_regularizer(var):
    """A part's regularizer: none, not even the scope's."""
    del var


def _regularize(graph, name, var, regularizer):
    """Adds regularizer(var) to REGULARIZATION_LOSSES (built under "<name>/Regularizer")."""
    if regularizer is None:
        return
    with graph.name_scope(name + "/Regularizer/"):
        loss = regularizer(var)
    if loss is not None:
        graph.add_to_collection(REGULARIZATION_LOSSES, loss)


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
    _regularize(graph, name, var, regularizer if regularizer is not None else scope.regularizer)
    return var


# ---------------------------------------------------------------------------------------------
# Partitioned variables: one variable stored as parts cut along one axis.

class _PartitionInfo:
    """What an initializer learns about the part it initialises (TF1's name and fields)."""

    def __init__(self, full_shape, var_offset):
        self.full_shape = list(full_shape)
        self.var_offset = list(var_offset)


def _part_sizes(size, count):
    """`count` near-equal sizes summing to `size`, the first (size % count) one larger."""
    return [size // count + (1 if i < size % count else 0) for i in range(count)]


def _get_partitioned(name, partitioner, shape=None, dtype=None, initializer=None,
                     regularizer=None, trainable=True, collections=None):
    graph = framework.get_default_graph()
    store, _, _ = _state(graph)
    scope = get_variable_scope()
    if name in store:
        # Sharing follows the same rules as for one variable (checks included).
        found = _get_or_create(name, shape=shape, dtype=dtype)
        if not isinstance(found, variables.PartitionedVariable):
            raise ValueError("Trying to reuse variable {} as a partitioned variable, but it "
                             "was created without a partitioner".format(name))
        return found
    if scope.reuse is True:
        raise ValueError("PartitionedVariable {} does not exist, or was not created with "
                         "get_variable(). Did you mean to set reuse=sl.AUTO_REUSE in "
                         "variable_scope?".format(name))
    value = None
    if initializer is None:
        initializer = scope.initializer
    if isinstance(initializer, np.ndarray):  # Keeps its dtype unless one is given.
        value = initializer if dtype is None else initializer.astype(
            dtypes.as_dtype(dtype).as_numpy_dtype)
    elif isinstance(initializer, (list, tuple, float, int)):
        value = np.asarray(initializer,
                           dtype=dtypes.as_dtype(dtype or scope.dtype).as_numpy_dtype)
    if value is not None:
        shape = list(value.shape) if shape is None else shape
    elif framework._as_tensor_or_none(initializer) is not None:
        raise ValueError("variable {}: a partitioned variable takes an array or an "
                         "initializer object, not a tensor".format(name))
    if shape is None or any(d is None for d in shape):
        raise ValueError("Shape of a new partitioned variable ({}) must be fully defined, but "
                         "instead was {}".format(name, shape))
    shape = [int(d) for d in shape]
    dtype = dtypes.as_dtype(dtype if dtype is not None else
                            (value.dtype if value is not None else scope.dtype))
    if value is not None and list(value.shape) != shape:
        raise ValueError("variable {}: the initializer's shape {} is not the shape {} "
                         "given".format(name, list(value.shape), shape))
    partitions = list(partitioner(shape=tensor_shape.TensorShape(shape), dtype=dtype))
    cut = [i for i, n in enumerate(partitions) if n > 1]
    if len(partitions) != len(shape) or any(n < 1 for n in partitions) or len(cut) > 1:
        raise ValueError("variable {}: the partitioner returned {} for shape {}: it must give "
                         "one count >= 1 per dimension, at most one of them above 1".format(
                             name, partitions, shape))
    axis = cut[0] if cut else 0
    count = max(1, min(partitions[axis], shape[axis]))
    if initializer is None and value is None:
        initializer = (glorot_uniform_initializer() if dtype.is_floating
                       else zeros_initializer())
    parts, offset = [], 0
    for i, rows in enumerate(_part_sizes(shape[axis], count)):
        part_shape = list(shape)
        part_shape[axis] = rows
        if value is not None:
            part_init = np.take(value, range(offset, offset + rows), axis=axis)
        else:
            start = [0] * len(shape)
            start[axis] = offset
            part_init = _PartitionedInitializer(initializer, _PartitionInfo(shape, start))
        # The regularizer applies to the whole variable, once, below.
        parts.append(_get_or_create("{}/part_{}".format(name, i), shape=part_shape,
                                    dtype=dtype, initializer=part_init,
                                    regularizer=_no_regularizer, trainable=trainable,
                                    collections=collections))
        offset += rows
    var = variables.PartitionedVariable(name, shape, dtype, parts, axis)
    store[name] = var
    _regularize(graph, name, var, regularizer if regularizer is not None else scope.regularizer)
    return var


def partitioned_variables(graph):
    """The PartitionedVariables get_variable made in `graph`, in creation order."""
    store, _, _ = _state(graph)
    return [v for v in store.values() if isinstance(v, variables.PartitionedVariable)]


class _PartitionedInitializer:
    """An initializer called for one part, with that part's place in the whole."""

    def __init__(self, initializer, partition_info):
        self.initializer, self.partition_info = initializer, partition_info

    def __call__(self, shape, dtype=None, partition_info=None):
        return self.initializer(shape, dtype=dtype, partition_info=self.partition_info)


def fixed_size_partitioner(num_shards, axis=0):
    """A partitioner cutting `axis` into `num_shards` parts (fewer when the axis is shorter)."""
    if num_shards < 1:
        raise ValueError("fixed_size_partitioner: num_shards must be at least 1, got {}".format(
            num_shards))

    def partitioner(shape, dtype):
        del dtype
        partitions = [1] * shape.ndims
        partitions[axis] = min(int(num_shards), max(shape.as_list()[axis], 1))
        return partitions
    return partitioner


def _bytes_of(shape, dtype):
    return int(np.prod(shape.as_list())) * dtypes.as_dtype(dtype).size


def min_max_variable_partitioner(max_partitions=1, axis=0, min_slice_size=256 << 10,
                                 bytes_per_string_element=16):
    """A partitioner giving each part at least `min_slice_size` bytes, with at most
    `max_partitions` parts (and at most one per element of `axis`)."""
    del bytes_per_string_element
    if max_partitions < 1 or min_slice_size < 1:
        raise ValueError("min_max_variable_partitioner: max_partitions and min_slice_size "
                         "must be at least 1")

    def partitioner(shape, dtype):
        partitions = [1] * shape.ndims
        wanted = max(1, _bytes_of(shape, dtype) // int(min_slice_size))
        partitions[axis] = max(1, min(int(max_partitions), wanted, shape.as_list()[axis]))
        return partitions
    return partitioner


def variable_axis_size_partitioner(max_shard_bytes, axis=0, bytes_per_string_element=16,
                                   max_shards=None):
    """A partitioner giving each part at most `max_shard_bytes` bytes where the axis allows
    (at most `max_shards` parts)."""
    del bytes_per_string_element
    if max_shard_bytes < 1:
        raise ValueError("variable_axis_size_partitioner: max_shard_bytes must be at least 1")

    def partitioner(shape, dtype):
        partitions = [1] * shape.ndims
        wanted = -(-_bytes_of(shape, dtype) // int(max_shard_bytes))
        if max_shards:
            wanted = min(wanted, int(max_shards))
        partitions[axis] = max(1, min(wanted, shape.as_list()[axis]))
        return partitions
    return partitioner


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


def _whole_shape(shape, partition_info):
    """The shape scale-aware initializers size by: the whole variable's for a part."""
    return list(partition_info.full_shape if partition_info is not None else shape)


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
        fan_in, fan_out = _fans(_whole_shape(shape, partition_info))
        limit = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        return random_ops.random_uniform(shape, -limit, limit, dtype or self.dtype,
                                         seed=self.seed)


class glorot_normal_initializer(Initializer):  # noqa: N801
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out)) / 0.8796 (the truncation's
    correction, as TF's variance_scaling)."""

    def __init__(self, seed=None, dtype=dtypes.float32):
        self.seed, self.dtype = seed, dtype

    def __call__(self, shape, dtype=None, partition_info=None):
        fan_in, fan_out = _fans(_whole_shape(shape, partition_info))
        stddev = math.sqrt(2.0 / max(fan_in + fan_out, 1)) / .87962566103423978
        return random_ops.truncated_normal(shape, 0.0, stddev, dtype or self.dtype,
                                           seed=self.seed)
