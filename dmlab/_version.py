"""The version, in a module of its own: the server reads it while ``dmlab`` is still importing."""

__version__ = "0.1.0"
