"""Runtime plumbing: the lab CA, the HTTPS server thread and the device event-loop thread."""

from .lab import Device, Lab, Operator, OperatorError
from .threads import LoopThread, ServerThread
from .tls import DEFAULT_HOSTS, LabCA

__all__ = [
    "DEFAULT_HOSTS",
    "Device",
    "Lab",
    "LabCA",
    "LoopThread",
    "Operator",
    "OperatorError",
    "ServerThread",
]
