"""The one base error every stage CLI catches and reports as a single named line.

Each subclass says which kind of thing went wrong; the message says which component,
file or shape and what to do. Anything else that escapes a stage is a bug and is logged
with its traceback.
"""

from __future__ import annotations

import re


class WorkflowError(Exception):
    """An expected failure: the message is complete and names the thing."""


class ConfigError(WorkflowError, ValueError):
    """A config value that cannot work; the message names the key path."""


class CheckpointError(WorkflowError, RuntimeError):
    """A checkpoint that is missing, unreadable, unsafe or does not fit its module."""


class ParityError(WorkflowError, AssertionError):
    """An artifact whose outputs differ from PyTorch beyond tolerance, or that fails to run."""


class TrtError(WorkflowError, RuntimeError):
    """TensorRT is missing, refused a graph, or failed to build or load an engine."""


class StageError(WorkflowError, RuntimeError):
    """A stage that cannot produce its artifact; the message says which and why."""


class Unavailable(WorkflowError, RuntimeError):
    """A backend/precision that cannot run on this host; the message is the recorded reason."""


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def plain(text: str) -> str:
    """Library messages without terminal escape codes (torch bolds its warnings), for logs and reports."""
    return _ESCAPES.sub("", text)
