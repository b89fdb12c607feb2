"""Process runtime: the Asterisk rootfs, and the Asterisk, Redis and FastAGI processes of an
instance (``Stack``)."""

from hotline.runtime.procs import StackError
from hotline.runtime.stack import Stack

__all__ = ["Stack", "StackError"]
