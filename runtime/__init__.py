"""Process runtime: the Asterisk rootfs, and the Asterisk, Redis and FastAGI processes of an
instance (``Stack``)."""

from runtime.procs import StackError
from runtime.stack import Stack

__all__ = ["Stack", "StackError"]
