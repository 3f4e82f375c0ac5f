"""Graph building: names, scopes, devices, control dependencies, static shapes, build errors."""

import inspect

import numpy as np
import pytest

import sluice as sl


def _line():
    """The caller's line number, to check the source location in error messages."""
    return inspect.currentframe().f_back.f_lineno


def test_placeholder_shape_dtype_and_name(graph):
    x = sl.placeholder(sl.float32, shape=[None, 4], name="x")
    assert x.name == "x:0"
    assert x.op.name == "x" and x.op.type == "Placeholder"
    assert x.dtype == sl.float32
    assert x.shape == (None, 4)
    assert x.graph is graph
    assert sl.placeholder(sl.int64).shape is None  # Unknown rank.


def test_static_shapes_are_inferred(graph):
    x = sl.placeholder(sl.float32, shape=[None, 4])
    w = sl.constant(np.zeros((4, 3), np.float32))
    y = sl.matmul(x, w) + sl.constant(np.zeros(3, np.float32))
    assert y.shape == (None, 3)
    assert sl.reduce_sum(y, axis=1).shape == (None,)
    assert sl.reduce_sum(y, axis=1, keepdims=True).shape == (None, 1)
    assert sl.reshape(w, [-1]).shape == (12,)
    assert sl.transpose(w).shape == (3, 4)
    assert sl.concat([w, w], axis=0).shape == (8, 3)
    assert [p.shape for p in sl.split(w, 2, axis=0)] == [(2, 3), (2, 3)]


def test_a_python_number_is_a_scalar_constant(graph):
    """constant(1.0) is 0-d, as in TensorFlow (numpy's ascontiguousarray made it [1])."""
    assert sl.constant(1.0).shape == () and (sl.constant(2) + 1).shape == ()
    assert sl.constant([1.0]).shape == (1,)
    with sl.Session(graph=graph) as sess:
        value = sess.run(sl.constant(1.5) * 2.0)
    assert np.ndim(value) == 0 and value == 3.0


def test_names_are_unique_and_follow_name_scopes(graph):
    a = sl.constant(1.0, name="a")
    b = sl.constant(2.0, name="a")
    assert (a.op.name, b.op.name) == ("a", "a_1")
    with sl.name_scope("layer") as scope:
        assert scope == "layer/"
        c = sl.add(a, b)
        with sl.name_scope("inner"):
            d = sl.multiply(c, c, name="prod")
    with sl.name_scope("layer") as scope2:
        e = sl.add(a, b)
    with sl.name_scope("layer/"):  # Re-entering the first scope exactly.
        f = sl.add(a, b)
    assert c.op.name == "layer/Add"
    assert d.op.name == "layer/inner/prod"
    assert scope2 == "layer_1/" and e.op.name == "layer_1/Add"
    assert f.op.name == "layer/Add_1"
    assert graph.get_operation_by_name("layer/inner/prod") == d.op
    assert graph.get_tensor_by_name("layer/inner/prod:0") == d
    with pytest.raises(KeyError):
        graph.get_operation_by_name("nope")


def test_devices_are_recorded_innermost_wins(graph):
    with sl.device("/job:worker/task:0"):
        a = sl.constant(1.0)
        with sl.device("/job:worker/task:1"):
            b = a * 2.0
        c = a + b
    d = sl.identity(c)
    assert a.device == "/job:worker/task:0"
    assert b.op.device == "/job:worker/task:1"
    assert c.device == "/job:worker/task:0"
    assert d.device == ""


def test_control_dependencies_accumulate_and_clear(graph):
    a = sl.no_op(name="a")
    b = sl.constant(1.0, name="b")
    with sl.control_dependencies([a]):
        c = sl.identity(b, name="c")
        with sl.control_dependencies([b]):
            d = sl.identity(b, name="d")
        with sl.control_dependencies(None):
            e = sl.identity(b, name="e")
    assert [op.name for op in c.op.control_inputs] == ["a"]
    assert sorted(op.name for op in d.op.control_inputs) == ["a", "b"]
    assert e.op.control_inputs == []
    g = sl.group(c, d, name="both")
    assert g.type == "NoOp" and sorted(op.name for op in g.control_inputs) == ["c", "d"]


def test_operators_build_the_expected_ops(graph):
    x = sl.placeholder(sl.float32, shape=[2, 2])
    ops = {
        "Add": x + 1, "Sub": 1 - x, "Mul": x * x, "Div": x / 2, "MatMul": x @ x, "Neg": -x,
    }
    for op_type, t in ops.items():
        assert t.op.type == op_type
    r = 1 - x
    assert r.op.inputs[1] == x  # Reflected: the literal is the first operand.
    n = np.ones((2, 2), np.float32) + x  # numpy defers to the tensor.
    assert isinstance(n, sl.Tensor) and n.op.type == "Add"
    with pytest.raises(TypeError):
        bool(x)


def test_literals_take_the_other_operand_dtype(graph):
    x64 = sl.placeholder(sl.float64)
    i32 = sl.placeholder(sl.int32)
    assert (x64 * 2).dtype == sl.float64
    assert (i32 + 2).dtype == sl.int32
    assert (i32 + 2.0).dtype == sl.int32  # 2.0 converts to int32 without loss.
    assert sl.constant(1.5).dtype == sl.float32
    assert sl.constant(3).dtype == sl.int32
    assert sl.constant(2**40).dtype == sl.int64
    assert sl.constant(np.array([1, 2], np.int64)).dtype == sl.int64
    assert sl.constant([1, 2], dtype=sl.float64).dtype == sl.float64
    assert sl.constant(0.0, shape=[2, 3]).shape == (2, 3)


def test_attributes_are_readable(graph):
    x = sl.placeholder(sl.float32, shape=[None, 3], name="x")
    m = sl.matmul(x, np.ones((3, 2), np.float32), transpose_b=False)
    assert x.op.get_attr("dtype") == sl.float32
    assert x.op.get_attr("shape") == (None, 3)
    assert m.op.get_attr("transpose_a") is False
    c = sl.constant([[1, 2]], dtype=sl.int64)
    np.testing.assert_array_equal(c.op.get_attr("value"), [[1, 2]])
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        x.op.get_attr("nope")


def test_inputs_outputs_consumers(graph):
    a = sl.constant(1.0, name="a")
    b = sl.add(a, a, name="b")
    assert b.op.inputs == [a, a]
    assert b.op.outputs == [b]
    assert a.consumers() == [b.op, b.op]
    assert len(graph) == 2
    assert [op.name for op in graph.get_operations()] == ["a", "b"]


def test_shape_error_raises_at_the_building_line_with_node_op_and_shapes(graph):
    a = sl.constant(np.zeros((2, 3), np.float32))
    b = sl.constant(np.zeros((4, 5), np.float32))
    with sl.name_scope("dense"):
        with pytest.raises(sl.errors.InvalidArgumentError) as info:
            line = _line() + 1
            sl.matmul(a, b)
    e = info.value
    assert str(e) == ("node 'dense/MatMul' (MatMul) built at test_graph.py:{}: MatMul inner "
                      "dimensions differ: [2,3] x [4,5]".format(line))
    assert (e.node_name, e.op_type, e.error_code) == ("dense/MatMul", "MatMul",
                                                      sl.errors.INVALID_ARGUMENT)
    # The failed op left nothing behind that blocks building on.
    assert sl.matmul(a, sl.transpose(a)).shape == (2, 2)


def test_lossy_literal_and_bad_values_are_rejected(graph):
    i = sl.placeholder(sl.int32)
    with pytest.raises(sl.errors.InvalidArgumentError,
                       match=r"node 'Add' \(Add\) built at test_graph.py:\d+: input 'y' of Add: "
                             r"the literal float64\[\] \{1.5\} cannot be converted to int32"):
        sl.add(i, 1.5)
    with pytest.raises(sl.errors.InvalidArgumentError, match="cannot convert 'foo' to a tensor"):
        sl.add(i, "foo")
    with pytest.raises(sl.errors.InvalidArgumentError, match="has no sluice dtype"):
        sl.constant(np.zeros(2, np.uint8))


def test_mixing_graphs_is_an_error():
    g1, g2 = sl.Graph(), sl.Graph()
    with g1.as_default():
        a = sl.constant(1.0)
    with g2.as_default():
        b = sl.constant(2.0)
    with pytest.raises(ValueError, match="belongs to another graph"):
        sl.add(a, b)


def test_default_graph_stack():
    g = sl.Graph()
    outer = sl.get_default_graph()
    with g.as_default():
        assert sl.get_default_graph() is g
        with pytest.raises(AssertionError):
            sl.reset_default_graph()
    assert sl.get_default_graph() is outer
    sl.reset_default_graph()
    assert sl.get_default_graph() is not outer


def test_operations_can_be_added_after_a_session_ran(graph, sess):
    v = sl.Variable([1.0, 2.0], name="v")
    sess.run(v.initializer)
    sess.run(sl.assign_add(v, [1.0, 1.0]))  # Built after the first run.
    doubled = v * 2  # Likewise: the variable keeps its value in the extended graph.
    np.testing.assert_array_equal(sess.run(doubled), [4.0, 6.0])
    w = sl.Variable(sl.zeros([2]), name="w")  # A new variable needs its own initializer.
    with pytest.raises(sl.errors.FailedPreconditionError, match="'w'"):
        sess.run(w)
    sess.run(w.initializer)
    np.testing.assert_array_equal(sess.run(v + w), [2.0, 3.0])
    assert not graph.finalized


def test_no_operation_can_be_added_after_finalize(graph, sess):
    a = sl.constant(1.0)
    graph.finalize()
    assert sess.run(a) == 1.0
    assert graph.finalized
    with pytest.raises(sl.errors.FailedPreconditionError, match="the graph is finalized"):
        sl.add(a, a)


def test_dtypes():
    assert sl.as_dtype(np.float32) == sl.float32
    assert sl.as_dtype("int64") == sl.int64
    assert sl.as_dtype(float) == sl.float32
    assert sl.as_dtype(bool) == sl.bool
    assert sl.float64.as_numpy_dtype == np.float64
    assert sl.float32.size == 4 and sl.int64.is_integer and sl.float64.is_floating
    assert repr(sl.int32) == "sluice.int32"
    with pytest.raises(TypeError):
        sl.as_dtype(np.complex64)


def test_public_functions_have_docstrings():
    import types

    missing = []
    for module in (sl, sl.nn, sl.train, sl.errors):
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_") or isinstance(obj, (types.ModuleType, int, sl.DType)):
                continue
            if callable(obj) and not (obj.__doc__ or "").strip():
                missing.append("{}.{}".format(module.__name__, name))
    assert missing == []


def test_collections_and_conversion_functions_live_in_the_framework(graph):
    w = sl.Variable([1.0, 2.0], name="w")
    sl.Variable([3.0], trainable=False, name="steps")
    assert [v.name for v in graph.get_collection("variables")] == ["w:0", "steps:0"]
    assert [v.name for v in graph.get_collection("trainable_variables")] == ["w:0"]
    graph.add_to_collection("losses", w)
    assert graph.get_collection("losses") == [w]
    assert graph.get_collection("nothing") == []
    with pytest.raises(KeyError, match="kept by the graph itself"):
        graph.add_to_collection("variables", w)

    class Meters:  # A user type, registered after array_ops' fallback for any literal.
        def __init__(self, value):
            self.value = value

    sl.framework.register_tensor_conversion_function(
        Meters, lambda m, dtype=None, name=None: sl.constant([m.value * 1000.0], name=name))
    t = sl.convert_to_tensor(Meters(2.0), name="distance")
    assert t.op.type == "Const" and t.op.name == "distance"
    with sl.Session(graph=graph) as sess:
        np.testing.assert_array_equal(sess.run(t), [2000.0])
