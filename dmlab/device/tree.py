"""The device's management tree: MO instances made of nodes, with ACLs.

A node is addressed by a ClientURI (protocol brief §3): ``MOID/instance/path``,
for example ``urn:oma:mo:oma-fumo:1.0/fw1/State``. A singleton MO such as DevInfo
has the empty instance id (``urn:oma:mo:oma-dm-devinfo:1.0//DevInfo/FwV``), an
empty path names the whole instance (``urn:oma:mo:oma-dm-devinfo:1.0//``), and the
instance ``*`` reads every instance at once.

Every failure is a :class:`TreeError` carrying the DM status code the device
reports for it, so the executor can turn it into a status without a lookup table.

Trees share what they have in common. A node marked ``shared`` (:meth:`Node.share`)
may sit in many trees at once, as the standard objects every virtual device carries
do; a tree never changes one in place: it copies the shared nodes on the path to what
it writes (copy on write), so the write is its own and other trees keep the old node.
A shared leaf whose value is :class:`Own` goes further: each tree keeps that value in a
small table of its own, and nothing is copied (a fleet's DevIDs and credentials).
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

logger = logging.getLogger(__name__)

#: A leaf's value. Interior nodes have no value of their own.
Value = str | int | None

#: The permissions a node's ACL may hold: read, write, execute.
PERMISSIONS: Final = frozenset("rwx")

WILDCARD: Final = "*"

#: The canonical frozenset of each ACL in use (at most the eight subsets of "rwx").
_ACLS: dict[frozenset[str], frozenset[str]] = {}


@dataclass(frozen=True, slots=True)
class Own:
    """The value of a shared leaf that each tree holds for itself (its DevID, its
    credentials), under ``key``; until a tree sets it, it reads as ``None``. Copying the
    shared nodes on the way to those few leaves was 2 KiB of a fleet device's memory."""

    key: str


class TreeError(Exception):
    """A tree operation failed; ``status`` is the DM status code to report."""

    status: int = 500


class InvalidURI(TreeError):
    """The ClientURI is not ``MOID/instance/path``."""

    status = 400


class InvalidValue(TreeError):
    """A value the tree cannot hold (only str, int, None and mappings of them)."""

    status = 400


class PermissionDenied(TreeError):
    """The node's ACL does not grant the permission the command needs."""

    status = 403


class NodeNotFound(TreeError):
    status = 404


class NotAllowed(TreeError):
    """The node exists but cannot be changed this way (for example: permanent)."""

    status = 405


class AlreadyExists(TreeError):
    status = 409


#: Any whitespace (``str.isspace``; ``re``'s ``\s`` is the same set on ``str``): found at C
#: speed, not a generator over every character of every ClientURI a device parses.
_SPACE: Final = re.compile(r"\s")


def _check_name(name: str, what: str = "node name") -> None:
    if not isinstance(name, str):
        raise InvalidURI(f"invalid {what}: {name!r}")
    problem = _name_problem(name)
    if problem is not None:
        raise InvalidURI(f"invalid {what}: {name!r}{problem}")


# Every virtual device builds the same standard tree: a fleet of 100,000 checked the
# same few dozen names millions of times. Bounded, as names come from servers too.
@functools.lru_cache(maxsize=4096)
def _name_problem(name: str) -> str | None:
    """What is wrong with a node name ("" for a plain fault), ``None`` if nothing."""
    if not name or "/" in name or WILDCARD in name or name in (".", ".."):
        return ""
    if any(ord(c) < 0x20 or c.isspace() for c in name):
        return " (no spaces or control characters)"
    return None


@dataclass(frozen=True, slots=True)
class ClientURI:
    """A parsed ClientURI. ``str()`` gives the canonical form back."""

    moid: str
    instance: str
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (
            not isinstance(self.moid, str)
            or not self.moid.lower().startswith("urn:")
            or "/" in self.moid
        ):
            raise InvalidURI(f"invalid MOID {self.moid!r}: an MOID is a URN without '/'")
        if _SPACE.search(self.moid):
            raise InvalidURI(f"invalid MOID {self.moid!r}")
        if self.instance not in ("", WILDCARD):
            _check_name(self.instance, "instance id")
        for name in self.path:
            _check_name(name)

    @classmethod
    def of(cls, moid: str, instance: str, *path: str) -> ClientURI:
        return cls(moid, instance, tuple(path))

    @classmethod
    def parse(cls, text: str | ClientURI) -> ClientURI:
        """Parse ``MOID/instance/path``; one trailing ``/`` is allowed."""
        if isinstance(text, ClientURI):
            return text
        if not isinstance(text, str):
            raise InvalidURI("a ClientURI is a string")
        moid, sep, rest = text.partition("/")
        if not sep:
            raise InvalidURI(f"{text!r} is not a ClientURI (MOID/instance/path)")
        instance, _, path = rest.partition("/")
        names = path.split("/") if path else []
        if names and names[-1] == "":
            names.pop()
        return cls(moid, instance, tuple(names))

    @property
    def wildcard(self) -> bool:
        return self.instance == WILDCARD

    @property
    def parent(self) -> ClientURI:
        return ClientURI(self.moid, self.instance, self.path[:-1])

    def child(self, name: str) -> ClientURI:
        return ClientURI(self.moid, self.instance, (*self.path, name))

    def __str__(self) -> str:
        return f"{self.moid}/{self.instance}/" + "/".join(self.path)


@dataclass(eq=False, slots=True)
class Node:
    """A leaf (``children is None``) holding a value, or an interior node.

    ``acl`` is a subset of ``{"r", "w", "x"}``; a ``permanent`` node can never
    be deleted or replaced, even by the device itself. A ``shared`` node (and all
    below it) is read only: trees copy it before they write (module docstring).
    """

    name: str
    value: Value | Own = None
    children: dict[str, Node] | None = None
    acl: frozenset[str] = frozenset("r")
    permanent: bool = False
    shared: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.acl, frozenset) or not self.acl <= PERMISSIONS:
            raise ValueError(f"an ACL is a frozenset of 'r', 'w', 'x', got {self.acl!r}")
        if self.children is not None and self.value is not None:
            raise ValueError("an interior node has no value")
        if not isinstance(self.value, Own):
            _check_value(self.value)
        # Share one frozenset per distinct ACL: there are only eight, and a copy per
        # node (over 200 bytes each) was most of an idle virtual device's memory.
        self.acl = _ACLS.setdefault(self.acl, self.acl)

    @classmethod
    def leaf(
        cls, name: str, value: Value = None, *, acl: str = "r", permanent: bool = False
    ) -> Node:
        return cls(name, value, None, frozenset(acl), permanent)

    @classmethod
    def interior(cls, name: str, *children: Node, acl: str = "r", permanent: bool = False) -> Node:
        node = cls(name, None, {}, frozenset(acl), permanent)
        for child in children:
            node.add(child)
        return node

    @property
    def is_leaf(self) -> bool:
        return self.children is None

    def add(self, child: Node) -> Node:
        if self.children is None:
            raise ValueError(f"{self.name!r} is a leaf and cannot have children")
        if self.shared:
            raise ValueError(f"{self.name!r} is shared: a tree copies it before it writes")
        _check_name(child.name)
        self.children[child.name] = child
        return child

    def share(self) -> Node:
        """Mark this node and everything below it shared (read only from now on), so
        many trees can hold it; returns the node."""
        self.shared = True
        for child in (self.children or {}).values():
            child.share()
        return self

    def _own_copy(self) -> Node:
        """A copy a tree may change: this node alone, its children still shared."""
        children = None if self.children is None else dict(self.children)
        return Node(self.name, self.value, children, self.acl, self.permanent)


def _check_value(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int))):
        raise InvalidValue(
            f"a leaf holds a string, an integer or nothing, not {type(value).__name__}"
        )


def _build(name: str, value: Any, acl: frozenset[str]) -> Node:
    """A new node (a subtree for a mapping) made by a server write."""
    if isinstance(value, Mapping):
        _check_name(name)
        node = Node(name, None, {}, acl)
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue("node names are strings")
            node.add(_build(key, item, acl))
        return node
    _check_value(value)
    return Node(name, value, None, acl)


Listener = Callable[[str], None]


class ManagementTree:
    """MO instances keyed by (MOID, instance id), guarded by one re-entrant lock.

    Server-driven operations check ACLs; the device itself passes ``force=True``
    (it updates FUMO State, FwV and so on). Listeners are called with the
    canonical URI of the changed node after the lock is released, so a listener
    may read the tree.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # An MO's instances by id: a dict of this tree's own, or a read-only table
        # shared with other trees (:meth:`share_instances`), copied before it changes.
        self._mos: dict[str, Mapping[str, Node]] = {}
        #: The values of this tree's :class:`Own` leaves, by key.
        self._own: dict[str, Value] = {}
        self._listeners: list[tuple[ClientURI, Listener]] = []

    # -- instances -----------------------------------------------------------

    def add_instance(self, moid: str, instance: str, root: Node) -> None:
        ClientURI(moid, instance)  # validates both
        if instance == WILDCARD:
            raise InvalidURI("'*' is not an instance id")
        if root.is_leaf:
            raise ValueError("an MO instance's root is an interior node")
        with self._lock:
            instances = self._instances(moid)
            if instance in instances:
                raise AlreadyExists(f"{moid} already has an instance {instance!r}")
            instances[instance] = root

    def remove_instance(self, moid: str, instance: str) -> None:
        """Remove an instance, permanent or not (device side only)."""
        with self._lock:
            try:
                del self._instances(moid, create=False)[instance]
            except KeyError:
                raise NodeNotFound(f"no instance {instance!r} of {moid}") from None
        self._notify(ClientURI(moid, instance))

    def share_instances(self, moid: str, table: Mapping[str, Node]) -> None:
        """Hold ``table`` (instance id to a shared root) as this MO's instances, read
        only: a fleet's trees share the tables of the MOs their devices never change,
        and the first change copies the table (copy on write, as the nodes)."""
        if not all(root.shared and not root.is_leaf for root in table.values()):
            raise ValueError("a shared table holds shared interior roots")
        for instance in table:
            ClientURI(moid, instance)  # validates both
        with self._lock:
            if self._mos.get(moid):
                raise AlreadyExists(f"{moid} already has instances")
            self._mos[moid] = (
                table if isinstance(table, MappingProxyType) else MappingProxyType(dict(table))
            )

    def _instances(self, moid: str, *, create: bool = True) -> dict[str, Node]:
        """The MO's instances, made this tree's own to change; a ``KeyError`` for an
        MO it does not have unless ``create``."""
        instances = self._mos.get(moid) if create else self._mos[moid]
        if type(instances) is not dict:
            instances = self._mos[moid] = dict(instances or {})
        return instances

    def moids(self) -> list[str]:
        with self._lock:
            return [moid for moid, instances in self._mos.items() if instances]

    def instances(self, moid: str) -> list[str]:
        with self._lock:
            return list(self._mos.get(moid, {}))

    # -- lookup --------------------------------------------------------------

    def _root(self, uri: ClientURI) -> Node:
        try:
            return self._mos[uri.moid][uri.instance]
        except KeyError:
            raise NodeNotFound(f"no instance {uri.instance!r} of {uri.moid}") from None

    def _find(self, uri: ClientURI) -> Node:
        if uri.wildcard:
            raise InvalidURI(f"{uri}: '*' is only allowed when reading")
        node = self._root(uri)
        for name in uri.path:
            if node.children is None or name not in node.children:
                raise NodeNotFound(f"no node {uri}")
            node = node.children[name]
        return node

    def _owned(self, uri: ClientURI) -> Node:
        """The node at ``uri`` (which exists), made this tree's own to change: the
        shared nodes on the way down are replaced by copies (copy on write)."""
        instances = self._instances(uri.moid, create=False)
        node = instances[uri.instance]
        if node.shared:
            node = instances[uri.instance] = node._own_copy()
        for name in uri.path:
            assert node.children is not None
            child = node.children[name]
            if child.shared:
                child = node.children[name] = child._own_copy()
            node = child
        return node

    def node(self, uri: str | ClientURI) -> Node:
        """The node itself, without ACL checks (device side), to read: it may be
        shared with other trees (change it through the tree's methods)."""
        with self._lock:
            return self._find(ClientURI.parse(uri))

    def __contains__(self, uri: object) -> bool:
        if not isinstance(uri, (str, ClientURI)):
            return False
        try:
            self.node(uri)
        except TreeError:
            return False
        return True

    def check(self, uri: str | ClientURI, permission: str) -> None:
        """Raise the TreeError the command would meet, without doing it.

        For ``"w"`` a missing leaf is fine when its parent is writable, as
        :meth:`set` would create it.
        """
        uri = ClientURI.parse(uri)
        with self._lock:
            try:
                node = self._find(uri)
            except NodeNotFound:
                if permission != "w" or not uri.path:
                    raise
                parent = self._find(uri.parent)
                if parent.is_leaf:
                    raise
                node = parent
            if permission not in node.acl:
                raise PermissionDenied(f"{uri}: no {permission!r} permission")

    # -- read ----------------------------------------------------------------

    def get(self, uri: str | ClientURI, *, force: bool = False) -> Any:
        """A leaf's value, or a nested dict of the readable subtree.

        An interior GET leaves out children the server may not read (credentials).
        With the instance ``*`` the answer is ``{instance: value}`` for every
        instance that has the node; none having it is a 404.
        """
        uri = ClientURI.parse(uri)
        with self._lock:
            if not uri.wildcard:
                return self._read(uri, force)
            if uri.moid not in self._mos:
                raise NodeNotFound(f"no MO {uri.moid}")
            found: dict[str, Any] = {}
            for instance in self._mos[uri.moid]:
                try:
                    found[instance] = self._read(ClientURI(uri.moid, instance, uri.path), force)
                except NodeNotFound:
                    continue
            if not found:
                raise NodeNotFound(
                    f"no instance of {uri.moid} has {'/'.join(uri.path) or 'a root'}"
                )
            return found

    def _read(self, uri: ClientURI, force: bool) -> Any:
        node = self._find(uri)
        if not force and "r" not in node.acl:
            raise PermissionDenied(f"{uri}: not readable")
        return _value(node, force, self._own)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        """Every leaf as ``(uri, value)``, ignoring ACLs (device side)."""
        with self._lock:
            leaves: list[tuple[str, Value]] = []
            for moid, instances in self._mos.items():
                for instance, root in instances.items():
                    _collect(ClientURI(moid, instance), root, leaves, self._own)
        return iter(leaves)

    # -- write ---------------------------------------------------------------

    def set(
        self, uri: str | ClientURI, value: Any, *, create: bool = True, force: bool = False
    ) -> None:
        """Write a leaf, or build a subtree from a mapping.

        A missing node is created (when ``create``) under an existing interior
        parent the caller may write; it inherits the parent's ACL without ``x``.
        A value of the other shape (a mapping on a leaf, a scalar on an interior
        node) replaces the node, which a permanent node refuses with 405.
        """
        uri = ClientURI.parse(uri)
        with self._lock:
            if not uri.path:
                raise NotAllowed(f"{uri}: an MO instance cannot be written as a whole")
            parent = self._find(uri.parent)
            if parent.children is None:
                raise NodeNotFound(f"no node {uri} ({'/'.join(uri.parent.path)} is a leaf)")
            name = uri.path[-1]
            node = parent.children.get(name)
            if node is None:
                if not create:
                    raise NodeNotFound(f"no node {uri}")
                if not force and "w" not in parent.acl:
                    raise PermissionDenied(f"{uri.parent}: not writable")
                built = _build(name, value, parent.acl - {"x"})
                self._owned(uri.parent).add(built)
            else:
                if not force and "w" not in node.acl:
                    raise PermissionDenied(f"{uri}: not writable")
                if node.is_leaf and not isinstance(value, Mapping):
                    _check_value(value)
                    if _resolved(node.value, self._own) == value:
                        return  # not a change: listeners are not called
                    if isinstance(node.value, Own):
                        self._own[node.value.key] = value
                    else:
                        self._owned(uri).value = value
                else:
                    if node.permanent:
                        raise NotAllowed(f"{uri}: a permanent node keeps its shape")
                    built = _build(name, value, node.acl)
                    self._owned(uri.parent).add(built)
        self._notify(uri)

    def delete(self, uri: str | ClientURI, *, force: bool = False) -> None:
        """Delete a node and its children, or a whole instance (empty path).

        Needs ``w`` on the node; a permanent node is a 405 whoever asks, and
        that check comes first: no principal could delete it.
        """
        uri = ClientURI.parse(uri)
        with self._lock:
            node = self._find(uri)
            if node.permanent:
                raise NotAllowed(f"{uri}: permanent node")
            if not force and "w" not in node.acl:
                raise PermissionDenied(f"{uri}: not writable")
            if not uri.path:
                del self._instances(uri.moid, create=False)[uri.instance]
            else:
                parent = self._owned(uri.parent)
                assert parent.children is not None
                del parent.children[uri.path[-1]]
        self._notify(uri)

    def attach(self, parent: str | ClientURI, node: Node) -> None:
        """Put a prebuilt node, with its own ACLs, under ``parent`` (device side).

        A service MO uses it for what no server write can make: executable
        ``Operations`` nodes beside data a server wrote with HGET. A node of
        the same name is replaced unless it is permanent.
        """
        parent_uri = ClientURI.parse(parent)
        with self._lock:
            found = self._find(parent_uri)
            if found.children is None:
                raise NodeNotFound(f"no node {parent_uri} to attach under (it is a leaf)")
            old = found.children.get(node.name)
            if old is not None and old.permanent:
                raise NotAllowed(f"{parent_uri.child(node.name)}: permanent node")
            self._owned(parent_uri).add(node)
        self._notify(parent_uri.child(node.name))

    # -- change listeners ----------------------------------------------------

    def subscribe(self, uri_prefix: str | ClientURI, callback: Listener) -> None:
        """Call ``callback(uri)`` after any set or delete at or below the prefix.

        The deletion or replacement of an ancestor of the prefix counts too:
        the subscribed subtree changed. ``*`` as instance matches every instance.
        """
        prefix = ClientURI.parse(uri_prefix)
        with self._lock:
            self._listeners.append((prefix, callback))

    def unsubscribe(self, uri_prefix: str | ClientURI, callback: Listener) -> bool:
        """Remove one subscription; False if there was no such subscription."""
        prefix = ClientURI.parse(uri_prefix)
        with self._lock:
            try:
                self._listeners.remove((prefix, callback))
            except ValueError:
                return False
            return True

    def _notify(self, changed: ClientURI) -> None:
        with self._lock:
            listeners = [
                callback for prefix, callback in self._listeners if _related(prefix, changed)
            ]
        for callback in listeners:
            try:
                callback(str(changed))
            except Exception:  # a broken listener must not break the write
                logger.exception("tree listener failed for %s", changed)


def _resolved(value: Value | Own, own: Mapping[str, Value]) -> Value:
    """A leaf's value as its tree holds it (an :class:`Own` one from the tree's table)."""
    return own.get(value.key) if isinstance(value, Own) else value


def _value(node: Node, force: bool, own: Mapping[str, Value]) -> Any:
    if node.children is None:
        return _resolved(node.value, own)
    return {
        name: _value(child, force, own)
        for name, child in node.children.items()
        if force or "r" in child.acl
    }


def _collect(
    uri: ClientURI, node: Node, out: list[tuple[str, Value]], own: Mapping[str, Value]
) -> None:
    if node.children is None:
        out.append((str(uri), _resolved(node.value, own)))
        return
    for name, child in node.children.items():
        _collect(uri.child(name), child, out, own)


def _related(prefix: ClientURI, changed: ClientURI) -> bool:
    """The change is at or below the prefix, or replaced/deleted an ancestor of it."""
    if prefix.moid != changed.moid or prefix.instance not in (changed.instance, WILDCARD):
        return False
    depth = min(len(prefix.path), len(changed.path))
    return prefix.path[:depth] == changed.path[:depth]
