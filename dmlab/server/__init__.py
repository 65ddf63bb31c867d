"""The DM 2.0 server: Starlette routes over a session engine and a store."""

from .app import build_services, close_streams, create_app, follow_others
from .context import Services

__all__ = ["Services", "build_services", "close_streams", "create_app", "follow_others"]
