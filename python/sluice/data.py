"""Input pipelines for data-parallel training (`sl.data`): sources, partitioning over workers,
shuffle, repeat, batch and prefetch, iterated to feed placeholders.

    ds = (sl.data.Dataset.from_tensor_slices((images, labels))
          .partition(num_workers=4, index=task, mode="shuffle_split", seed=1)
          .repeat(10)
          .batch(64)
          .prefetch(2))
    for x, y in ds:
        sess.run(train_op, {x_ph: x, y_ph: y})

Partitioning follows TRAINING.md section 1; which examples or columns a worker reads is computed
by the engine (ops/sampling.h, Philox-seeded), so every worker computes its own part:
  "shuffle_split"     every epoch a fresh permutation seeded by (seed, epoch), cut into
                      contiguous near-equal shards: across the workers each example is seen
                      exactly once per epoch (shards differ by at most one example; no padding)
  "with_replacement"  each worker draws `sample_size` examples (default n // num_workers)
                      uniformly with replacement, independently per worker and epoch
  "feature"           worker i keeps a contiguous block of columns of the feature component
                      (component 0 unless `feature_component` says otherwise), every example
Each `repeat` pass is a new epoch (a new permutation or draw). `batch(n, drop_remainder=False)`
ends with a smaller batch unless told to drop it. A Dataset is immutable: each method returns a
new one; iterating it again starts again from epoch 0.

The graph-side form, for loops that run on the workers without the client feeding batches:
`shard_batch_indices` is an op that yields this worker's next batch of row indices (and their
epoch) each time it runs; gather the rows of data that lives on the worker:

    with sl.device("/job:worker/task:1"):
        images = sl.Variable(all_images, trainable=False)   # loaded once
        idx, epoch = sl.data.shard_batch_indices(len(all_images), num_workers=4, index=1,
                                                 batch_size=64, seed=1)
        x = sl.gather(images, idx)
"""

import csv
import queue
import threading

import numpy as np

from sluice import framework
from sluice._core import core as _core

_MODES = ("shuffle_split", "with_replacement", "feature")


class Dataset:
    """A source of rows and the transformations applied to it (see the module docstring)."""

    def __init__(self, source, stages=()):
        self._source = source  # _Source: the components and their row count.
        self._stages = tuple(stages)

    # ---- sources -------------------------------------------------------------------------

    @staticmethod
    def from_tensor_slices(components):
        """Rows of numpy arrays of equal length: one array, or a tuple/list of them (each row
        of the dataset is then a tuple)."""
        return Dataset(_Source.of(components, "from_tensor_slices"))

    @staticmethod
    def from_npy(*paths):
        """One component per .npy file (memory-mapped), rows along dimension 0."""
        arrays = [np.load(p, mmap_mode="r") for p in paths]
        return Dataset(_Source.of(tuple(arrays) if len(arrays) > 1 else arrays[0],
                                  "from_npy({})".format(", ".join(paths))))

    @staticmethod
    def from_csv(path, header=None, label_column=None, dtype=np.float32, delimiter=","):
        """The numeric columns of a CSV file as a float matrix (one row per line). `header`:
        True, False, or None to detect a first line that is not numeric. With `label_column`
        (an index, or a name when there is a header) rows are (features, label) tuples. A cell
        that is not a number is a ValueError naming the file, row and column."""
        with open(path, newline="") as f:
            rows = [r for r in csv.reader(f, delimiter=delimiter) if r]
        names = None
        if rows and (header or (header is None and not _numeric_row(rows[0]))):
            names, rows = rows[0], rows[1:]
        first_line = 2 if names is not None else 1
        width = len(rows[0]) if rows else (len(names) if names else 0)
        values = np.empty((len(rows), width), dtype=dtype)
        for r, row in enumerate(rows):
            if len(row) != width:
                raise ValueError("{}: row {} has {} columns, expected {}".format(
                    path, r + first_line, len(row), width))
            for c, cell in enumerate(row):
                try:
                    values[r, c] = float(cell)
                except ValueError:
                    raise ValueError("{}: row {}, column {}{}: {!r} is not a number".format(
                        path, r + first_line, c + 1,
                        " ({})".format(names[c]) if names else "", cell)) from None
        if label_column is None:
            return Dataset(_Source.of(values, path))
        if isinstance(label_column, str):
            if names is None or label_column not in names:
                raise ValueError("{}: no column named {!r} (header: {})".format(
                    path, label_column, names))
            label_column = names.index(label_column)
        keep = [c for c in range(width) if c != label_column]
        return Dataset(_Source.of((values[:, keep], values[:, label_column]), path))

    # ---- transformations ---------------------------------------------------------------

    def partition(self, num_workers, index, mode="shuffle_split", seed=0, sample_size=None,
                  feature_component=0):
        """This worker's part of the data (see the module docstring for the modes)."""
        if mode not in _MODES:
            raise ValueError("partition mode must be one of {}, got {!r}".format(_MODES, mode))
        if mode == "feature":
            comp = self._source.components[feature_component]
            if comp.ndim != 2:
                raise ValueError("feature partitioning needs a matrix component; component {} "
                                 "has shape {}".format(feature_component, comp.shape))
            begin, end = _core._feature_range(comp.shape[1], num_workers, index)
            return Dataset(self._source.with_columns(feature_component, begin, end),
                           self._stages)
        n = len(self._source)
        _core._shuffle_split(0, num_workers, index, 0, 0)  # Checks the arguments now.
        if mode == "shuffle_split":
            def select(epoch):
                return _core._shuffle_split(n, num_workers, index, seed, epoch)
        else:
            count = n // num_workers if sample_size is None else int(sample_size)

            def select(epoch):
                return _core._bootstrap(n, num_workers, index, seed, epoch, count)
        return self._with(("select", select))

    def shuffle(self, buffer_size, seed=None):
        """Rows in a random order within a sliding buffer of `buffer_size` (TF's rule); each
        iteration draws a new order unless `seed` is given."""
        if buffer_size < 1:
            raise ValueError("shuffle buffer_size must be >= 1, got {}".format(buffer_size))
        return self._with(("shuffle", int(buffer_size), seed))

    def repeat(self, count=None):
        """The data `count` times (None: forever), each pass a new epoch."""
        return self._with(("repeat", count))

    def batch(self, batch_size, drop_remainder=False):
        """Rows stacked `batch_size` at a time; the last batch is smaller unless dropped."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got {}".format(batch_size))
        return self._with(("batch", int(batch_size), bool(drop_remainder)))

    def prefetch(self, buffer_size):
        """Prepares up to `buffer_size` elements ahead on a background thread."""
        return self._with(("prefetch", max(1, int(buffer_size))))

    def _with(self, stage):
        return Dataset(self._source, self._stages + (stage,))

    # ---- iteration ---------------------------------------------------------------------

    def __len__(self):
        return len(self._source)

    def __iter__(self):
        items = self._iterate(len(self._stages), 0)
        if any(s[0] == "batch" for s in self._stages):
            return items
        return (self._source.row(i) for i in items)  # Unbatched: one row at a time.

    def _iterate(self, depth, epoch):
        """The elements after the first `depth` stages, for `epoch`."""
        if depth == 0:
            return iter(range(len(self._source)))
        stage = self._stages[depth - 1]
        kind = stage[0]
        if kind == "select":
            # Replaces the upstream rows of this epoch by the worker's selection.
            upstream = self._iterate(depth - 1, epoch)
            rows = list(upstream)
            chosen = stage[1](epoch)
            return iter(np.asarray(rows)[chosen].tolist() if rows else [])
        if kind == "repeat":
            count = stage[1]

            def repeated():
                e = 0
                while count is None or e < count:
                    yield from self._iterate(depth - 1, epoch * (count or 1) + e)
                    e += 1
            return repeated()
        upstream = self._iterate(depth - 1, epoch)
        if kind == "shuffle":
            return _shuffled(upstream, stage[1], stage[2], epoch)
        if kind == "batch":
            return _batched(upstream, stage[1], stage[2], self._source)
        if kind == "prefetch":
            return _prefetched(upstream, stage[1])
        raise AssertionError(kind)

    def __repr__(self):
        return "<sluice.data.Dataset of {} rows, stages {}>".format(
            len(self._source), [s[0] for s in self._stages])


def _numeric_row(row):
    try:
        [float(c) for c in row]
        return True
    except ValueError:
        return False


def _shuffled(items, buffer_size, seed, epoch):
    rng = np.random.default_rng(None if seed is None else (seed, epoch))
    buf = []
    for item in items:
        buf.append(item)
        if len(buf) >= buffer_size:
            yield buf.pop(int(rng.integers(len(buf))))
    while buf:
        yield buf.pop(int(rng.integers(len(buf))))


def _batched(items, size, drop_remainder, source):
    group = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield source.take(group)
            group = []
    if group and not drop_remainder:
        yield source.take(group)


_END = object()


def _prefetched(items, size):
    q = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # noqa: BLE001  (re-raised in the consumer)
            q.put(e)

    thread = threading.Thread(target=produce, daemon=True, name="sluice-prefetch")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class _Source:
    """Components (numpy arrays) of equal length; `columns` narrows one of them."""

    def __init__(self, components, single, columns=None):
        self.components = components
        self.single = single
        self.columns = columns  # (component, begin, end) or None

    @staticmethod
    def of(components, what):
        single = not isinstance(components, (tuple, list))
        comps = [components] if single else list(components)
        comps = [c if isinstance(c, np.ndarray) else np.asarray(c) for c in comps]
        if not comps:
            raise ValueError("{}: no components".format(what))
        lengths = [len(c) if c.ndim else -1 for c in comps]
        if min(lengths) < 0 or len(set(lengths)) != 1:
            raise ValueError("{}: components must have equal lengths along dimension 0, got "
                             "shapes {}".format(what, [c.shape for c in comps]))
        return _Source(comps, single)

    def with_columns(self, component, begin, end):
        return _Source(self.components, self.single, (component, begin, end))

    def __len__(self):
        return len(self.components[0])

    def _part(self, k, rows):
        values = self.components[k][rows]
        if self.columns is not None and self.columns[0] == k:
            values = values[..., self.columns[1]:self.columns[2]]
        return np.ascontiguousarray(values)

    def take(self, rows):
        parts = tuple(self._part(k, np.asarray(rows, dtype=np.int64))
                      for k in range(len(self.components)))
        return parts[0] if self.single else parts

    def row(self, i):
        parts = tuple(self._part(k, i) for k in range(len(self.components)))
        return parts[0] if self.single else parts


def shard_batch_indices(num_examples, num_workers, index, batch_size, mode="shuffle_split",
                        seed=0, sample_size=None, drop_remainder=False, name=None):
    """A graph op (ops/data_ops.h): each run yields (indices, epoch), the int64 row indices of
    worker `index`'s next batch and the epoch they belong to. "shuffle_split" walks this
    worker's shard of each epoch's permutation (the same rows `Dataset.partition` gives), epoch
    after epoch; "with_replacement" draws `sample_size` rows per epoch (default num_examples //
    num_workers). Batches never span epochs; an epoch's last batch is smaller unless
    `drop_remainder`. Place it on the worker with `sl.device`; a new session starts at epoch
    0."""
    op = framework._op("ShardBatchIndices", [], {
        "num_examples": int(num_examples), "workers": int(num_workers), "index": int(index),
        "batch_size": int(batch_size), "mode": str(mode),
        "sample_size": int(sample_size or 0), "seed": int(seed),
        "drop_remainder": bool(drop_remainder)}, name=name or "shard_batch_indices")
    return op.outputs[0], op.outputs[1]
