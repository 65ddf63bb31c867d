"""The DM 2.0 server: Starlette routes over a session engine and a store."""

from .app import build_services, create_app, follow_others
from .context import Services
from .routes.events import close_streams

__all__ = ["Services", "build_services", "close_streams", "create_app", "follow_others"]
