"""Loads the compiled engine module `_sluice_core` (built by Bazel, see docs/python.md)."""

try:
    import _sluice_core as core  # noqa: F401  (re-exported for the package's modules)
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        "sluice: the compiled module _sluice_core is not importable ({}). Build it and set "
        "PYTHONPATH with:  eval \"$(tools/python_env.sh)\"  (see docs/python.md)".format(e)
    ) from e
