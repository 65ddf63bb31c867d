"""Where the server keeps accounts, devices and sessions."""

from .base import Page, StorageFault, Store
from .memory import MemoryStore
from .model import Account, AlertRecord, Device, JobSpec, Origin, Result, Round, Session, State
from .sqlite import SQLiteStore

__all__ = [
    "Account",
    "AlertRecord",
    "Device",
    "JobSpec",
    "MemoryStore",
    "Origin",
    "Page",
    "Result",
    "Round",
    "SQLiteStore",
    "Session",
    "State",
    "StorageFault",
    "Store",
]
