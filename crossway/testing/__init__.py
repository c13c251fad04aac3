"""The simulated upstream: a deterministic server speaking the providers' wire formats.

Tests, the benchmark and `crossway serve --demo` all use it. See `upstream.py`.
"""

from crossway.testing.upstream import SimulatedUpstream

__all__ = ["SimulatedUpstream"]
