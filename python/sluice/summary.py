"""TF1 summaries: `summary.scalar/histogram/merge/merge_all`, `summary.FileWriter` writing
TensorBoard event files, `summary_iterator` reading them, and `plot` (also the `sluice_plot`
command) rendering a run directory's scalars to PNG for users without TensorBoard.

    loss_summary = sl.summary.scalar("loss", loss)
    merged = sl.summary.merge_all()
    writer = sl.summary.FileWriter("/tmp/run1")
    for step in range(100):
        summary, _ = sess.run([merged, train_op], feed_dict=...)   # bytes: a Summary proto
        writer.add_summary(summary, step)
    writer.close()

A summary is fetched like a tensor: the session fetches the tensors it summarises and returns
the serialized `Summary` protocol buffer. Event files use TensorFlow's published format: TFRecord
framing (little-endian uint64 length, masked CRC-32C of the length, the data, masked CRC-32C of
the data) around `Event` messages with TensorFlow's field numbers, the first one carrying
file_version "brain.Event:2". The messages are built with Debian's python3-protobuf from a
descriptor declared here, the checksums with python3-crcmod.
"""

import glob
import os
import socket
import struct
import threading
import time

import numpy as np

from sluice import framework

SUMMARIES = "summaries"


def _messages():
    """Event, Summary and HistogramProto classes from a descriptor with TensorFlow's field
    numbers (tensorflow/core/util/event.proto, framework/summary.proto), built at first use."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="sluice_event.proto", package="sluice_tf",
                                           syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto

    def message(name, fields):
        m = f.message_type.add(name=name)
        for number, field_name, kind, label, type_name in fields:
            fd = m.field.add(name=field_name, number=number, type=kind,
                             label=label or T.LABEL_OPTIONAL)
            if type_name:
                fd.type_name = type_name
            if label == T.LABEL_REPEATED and kind in (T.TYPE_DOUBLE,):
                fd.options.packed = True
        return m

    message("HistogramProto", [
        (1, "min", T.TYPE_DOUBLE, None, None), (2, "max", T.TYPE_DOUBLE, None, None),
        (3, "num", T.TYPE_DOUBLE, None, None), (4, "sum", T.TYPE_DOUBLE, None, None),
        (5, "sum_squares", T.TYPE_DOUBLE, None, None),
        (6, "bucket_limit", T.TYPE_DOUBLE, T.LABEL_REPEATED, None),
        (7, "bucket", T.TYPE_DOUBLE, T.LABEL_REPEATED, None)])
    summary = message("Summary", [
        (1, "value", T.TYPE_MESSAGE, T.LABEL_REPEATED, ".sluice_tf.Summary.Value")])
    value = summary.nested_type.add(name="Value")
    value.oneof_decl.add(name="value")
    for number, name, kind, type_name, in_oneof in [
            (7, "node_name", T.TYPE_STRING, None, False), (1, "tag", T.TYPE_STRING, None, False),
            (2, "simple_value", T.TYPE_FLOAT, None, True),
            (5, "histo", T.TYPE_MESSAGE, ".sluice_tf.HistogramProto", True)]:
        fd = value.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
        if type_name:
            fd.type_name = type_name
        if in_oneof:
            fd.oneof_index = 0
    message("Event", [
        (1, "wall_time", T.TYPE_DOUBLE, None, None), (2, "step", T.TYPE_INT64, None, None),
        (3, "file_version", T.TYPE_STRING, None, None),
        (5, "summary", T.TYPE_MESSAGE, None, ".sluice_tf.Summary")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = (message_factory.GetMessageClass if hasattr(message_factory, "GetMessageClass")
           else message_factory.MessageFactory(pool).GetPrototype)
    return {name: get(pool.FindMessageTypeByName("sluice_tf." + name))
            for name in ("Event", "Summary", "HistogramProto")}


_classes = None
_classes_lock = threading.Lock()


def _proto(name):
    global _classes
    with _classes_lock:
        if _classes is None:
            _classes = _messages()
    return _classes[name]


# ---------------------------------------------------------------------------------------------
# Summary ops: fetchable objects that summarise tensors.

class _SummaryOp:
    """One summary: fetching it runs `tensor` and returns a serialized Summary."""

    def __init__(self, kind, tag, tensor):
        self.kind = kind
        self.tag = tag
        self.tensor = framework.convert_to_tensor(tensor)
        self.name = tag

    def _add_to(self, summary, value):
        v = summary.value.add(tag=self.tag)
        if self.kind == "scalar":
            v.simple_value = float(np.asarray(value).reshape(()))
        else:
            v.histo.CopyFrom(_histogram(np.asarray(value, dtype=np.float64)))

    def _fetch_parts(self):
        return [self.tensor], lambda values: _serialize([self], values)


class _MergedSummary:
    """Several summaries fetched as one serialized Summary."""

    def __init__(self, ops):
        self.ops = list(ops)

    def _fetch_parts(self):
        return [op.tensor for op in self.ops], lambda values: _serialize(self.ops, values)


def _serialize(ops, values):
    """The Summary of `ops` given their tensors' fetched values, serialized."""
    s = _proto("Summary")()
    for op, value in zip(ops, values):
        op._add_to(s, value)
    return s.SerializeToString()


def _register(op, collections):
    graph = op.tensor.graph
    for key in (collections if collections is not None else [SUMMARIES]):
        graph.add_to_collection(key, op)
    return op


def _tag(name):
    return framework.get_default_graph().unique_name(name)


def scalar(name, tensor, collections=None, family=None):
    """A summary of the scalar `tensor`, tagged with `name` under the current name scope."""
    t = framework.convert_to_tensor(tensor)
    if t.shape is not None and len(t.shape) != 0 and t.get_shape().num_elements() != 1:
        raise ValueError("summary.scalar({!r}) needs a scalar, got shape {}".format(
            name, t.get_shape()))
    return _register(_SummaryOp("scalar", _tag(family + "/" + name if family else name), t),
                     collections)


def histogram(name, values, collections=None, family=None):
    """A summary of the distribution of `values` (any shape), TensorFlow's bucketing."""
    return _register(_SummaryOp("histogram", _tag(family + "/" + name if family else name),
                                values), collections)


def merge(inputs, collections=None, name=None):
    """One summary of all of `inputs` (summaries or merged summaries)."""
    ops = []
    for s in inputs:
        ops += s.ops if isinstance(s, _MergedSummary) else [s]
    merged = _MergedSummary(ops)
    for key in collections or ():
        framework.get_default_graph().add_to_collection(key, merged)
    return merged


def merge_all(key=SUMMARIES, scope=None, name=None):
    """The merge of every summary in collection `key` of the default graph, or None if there is
    none (as in TF1)."""
    ops = [s for s in framework.get_default_graph().get_collection(key)
           if scope is None or s.tag.startswith(scope)]
    return merge(ops) if ops else None


def _default_bucket_limits():
    """TensorFlow's histogram buckets: +-1e-12 growing by 10% up to 1e20, and 0."""
    pos = []
    v = 1e-12
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    return np.array([-x for x in reversed(pos)] + [0.0] + pos + [np.finfo(np.float64).max])


_LIMITS = None


def _histogram(values):
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = _default_bucket_limits()
    values = values.ravel()
    h = _proto("HistogramProto")()
    if values.size == 0:
        return h
    h.min, h.max = float(values.min()), float(values.max())
    h.num, h.sum = float(values.size), float(values.sum())
    h.sum_squares = float(np.dot(values, values))
    # Bucket i holds values in [limit[i-1], limit[i]).
    counts = np.bincount(np.searchsorted(_LIMITS, values, side="right"),
                         minlength=len(_LIMITS))[:len(_LIMITS)]
    for i in np.nonzero(counts)[0]:
        h.bucket_limit.append(float(_LIMITS[i]))
        h.bucket.append(float(counts[i]))
    return h


# ---------------------------------------------------------------------------------------------
# Event files

def _masked_crc(data):
    import crcmod.predefined

    global _crc32c
    if _crc32c is None:
        _crc32c = crcmod.predefined.mkCrcFun("crc-32c")
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_crc32c = None


def _record(data):
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", _masked_crc(header)) + data +
            struct.pack("<I", _masked_crc(data)))


class FileWriter:
    """Writes Event records to a new events file in `logdir` (created if needed):
    "events.out.tfevents.<seconds>.<hostname>", as TensorBoard expects. Records are buffered
    and written every `flush_secs` and on flush()/close(). `graph` is accepted and not written
    (Sluice's graphs are not TensorFlow GraphDefs)."""

    def __init__(self, logdir, graph=None, max_queue=10, flush_secs=120, filename_suffix=""):
        del graph
        os.makedirs(logdir, exist_ok=True)
        self.logdir = logdir
        self._path = os.path.join(logdir, "events.out.tfevents.{:010d}.{}{}".format(
            int(time.time()), socket.gethostname(), filename_suffix))
        self._file = open(self._path, "ab")
        self._max_queue = max_queue
        self._flush_secs = flush_secs
        self._pending = []
        self._last_flush = time.time()
        self._lock = threading.Lock()
        self.add_event(_proto("Event")(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()

    def get_logdir(self):
        return self.logdir

    def add_event(self, event):
        with self._lock:
            if self._file is None:
                raise RuntimeError("FileWriter is closed: " + self._path)
            self._pending.append(_record(event.SerializeToString()))
            due = (len(self._pending) >= self._max_queue or
                   time.time() - self._last_flush >= self._flush_secs)
        if due:
            self.flush()

    def add_summary(self, summary, global_step=None):
        """Appends an Event holding `summary` (the bytes a summary fetch returned, or a Summary
        message) at `global_step`."""
        event = _proto("Event")(wall_time=time.time())
        if global_step is not None:
            event.step = int(global_step)
        if isinstance(summary, bytes):
            event.summary.ParseFromString(summary)
        else:
            event.summary.CopyFrom(summary)
        self.add_event(event)

    def add_graph(self, graph, global_step=None):
        """Accepted for TF1 compatibility; graphs are not written."""

    def flush(self):
        with self._lock:
            if self._file is None:
                return
            self._file.write(b"".join(self._pending))
            self._file.flush()
            self._pending = []
            self._last_flush = time.time()

    def close(self):
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def summary_iterator(path):
    """The Event messages of an events file, in order. A record cut short (a writer still
    writing, or a crash) ends the iteration; a record whose checksum does not match is a
    ValueError naming the file and offset."""
    event_cls = _proto("Event")
    with open(path, "rb") as f:
        data = f.read()
    offset = 0
    while offset + 12 <= len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        if crc != _masked_crc(header):
            raise ValueError("{}: corrupt record length at offset {}".format(path, offset))
        end = offset + 12 + length + 4
        if end > len(data):
            return  # Cut mid-record.
        body = data[offset + 12:offset + 12 + length]
        (body_crc,) = struct.unpack("<I", data[end - 4:end])
        if body_crc != _masked_crc(body):
            raise ValueError("{}: corrupt record at offset {}".format(path, offset))
        event = event_cls()
        event.ParseFromString(body)
        yield event
        offset = end


def read_scalars(logdir):
    """{tag: [(step, value), ...]} from every events file in `logdir`, in file order."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in summary_iterator(path):
            for v in event.summary.value:
                if v.WhichOneof("value") == "simple_value":
                    scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


def plot(logdir, output=None):
    """Renders every scalar of the run in `logdir` against its step into one PNG (one panel
    per tag) with matplotlib; returns the PNG's path (default <logdir>/scalars.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scalars = read_scalars(logdir)
    if not scalars:
        raise ValueError("no scalar summaries in {}".format(logdir))
    output = output or os.path.join(logdir, "scalars.png")
    tags = sorted(scalars)
    fig, axes = plt.subplots(len(tags), 1, figsize=(7, 2.6 * len(tags)), squeeze=False)
    for ax, tag in zip(axes[:, 0], tags):
        steps, values = zip(*scalars[tag])
        ax.plot(steps, values)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    plt.close(fig)
    return output


def main(argv=None):
    """sluice_plot LOGDIR [OUTPUT.png]: renders a run directory's scalars to a PNG."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2:
        print("usage: sluice_plot LOGDIR [OUTPUT.png]", file=sys.stderr)
        return 2
    try:
        print(plot(*argv))
    except ValueError as e:
        print("sluice_plot: {}".format(e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
