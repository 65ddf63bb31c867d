"""The MO serialization the device sends with HPUT, HPOST and SUB, and the cache validator.

DM 2.0 (specification §6.5) serializes management data as a JSON array,
``[{"DDF", "ClientURI", "CV", "MOData"}]``: one entry per node sent, ``MOData`` the
node's data as an object. Lab choices (see ``docs/protocol.md``):

* lab choice ``mo-data-shape``: ``MOData`` is keyed by the named node's name; for an
  MO instance root (empty path) it is the root's children. A wildcard instance is
  expanded into one entry per instance that has the node.
* lab choice ``mo-serialization-type``: the array travels as ``application/json``;
  the device can also write DM 1.x TNDS (``application/vnd.syncml.dmtnds+xml``) when a
  receiver's ``OMADM-Accept`` asks for it after a 415.
* lab choice ``cache-validator``: an instance's CV is the first 16 hex digits of
  SHA-256 over the canonical JSON of what a server may read of it. Secrets are left
  out (a short hash of a weak secret could be guessed offline); a rotated secret
  leaves the CV unchanged, which is right: no cached copy ever held it.
* lab choice ``mos-ddf``: ``DDF`` appears only for MOs whose published DDF URL is known.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Final
from xml.etree import ElementTree

from ..protocol import media
from .tree import ClientURI, ManagementTree

#: OMA's published DDF for the MOs whose URL the lab could confirm.
DDF_URLS: Final[dict[str, str]] = {
    "urn:oma:mo:oma-dm-dmacc:1.2": "http://www.openmobilealliance.org/tech/omna/dm_mo/dm_dmacc-v1_2.ddf",
}

Entry = dict[str, Any]


def cache_validator(tree: ManagementTree, moid: str, instance: str) -> str:
    """The CV of one MO instance: changes whenever what a server may read of it changes."""
    data = tree.get(ClientURI(moid, instance))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def entries(tree: ManagementTree, client_uris: Sequence[str]) -> list[Entry]:
    """The MO serialization of these nodes, as read by a server (ACLs apply)."""
    out: list[Entry] = []
    for text in client_uris:
        uri = ClientURI.parse(text)
        if uri.wildcard:
            found = tree.get(uri)  # {instance: value}; 404 when no instance has the node
            targets = [ClientURI(uri.moid, instance, uri.path) for instance in found]
        else:
            targets = [uri]
        for target in targets:
            value = tree.get(target)
            entry: Entry = {}
            if target.moid in DDF_URLS:
                entry["DDF"] = DDF_URLS[target.moid]
            entry["ClientURI"] = str(target)
            if not target.path:
                entry["CV"] = cache_validator(tree, target.moid, target.instance)
            entry["MOData"] = value if not target.path else {target.path[-1]: value}
            out.append(entry)
    return out


def mo_list(tree: ManagementTree) -> list[Entry]:
    """Package 1's ``MOS`` (specification §6.2): each MOID the device supports, with its
    instances' MIIDs and, where known, the DDF URL."""
    out: list[Entry] = []
    for moid in tree.moids():
        entry: Entry = {"DDF": DDF_URLS[moid]} if moid in DDF_URLS else {}
        entry |= {"MOID": moid, "MIID": tree.instances(moid)}
        out.append(entry)
    return out


def to_json(items: list[Entry]) -> bytes:
    return json.dumps(items, ensure_ascii=False).encode()


def to_tnds(items: list[Entry]) -> bytes:
    """DM 1.x TNDS: one ``Node`` per serialized node, its ``Path`` the parent ClientURI."""
    tree = ElementTree.Element("MgmtTree", xmlns="syncml:dmddf1.2")
    ElementTree.SubElement(tree, "VerDTD").text = "1.2"
    for item in items:
        uri = ClientURI.parse(item["ClientURI"])
        data = item["MOData"]
        if uri.path:
            parent, (name, value) = str(uri.parent), next(iter(data.items()))
            tree.append(_tnds_node(name, value, parent))
        else:
            for name, value in data.items():
                tree.append(_tnds_node(name, value, str(uri)))
    return ElementTree.tostring(tree, encoding="utf-8", xml_declaration=True)


def _tnds_node(name: str, value: Any, path: str | None) -> ElementTree.Element:
    node = ElementTree.Element("Node")
    ElementTree.SubElement(node, "NodeName").text = name
    if path is not None:
        ElementTree.SubElement(node, "Path").text = path
    if isinstance(value, dict):
        for child, item in value.items():
            node.append(_tnds_node(child, item, None))
    elif value is not None:
        ElementTree.SubElement(node, "Value").text = str(value)
    return node


#: What the device can send, in order of preference.
WRITERS: Final[dict[str, Callable[[list[Entry]], bytes]]] = {
    media.JSON: to_json,
    media.TNDS: to_tnds,
}


def choose(omadm_accept: str) -> str | None:
    """The first type in an ``OMADM-Accept`` header (HTTP Accept syntax) the device can
    write; ``None`` when there is none (the command's status is then 406)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(omadm_accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        kind, quality = fields[0].lower(), 1.0
        for param in fields[1:]:
            key, _, number = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(number)
                except ValueError:
                    quality = 0.0
        if kind and quality > 0:
            ranked.append((-quality, index, kind))
    for _, _, kind in sorted(ranked):
        if kind in WRITERS:
            return kind
        if kind in ("*/*", "application/*"):
            return next(iter(WRITERS))
    return None


__all__ = [
    "DDF_URLS",
    "WRITERS",
    "cache_validator",
    "choose",
    "entries",
    "to_json",
    "to_tnds",
]
