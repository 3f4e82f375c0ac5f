"""Sluice: build dataflow graphs in Python and run them on the C++ engine.

The API follows TensorFlow's graph mode::

    import numpy as np
    import sluice as sl

    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None, 4], name="x")
        w = sl.Variable(sl.random_normal([4, 3], seed=1), name="w")
        y = sl.nn.softmax(x @ w)
        init = sl.global_variables_initializer()
    with sl.Session(graph=g) as sess:
        sess.run(init)
        print(sess.run(y, feed_dict={x: np.ones((2, 4), np.float32)}))

Clusters: `sl.LocalCluster(workers=2)` starts real server processes on this machine and
`sl.Session(cluster.target, graph=g)` runs the graph there; `sl.Server` runs one task.

Modules: `sl.nn` (activations, losses), `sl.train` (optimizers, Saver),
`sl.errors` (exceptions). See docs/python.md.
"""

from sluice import errors
from sluice.dtypes import DType, as_dtype, bool, float32, float64, int32, int64  # noqa: A004
from sluice.framework import (
    Graph,
    GraphKeys,
    add_to_collection,
    get_collection,
    Operation,
    Tensor,
    control_dependencies,
    convert_to_tensor,
    device,
    get_default_graph,
    name_scope,
    reset_default_graph,
)
from sluice.array_ops import (
    cast,
    concat,
    constant,
    dynamic_partition,
    dynamic_stitch,
    expand_dims,
    fill,
    gather,
    gather_nd,
    group,
    identity,
    no_op,
    one_hot,
    ones,
    ones_like,
    pad,
    placeholder,
    range_ as range,  # noqa: A004
    rank,
    reshape,
    scatter_nd,
    shape,
    size,
    slice,  # noqa: A004
    split,
    squeeze,
    stack,
    stop_gradient,
    tile,
    transpose,
    unstack,
    zeros,
    zeros_like,
)
from sluice.math_ops import (  # noqa: A004
    abs,
    add,
    add_n,
    argmax,
    argmin,
    ceil,
    clip_by_global_norm,
    clip_by_norm,
    clip_by_value,
    divide,
    equal,
    exp,
    floor,
    floordiv,
    floormod,
    global_norm,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    maximum,
    minimum,
    mod,
    multiply,
    negative,
    not_equal,
    pow,
    reciprocal,
    reduce_all,
    reduce_any,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_prod,
    reduce_sum,
    round,
    rsqrt,
    sigmoid,
    sign,
    sqrt,
    square,
    subtract,
    tanh,
    unsorted_segment_sum,
    where,
)
from sluice.gradients import gradients
from sluice.random_ops import (
    random_normal,
    random_shuffle,
    random_uniform,
    set_random_seed,
    truncated_normal,
)
from sluice.variables import (
    Variable,
    assign,
    assign_add,
    assign_sub,
    global_variables,
    global_variables_initializer,
    initialize_all_variables,
    scatter_add,
    scatter_sub,
    scatter_update,
    trainable_variables,
    variables_initializer,
    PartitionedVariable,
)
from sluice.tensor_shape import Dimension, TensorShape
from sluice.variable_sharing import (
    AUTO_REUSE,
    VariableScope,
    constant_initializer,
    fixed_size_partitioner,
    get_variable,
    get_variable_scope,
    glorot_normal_initializer,
    glorot_uniform_initializer,
    min_max_variable_partitioner,
    ones_initializer,
    random_normal_initializer,
    random_uniform_initializer,
    truncated_normal_initializer,
    variable_axis_size_partitioner,
    variable_scope,
    zeros_initializer,
)
from sluice.session import (ConfigProto, InteractiveSession, RunMetadata, RunOptions, Session,
                            get_default_session)
from sluice.distributed import LocalCluster, Server, set_cluster_token, set_tls
from sluice import nn
from sluice import losses
from sluice import summary
from sluice import app
from sluice import collective
from sluice import data
from sluice import ps
from sluice import pipeline
from sluice import debug
from sluice import trace
from sluice import progress
from sluice import gfile
from sluice.app import flags
from sluice import operators as _operators  # Installs `+`, `@`, ... on Tensor and Variable.
from sluice import train

__all__ = [name for name in dir() if not name.startswith("_")]
