"""Canonical types shared by every wire format."""

from crossway.ir.usage import Usage

__all__ = ["Usage"]
