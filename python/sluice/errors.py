"""Exceptions raised by sluice, one class per error code (as in TensorFlow's `tf.errors`).

Every error from the engine, while building a graph or running it, is an `OpError` subclass
chosen by its absl status code. The message keeps the engine's text, which names the node, the
op, the file:line that built the node and the shapes involved, e.g.::

    InvalidArgumentError: node 'dense/MatMul' (MatMul) built at model.py:12: MatMul inner
    dimensions differ: [2,3] x [4,5]

`node_name` and `op_type` hold the first node named in the message (None when it names none).
"""

import re

from sluice._core import core as _core

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

_NODE_RE = re.compile(r"node '([^']*)' \(([^)]*)\)")


class OpError(Exception):
    """Base class of every engine error.

    Attributes:
      message: the engine's message.
      error_code: the absl status code (an int; see the constants of this module).
      node_name: the first node the message names, or None.
      op_type: that node's op type, or None.
    """

    def __init__(self, message, error_code=UNKNOWN):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        m = _NODE_RE.search(message)
        self.node_name = m.group(1) if m else None
        self.op_type = m.group(2) if m else None

    def __str__(self):
        return self.message


class CancelledError(OpError):
    """The operation was cancelled (for example the step was aborted)."""


class UnknownError(OpError):
    """An error without a more specific code."""


class InvalidArgumentError(OpError):
    """A bad argument: wrong shape or dtype, a malformed graph, a bad feed."""


class DeadlineExceededError(OpError):
    """A deadline passed before the operation finished."""


class NotFoundError(OpError):
    """Something named (a node, a file, a variable) does not exist."""


class AlreadyExistsError(OpError):
    """Something being created (a node name, a file) already exists."""


class PermissionDeniedError(OpError):
    """The caller may not do this."""


class ResourceExhaustedError(OpError):
    """Out of memory or another resource."""


class FailedPreconditionError(OpError):
    """The system is not in a state to do this (an uninitialised variable, a finalised graph)."""


class AbortedError(OpError):
    """The operation was aborted (for example by a failing peer)."""


class OutOfRangeError(OpError):
    """An index or iteration went past the valid range."""


class UnimplementedError(OpError):
    """The operation is not implemented or not supported."""


class InternalError(OpError):
    """An invariant of the engine broke: a bug."""


class UnavailableError(OpError):
    """A service (a worker, a server) is unavailable."""


class DataLossError(OpError):
    """Unrecoverable data loss or corruption."""


class UnauthenticatedError(OpError):
    """Missing or bad credentials."""


_CLASSES = {
    CANCELLED: CancelledError,
    UNKNOWN: UnknownError,
    INVALID_ARGUMENT: InvalidArgumentError,
    DEADLINE_EXCEEDED: DeadlineExceededError,
    NOT_FOUND: NotFoundError,
    ALREADY_EXISTS: AlreadyExistsError,
    PERMISSION_DENIED: PermissionDeniedError,
    RESOURCE_EXHAUSTED: ResourceExhaustedError,
    FAILED_PRECONDITION: FailedPreconditionError,
    ABORTED: AbortedError,
    OUT_OF_RANGE: OutOfRangeError,
    UNIMPLEMENTED: UnimplementedError,
    INTERNAL: InternalError,
    UNAVAILABLE: UnavailableError,
    DATA_LOSS: DataLossError,
    UNAUTHENTICATED: UnauthenticatedError,
}


def exception_type_from_error_code(error_code):
    """The OpError subclass raised for an absl status code."""
    return _CLASSES.get(error_code, UnknownError)


_core._register_error_classes(_CLASSES)
