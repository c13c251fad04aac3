"""Canonical types shared by every wire format: usage, chat conversations, stream events."""

from crossway.ir.usage import Usage

__all__ = ["Usage"]
