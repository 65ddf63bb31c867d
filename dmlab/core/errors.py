"""What the domain refuses, in its own words.

The core raises these and knows nothing of HTTP; the server maps each kind to
one problem type (status, title, documentation) in one place.
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the domain cannot carry out; ``str()`` is a readable reason."""


class Invalid(DomainError):
    """The input breaks a rule of the domain (a devId, a job, a field)."""


class InvalidDevId(Invalid):
    """Not a devId the lab can use: malformed, or taken by a fixed path."""


class StatusMismatch(Invalid):
    """A package 3 whose statuses do not answer the package 2, one per command."""


class NotFound(DomainError):
    """No such thing, or not one the caller may see (the two are not told apart)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this (already registered, ended…)."""


class SpentSession(Conflict):
    """A session id already answered: the session continues under a newer id."""


class Expired(Conflict):
    """The session ended as expired: not started within its time to live, or its device
    sent nothing for longer than the active TTL."""


class PreconditionFailed(DomainError):
    """The caller's expectation of the current state (a version it saw) no longer holds."""
