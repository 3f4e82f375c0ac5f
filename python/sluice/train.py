"""Optimizers (`sl.train.*Optimizer`) that build a training step from a loss.

    train_op = sl.train.GradientDescentOptimizer(0.1).minimize(loss)
    init = sl.global_variables_initializer()      # after minimize: initialises slots too
    with sl.Session() as sess:
        sess.run(init)
        for _ in range(100):
            sess.run(train_op, feed_dict={...})

The updates are the engine's fused ops (ops/optimizers.h, ops/training_ops.h). Slot variables
(momentum accumulators, Adam moments) are named "<variable>/<optimizer name>[...]" and are
found by global_variables(); they are not trainable.

`Saver` saves and restores variable values to a checkpoint file (runtime/session/checkpoint.h).
"""

from sluice import framework
from sluice import variables
from sluice._core import core as _core


class Optimizer:
    """Base class: compute_gradients, apply_gradients and minimize.

    One optimizer object builds into one graph (its slots and state live there).
    """

    def __init__(self, core_optimizer):
        self._core = core_optimizer
        self._graph = None

    @property
    def name(self):
        """The optimizer's name: the scope of its update nodes and slot names."""
        return self._core.name

    def _graph_for(self, loss):
        g = framework.convert_to_tensor(loss).graph
        if self._graph is None:
            self._graph = g
        elif self._graph is not g:
            raise ValueError("optimizer {!r} already builds into another graph".format(self.name))
        return g

    @staticmethod
    def _var_list(graph, var_list):
        if var_list is None:
            var_list = variables._collection(graph, variables.TRAINABLE_VARIABLES)
        if not var_list:
            raise ValueError("no variables to optimize")
        return list(var_list)

    def compute_gradients(self, loss, var_list=None):
        """[(gradient, variable)] for `var_list` (default: trainable_variables()); the gradient
        is None for a variable the loss does not depend on."""
        g = self._graph_for(loss)
        var_list = self._var_list(g, var_list)
        grads = self._core._compute_gradients(g, loss, var_list)
        return list(zip(grads, var_list))

    def apply_gradients(self, grads_and_vars, name=None):
        """An Operation applying each (gradient, variable) update (pairs with a None gradient
        are skipped)."""
        grads_and_vars = list(grads_and_vars)
        if not grads_and_vars:
            raise ValueError("apply_gradients needs at least one (gradient, variable) pair")
        g = self._graph_for(grads_and_vars[0][1])
        return self._core._apply_gradients(g, grads_and_vars, name or self.name)

    def minimize(self, loss, var_list=None, name=None):
        """An Operation that runs one training step: computes the gradients of `loss` and
        updates every variable of `var_list` (default: trainable_variables()).

        Raises:
          sluice.errors.InvalidArgumentError: e.g. the loss depends on none of the variables.
        """
        g = self._graph_for(loss)
        return self._core._minimize(g, loss, self._var_list(g, var_list), name or self.name)

    def variables(self):
        """The Variables this optimizer created (slots, Adam's beta powers)."""
        if self._graph is None:
            return []
        return [variables.Variable._from_tensor(t)
                for t in self._core._created_variables(self._graph)]


class GradientDescentOptimizer(Optimizer):
    """var -= learning_rate * grad."""

    def __init__(self, learning_rate, name="GradientDescent"):
        super().__init__(_core._GradientDescentOptimizer(float(learning_rate), name))


class MomentumOptimizer(Optimizer):
    """accum = momentum * accum + grad; var -= learning_rate * accum (with use_nesterov:
    var -= learning_rate * (grad + momentum * accum))."""

    def __init__(self, learning_rate, momentum, use_nesterov=False, name="Momentum"):
        super().__init__(_core._MomentumOptimizer(
            float(learning_rate), float(momentum), bool(use_nesterov), name))


class AdagradOptimizer(Optimizer):
    """accum += grad^2; var -= learning_rate * grad / sqrt(accum)."""

    def __init__(self, learning_rate, initial_accumulator_value=0.1, name="Adagrad"):
        super().__init__(_core._AdagradOptimizer(
            float(learning_rate), float(initial_accumulator_value), name))


class AdamOptimizer(Optimizer):
    """Adam (Kingma & Ba): m += (1 - beta1)(grad - m); v += (1 - beta2)(grad^2 - v);
    var -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + epsilon)."""

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, name="Adam"):
        super().__init__(_core._AdamOptimizer(
            float(learning_rate), float(beta1), float(beta2), float(epsilon), name))


class Saver:
    """Saves and restores variables to and from checkpoint files.

    Values are stored by variable name (the Variable node's name), so a session of another
    graph built the same way can restore them. A save is atomic (a crash leaves the old file or
    the new one); a restore checks the whole file and every variable first and changes nothing
    on error (DataLossError for a damaged file, NotFoundError for a missing variable,
    InvalidArgumentError for a dtype or shape mismatch).

    Args:
      var_list: the Variables to save and restore (default: every variable of the session's
        graph, optimizer slots included; restoring then needs exactly the checkpoint's set).

        saver = sl.train.Saver()
        saver.save(sess, "/tmp/model.ckpt")
        saver.restore(other_sess, "/tmp/model.ckpt")     # instead of running the initializer
    """

    def __init__(self, var_list=None):
        if var_list is None:
            self._names = []
        elif isinstance(var_list, (list, tuple)) and var_list:
            self._names = [_variable_name(v) for v in var_list]
        else:
            raise TypeError("Saver(var_list=) takes a non-empty list of Variables")

    def save(self, sess, save_path, global_step=None):
        """Writes the variables' current values to `save_path` ("-<global_step>" appended when
        given); returns the path written."""
        if global_step is not None:
            save_path = "{}-{}".format(save_path, int(global_step))
        sess._session.save(str(save_path), self._names)
        return save_path

    def restore(self, sess, save_path):
        """Sets the variables from the checkpoint `save_path` (they need no initializer run)."""
        sess._session.restore(str(save_path), self._names)


def _variable_name(var):
    """The name a variable has in the session (its "shared_name", else its node name)."""
    tensor = framework._as_tensor_or_none(var)
    if tensor is None or tensor.op.type != "Variable":
        raise TypeError("Saver var_list entries are Variables, got {!r}".format(var))
    shared = tensor.op.get_attr("shared_name")
    return shared or tensor.op.name
