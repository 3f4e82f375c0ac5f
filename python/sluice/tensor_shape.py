"""Static shapes as TensorFlow 1 programs see them: `TensorShape` and `Dimension`.

`tensor.shape` is a TensorShape (a tuple of sizes, None where a size is unknown) or None when
even the rank is unknown; `tensor.get_shape()` is always a TensorShape (TensorShape(None) for an
unknown rank), so TF1 code such as ``x.get_shape().as_list()`` and ``x.get_shape()[1].value``
works. A TensorShape equals the tuple or list of its sizes: ``x.shape == (None, 784)``.
"""

import numpy as np


class Dimension(int):
    """A known size: an int that also has TF1's `.value`."""

    @property
    def value(self):
        return int(self)

    def __repr__(self):
        return "Dimension({})".format(int(self))


def _dimension(d):
    if d is None or (hasattr(d, "value") and d.value is None):
        return None
    if isinstance(d, (int, np.integer)) and not isinstance(d, bool):
        if d < 0:
            raise ValueError("a dimension must be non-negative or None, got {}".format(d))
        return Dimension(d)
    raise TypeError("a dimension must be an int or None, got {!r}".format(d))


class TensorShape(tuple):
    """The static shape of a tensor: a tuple of sizes (`Dimension`, or None where unknown).

    TensorShape(None) has an unknown rank: no sizes, `ndims` None, and `as_list()` raises.
    """

    def __new__(cls, dims):
        if isinstance(dims, TensorShape):
            return dims
        if dims is None:
            shape = super().__new__(cls, ())
            shape._known_rank = False
            return shape
        if isinstance(dims, (int, np.integer)):
            dims = [dims]
        shape = super().__new__(cls, [_dimension(d) for d in dims])
        shape._known_rank = True
        return shape

    @property
    def ndims(self):
        """The number of dimensions, or None when unknown."""
        return len(self) if self._known_rank else None

    rank = ndims

    @property
    def dims(self):
        """The sizes as a list (None where unknown), or None for an unknown rank."""
        return list(self) if self._known_rank else None

    def as_list(self):
        """The sizes as a list of ints (None where unknown)."""
        if not self._known_rank:
            raise ValueError("as_list() is not defined on a shape of unknown rank")
        return [None if d is None else int(d) for d in self]

    def is_fully_defined(self):
        return self._known_rank and all(d is not None for d in self)

    def num_elements(self):
        """The number of elements, or None unless every size is known."""
        if not self.is_fully_defined():
            return None
        return int(np.prod([int(d) for d in self], dtype=np.int64))

    def is_compatible_with(self, other):
        other = TensorShape(other)
        if not self._known_rank or not other._known_rank:
            return True
        return len(self) == len(other) and all(
            a is None or b is None or a == b for a, b in zip(self, other))

    def assert_is_compatible_with(self, other):
        if not self.is_compatible_with(other):
            raise ValueError("shapes {} and {} are incompatible".format(self, TensorShape(other)))

    def __getitem__(self, key):
        if isinstance(key, slice):
            if not self._known_rank:
                return TensorShape(None)
            return TensorShape(tuple.__getitem__(self, key))
        if not self._known_rank:
            return None
        return tuple.__getitem__(self, key)

    def __eq__(self, other):
        if isinstance(other, TensorShape):
            return self._known_rank == other._known_rank and tuple.__eq__(self, other)
        if isinstance(other, (list, tuple)):
            return self._known_rank and tuple(self) == tuple(other)
        if other is None:
            return not self._known_rank
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = tuple.__hash__

    def __repr__(self):
        if not self._known_rank:
            return "TensorShape(None)"
        return "TensorShape({})".format([None if d is None else int(d) for d in self])

    def __str__(self):
        if not self._known_rank:
            return "<unknown>"
        return "({})".format(", ".join("?" if d is None else str(int(d)) for d in self) +
                             ("," if len(self) == 1 else ""))


def shape_of(dims):
    """The `tensor.shape` value for engine dims (a tuple, or None for an unknown rank)."""
    return None if dims is None else TensorShape(dims)
