"""Sessions run graphs: `sess.run(fetches, feed_dict)` returns numpy values.

    with sl.Session(graph=g) as sess:                   # runs in this process
        sess.run(init)
        loss_value, _ = sess.run([loss, train_op], feed_dict={x: batch_x, y: batch_y})
    with sl.LocalCluster(workers=2) as cluster:
        with sl.Session(cluster.target, graph=g) as sess:   # runs on the cluster
            sess.run(init)

Fetches may be a Tensor, Variable, Operation, tensor or operation name, or nested lists,
tuples and dicts of them; the result has the same structure, with a numpy value per tensor and
None per Operation. Feeds map Tensors (or their names) to values: numpy arrays must have the
tensor's dtype; Python numbers and lists are converted to it. Fetched arrays never alias
memory the engine may still change (a variable's buffer is copied; a fresh result is handed
over without a copy). The GIL is released while the engine runs, so other Python threads
run meanwhile, and one Session may run from several threads at once.
"""

import sys
import threading

import numpy as np

from sluice import distributed
from sluice import framework
from sluice._core import core as _core


class RunOptions:
    """Options of one Session.run: `trace_level` FULL_TRACE records what every node did
    (RunMetadata.step_stats); NO_TRACE (the default) records nothing and costs nothing."""

    NO_TRACE = 0
    SOFTWARE_TRACE = 1
    HARDWARE_TRACE = 2
    FULL_TRACE = 3

    def __init__(self, trace_level=NO_TRACE):
        self.trace_level = int(trace_level)


class RunMetadata:
    """What a traced run recorded: `step_stats`, a dict with the client's and master's times
    ("client_sent_ns", "client_done_ns", "master_received_ns", "master_replied_ns") and per
    task ("tasks") its clock offset to the master ("clock_offset_ns", error bound
    "clock_error_ns"), the RunGraph call's times and its nodes (device, node, op, start_ns,
    end_ns, thread, transfer, bytes), each time on the clock of the process that took it (ns
    since the Unix epoch). In process, one task "localhost"."""

    def __init__(self):
        self.step_stats = None


class ConfigProto:
    """Session options (TF1's names).

    Attributes:
      inter_op_parallelism_threads: threads running independent ops (0: one per core).
      intra_op_parallelism_threads: threads inside one op, e.g. a matmul (0: one per core).
      allow_soft_placement: on a cluster, a device request no task can satisfy ("/gpu:0", a
        task that is not in the spec) is relaxed until one does, instead of failing. In process
        every request runs on the local CPU anyway.
      log_device_placement: print each node's device when the session places the graph (in
        process on this process's stderr; on a cluster in the stderr of the task serving the
        session).
      device_filters: on a cluster, the session uses only the devices matching one of these
        partial names (e.g. ["/job:ps", "/job:worker/task:1"]).
      step_timeout_seconds: remote sessions: a step still running after this fails with
        DeadlineExceededError.
    """

    def __init__(self, inter_op_parallelism_threads=0, intra_op_parallelism_threads=0,
                 allow_soft_placement=False, log_device_placement=False, device_filters=None,
                 step_timeout_seconds=60.0, gpu_options=None, **unused):
        del gpu_options, unused  # TF1 knobs with no meaning here.
        self.inter_op_parallelism_threads = inter_op_parallelism_threads
        self.intra_op_parallelism_threads = intra_op_parallelism_threads
        self.allow_soft_placement = bool(allow_soft_placement)
        self.log_device_placement = bool(log_device_placement)
        self.device_filters = [str(f) for f in (device_filters or [])]
        self.step_timeout_seconds = step_timeout_seconds


class _SessionState(threading.local):
    def __init__(self):
        super().__init__()
        self.stack = []


_state = _SessionState()


def get_default_session():
    """The innermost session entered with `with sess:` or `sess.as_default()` in this thread,
    or None."""
    return _state.stack[-1] if _state.stack else None


class Session:
    """Runs the operations of one graph, keeping variable values between runs.

    Args:
      target: "" for an in-process session, or "grpc://host:port", the master of a cluster
        (`LocalCluster.target`, `Server.target`): the master places the graph's nodes on the
        workers (device requests such as "/job:worker/task:1" are honoured), and each run is one
        step on the cluster.
      graph: the Graph to run (default: the default graph). It is finalised on the first run;
        operations may be added until then.
      config: optional ConfigProto (thread counts, in-process; remote step timeout).
    """

    def __init__(self, target="", graph=None, config=None):
        self._graph = graph if graph is not None else framework.get_default_graph()
        config = config or ConfigProto()
        if target:
            distributed._token_from_environment()
            self._session = _core.RemoteSession(
                self._graph, distributed._master_address(target),
                step_timeout_s=float(config.step_timeout_seconds),
                allow_soft_placement=config.allow_soft_placement,
                log_device_placement=config.log_device_placement,
                device_filters=config.device_filters)
        else:
            self._session = _core.Session(
                self._graph,
                inter_op_threads=int(config.inter_op_parallelism_threads),
                intra_op_threads=int(config.intra_op_parallelism_threads))
            if config.log_device_placement:
                device = self.list_devices()[0]
                for op in self._graph.get_operations():
                    print("{}: ({}): {}".format(op.name, op.type, device), file=sys.stderr)
        self.target = target
        self._default_contexts = []

    @property
    def graph(self):
        """The Graph this session runs."""
        return self._graph

    def list_devices(self):
        """The names of the devices this session runs on."""
        if isinstance(self._session, _core.RemoteSession):
            return self._session.list_devices()
        return ["/job:localhost/task:0/device:cpu:0"]

    def run(self, fetches, feed_dict=None, options=None, run_metadata=None):
        """Runs one step and returns the values of `fetches`.

        Args:
          fetches: a Tensor, Variable, Operation, name ("x:0" for a tensor, "train" for an
            operation), or nested list / tuple / dict of these.
          feed_dict: {Tensor or name: value} replacing those tensors' values for this run. As
            in TensorFlow, a value (numpy array, list, scalar) of another type is converted to
            the tensor's dtype (`np.asarray(value, dtype=tensor.dtype.as_numpy_dtype)`: uint8
            images to float32, float64 labels to int64, ...).
          options: a RunOptions; with trace_level=RunOptions.FULL_TRACE every node of the step
            on every task records when it ran, into `run_metadata.step_stats` (see
            sl.debug.chrome_trace and sl.debug.step_summary).
          run_metadata: a RunMetadata receiving the trace.

        Returns:
          `fetches` with each tensor replaced by its numpy value (a numpy scalar for rank 0)
          and each Operation by None.

        Raises:
          TypeError, ValueError: a fed value that cannot be converted to its tensor's dtype
          (a string for a number; an integer type's range exceeded; a ragged list).
          sluice.errors.OpError subclasses, e.g. InvalidArgumentError for a feed of the wrong
          shape, FailedPreconditionError for reading an uninitialised variable. The
          message names the failing node and op.
          RuntimeError: the session is closed.
        """
        feeds = []
        for key, value in (feed_dict or {}).items():
            t = key if isinstance(key, framework.Tensor) else self._as_feed_tensor(key)
            feeds.append((t, _convert_feed(t, value)))
        traced = options is not None and options.trace_level >= RunOptions.FULL_TRACE
        if traced and run_metadata is None:
            raise ValueError("a traced run needs a RunMetadata to record into")
        if isinstance(fetches, framework.Tensor) and not traced:  # The common case.
            return self._session.run(feeds, [fetches], [])[0]
        tensors, targets = [], []
        rebuild = self._flatten(fetches, tensors, targets, {})
        if not traced:
            return rebuild(self._session.run(feeds, tensors, targets))
        values, run_metadata.step_stats = self._session.run_traced(feeds, tensors, targets)
        return rebuild(values)

    def _as_feed_tensor(self, key):
        if isinstance(key, str):
            return self._graph.get_tensor_by_name(key)
        t = framework._as_tensor_or_none(key)
        if t is None:
            raise TypeError("feed_dict keys are Tensors or tensor names, got {!r}".format(key))
        return t

    def _flatten(self, fetch, tensors, targets, index):
        """Collects the tensors and targets of `fetch`; returns values -> result structure."""
        if isinstance(fetch, framework.Tensor):
            t = fetch
        elif isinstance(fetch, framework.Operation):
            targets.append(fetch)
            return lambda values: None
        elif isinstance(fetch, dict):
            parts = {k: self._flatten(v, tensors, targets, index) for k, v in fetch.items()}
            return lambda values: type(fetch)((k, p(values)) for k, p in parts.items())
        elif isinstance(fetch, (list, tuple)):
            parts = [self._flatten(f, tensors, targets, index) for f in fetch]
            if hasattr(fetch, "_fields"):  # A namedtuple.
                return lambda values: type(fetch)(*[p(values) for p in parts])
            return lambda values: type(fetch)(p(values) for p in parts)
        elif hasattr(fetch, "_fetch_parts"):  # A summary: its tensors, then its bytes.
            parts, build = fetch._fetch_parts()
            rebuild = self._flatten(list(parts), tensors, targets, index)
            return lambda values: build(rebuild(values))
        elif isinstance(fetch, str):
            if ":" not in fetch:
                return self._flatten(self._graph.get_operation_by_name(fetch), tensors, targets,
                                     index)
            t = self._graph.get_tensor_by_name(fetch)
        else:
            t = framework._as_tensor_or_none(fetch)
            if t is None:
                raise TypeError("cannot fetch {!r}: fetches are Tensors, Variables, Operations, "
                                "names, or lists, tuples and dicts of them".format(fetch))
        i = index.get(t)
        if i is None:
            i = index[t] = len(tensors)
            tensors.append(t)
        return lambda values: values[i]

    def close(self):
        """Frees the engine's session (variable values included). Later runs raise."""
        self._session.close()

    def as_default(self):
        """A context manager making this the default session (for Tensor.eval, Operation.run)."""
        return _DefaultSession(self)

    def __enter__(self):
        ctx = _DefaultSession(self)
        ctx.__enter__()
        self._default_contexts.append(ctx)
        return self

    def __exit__(self, exc_type, exc, tb):
        self._default_contexts.pop().__exit__(exc_type, exc, tb)
        self.close()
        return False


class InteractiveSession(Session):
    """A Session that makes itself the default session of this thread when made, for shells
    and notebooks (`t.eval()` and `op.run()` without a `with` block), until it is closed.
    TensorFlow 1's name."""

    def __init__(self, target="", graph=None, config=None):
        super().__init__(target, graph, config)
        _state.stack.append(self)
        self._interactive_default = True

    def close(self):
        if getattr(self, "_interactive_default", False):
            self._interactive_default = False
            if self in _state.stack:  # Made in this thread.
                _state.stack.remove(self)
        super().close()


class _DefaultSession:
    def __init__(self, session):
        self._session = session

    def __enter__(self):
        _state.stack.append(self._session)
        return self._session

    def __exit__(self, exc_type, exc, tb):
        _state.stack.pop()
        return False


def _session_or_default(session):
    session = session or get_default_session()
    if session is None:
        raise ValueError("no session given and no default session: pass session= or run "
                         "inside `with sl.Session() as sess:`")
    return session


def _convert_feed(tensor, value):
    """`value` as an array of `tensor`'s dtype, converted as TensorFlow does; refuses what
    cannot be converted, naming the tensor."""
    dtype = np.dtype(tensor.dtype.as_numpy_dtype)
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        return value
    what = "feed for '{}' ({})".format(tensor.name, tensor.dtype.name)
    try:
        array = np.asarray(value)
    except ValueError as e:  # A ragged nested list.
        raise ValueError("{}: cannot make an array of the value: {}".format(what, e)) from None
    if array.dtype == dtype:
        return array
    if array.dtype.kind in "OSUV":
        raise TypeError("{}: cannot convert {!r} (numpy dtype {}) to {}".format(
            what, array.flat[0] if array.size else value, array.dtype, tensor.dtype.name))
    if dtype.kind in "iu" and array.size and array.dtype.kind in "iuf":
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError("{}: a non-finite value cannot be converted to {}".format(
                what, tensor.dtype.name))
        info = np.iinfo(dtype)
        low, high = array.min(), array.max()
        if low < info.min or high > info.max:
            raise ValueError("{}: values from {} to {} do not fit in {} ([{}, {}])".format(
                what, low, high, tensor.dtype.name, info.min, info.max))
    return np.asarray(array, dtype=dtype)


def _tensor_eval(self, feed_dict=None, session=None):
    """The value of this tensor, computed by `session` (default: the default session)."""
    return _session_or_default(session).run(self, feed_dict=feed_dict)


def _operation_run(self, feed_dict=None, session=None):
    """Runs this operation with `session` (default: the default session)."""
    _session_or_default(session).run(self, feed_dict=feed_dict)


framework.Tensor.eval = _tensor_eval
framework.Operation.run = _operation_run
