"""The standard management objects a virtual device carries (protocol brief §4).

Each factory returns an :class:`MOInstance` ready for
``tree.add_instance(*instance)``. The ACLs are what a DM server meets on a real
device: DevInfo is read-only, DMAcc credentials are write-only (a server may
rotate a secret but never read it back), and FUMO's operation nodes are the only
executable ones. Every standard node is permanent.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType
from typing import Final, NamedTuple

from .tree import ClientURI, ManagementTree, Node, Own, TreeError, Value

DEVINFO: Final = "urn:oma:mo:oma-dm-devinfo:1.0"
#: DM 2.0's DM Account (specification §11.2; OMA-SUP-MO_DM_DMAcc-V1_2).
DMACC: Final = "urn:oma:mo:oma-dm-dmacc:1.2"
FUMO: Final = "urn:oma:mo:oma-fumo:1.0"
#: The lab's own writable MO, so HGET and DELETE have somewhere to act.
EXT: Final = "urn:oma:mo:dmlab-ext:1.0"

#: FUMO's executable nodes.
FUMO_OPERATIONS: Final = ("Download", "Update", "DownloadAndUpdate")


class FumoState(IntEnum):
    """FUMO's State node values."""

    IDLE = 10
    DOWNLOAD_FAILED = 20
    DOWNLOADING = 30
    DOWNLOAD_COMPLETE = 40
    READY_TO_UPDATE = 50
    UPDATING = 60
    UPDATE_FAILED_HAVE_DATA = 70
    UPDATE_FAILED = 80
    UPDATE_SUCCESSFUL_HAVE_DATA = 90
    UPDATE_SUCCESSFUL = 100


class FumoResult(IntEnum):
    """The result codes a FUMO generic alert carries as its Data (FUMO 1.0 names)."""

    SUCCESSFUL = 200
    CORRUPTED_PACKAGE = 402
    UNDEFINED_ERROR = 409
    UPDATE_FAILED = 410
    BAD_URL = 411
    DOWNLOAD_SERVER_ERROR = 500
    NETWORK_ERROR = 503


class MOInstance(NamedTuple):
    moid: str
    instance: str
    root: Node


def _leaf(name: str, value: Value, acl: str = "r") -> Node:
    return Node.leaf(name, value, acl=acl, permanent=True)


def _interior(name: str, *children: Node, acl: str = "r") -> Node:
    return Node.interior(name, *children, acl=acl, permanent=True)


def devinfo(
    dev_id: str,
    man: str,
    mod: str,
    *,
    fw_version: str = "1.0.0",
    sw_version: str = "1.0.0",
    hw_version: str = "1.0",
    lang: str = "en-US",
    dev_type: str = "smartphone",
    oem: str | None = None,
) -> MOInstance:
    """DevInfo, a singleton (instance ``""``): ``DEVINFO//DevInfo/FwV``. OEM defaults to Man."""
    info = _interior(
        "DevInfo",
        _leaf("DevID", dev_id),
        _leaf("Man", man),
        _leaf("Mod", mod),
        _leaf("DmV", "2.0"),
        _leaf("Lang", lang),
        _leaf("DevType", dev_type),
        _leaf("OEM", man if oem is None else oem),
        _leaf("FwV", fw_version),
        _leaf("SwV", sw_version),
        _leaf("HwV", hw_version),
    )
    return MOInstance(DEVINFO, "", _interior("", info))


#: ``<x>/Auth/Noti/Type`` for the SHA256-DIGEST option (lab choice ``noti-auth-type``).
NOTI_SHA256_DIGEST: Final = 1


def dmacc(
    server_id: str,
    server_uri: str,
    *,
    name: str | None = None,
    auth_name: str = "",
    secret: str = "",
    noti_secret: bytes = b"",
    noti_data: bytes = b"",
    moids: tuple[str, ...] = (),
) -> MOInstance:
    """A DM 2.0 account (DMAcc 1.2), one instance per server id: ``DMACC/<server_id>/SrvURI``.

    ``Perm`` lists the MOIDs the server may manage and is never readable (specification).
    ``Auth/Noti`` holds the notification secret and auth data, base64 text as the tree
    holds ``bin`` values; the notification is only trusted when it is present. The HTTP
    Basic name and password sit in ``Auth/Trsp`` (lab choice ``http-credentials``).
    Secrets are write-only: a server may rotate them but never read them back.
    """
    perm = _interior(
        "Perm",
        *(
            _interior(str(i), _leaf("MOID", moid, acl=""), acl="")
            for i, moid in enumerate(moids, start=1)
        ),
        acl="",
    )
    root = _interior(
        server_id,
        _leaf("SrvID", server_id),
        _leaf("SrvURI", server_uri),
        _leaf("Name", server_id if name is None else name),
        perm,
        _interior(
            "Auth",
            # Optional in the specification, so not permanent (the device may drop them).
            Node.interior(
                "Noti",
                _leaf("Type", NOTI_SHA256_DIGEST),
                _leaf("Data", _b64(noti_data)),
                _leaf("Secret", _b64(noti_secret), acl="w"),
            ),
            Node.interior("Trsp", _leaf("Data", auth_name), _leaf("Secret", secret, acl="w")),
        ),
    )
    return MOInstance(DMACC, server_id, root)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def noti_credentials(tree: ManagementTree, server_id: str) -> tuple[bytes, bytes] | None:
    """The (secret, auth data) of a server's DMAcc ``Auth/Noti``; ``None`` without one, so
    the device ignores that server's notifications (specification §2.1.2.2)."""
    base = ClientURI(DMACC, server_id, ("Auth", "Noti"))
    try:
        secret = tree.get(base.child("Secret"), force=True)
        data = tree.get(base.child("Data"), force=True)
    except TreeError:
        return None
    if not isinstance(secret, str) or not secret:
        return None
    return base64.b64decode(secret), base64.b64decode(data or "")


def fumo(
    instance: str = "fw1", *, pkg_name: str = "firmware", pkg_version: str = "1.0.0"
) -> MOInstance:
    """A firmware update object: ``FUMO/fw1/State`` starts at 10 (idle)."""
    root = _interior(
        instance,
        _leaf("PkgName", pkg_name),
        _leaf("PkgVersion", pkg_version),
        _interior("Download", _leaf("PkgURL", "", acl="rw"), acl="rx"),
        _interior("Update", _leaf("PkgData", "", acl="rw"), acl="rx"),
        _interior("DownloadAndUpdate", _leaf("PkgURL", "", acl="rw"), acl="rx"),
        _leaf("State", int(FumoState.IDLE)),
    )
    return MOInstance(FUMO, instance, root)


def ext(settings: Mapping[str, Value] | None = None) -> MOInstance:
    """The lab extension (instance ``""``): the server may create and delete leaves
    under ``EXT//Settings``; those leaves are not permanent. ``EXT//Downloads`` is
    where an HGET without ClientURI puts what it fetched (lab choice hget-place)."""
    node = _interior("Settings", acl="rw")
    for key, value in (settings or {}).items():
        node.add(Node.leaf(key, value, acl="rw"))
    return MOInstance(EXT, "", _interior("", node, _interior("Downloads", acl="rw")))


def standard_tree(
    dev_id: str,
    man: str,
    mod: str,
    server_id: str,
    server_uri: str,
    *,
    fw_version: str = "1.0.0",
    sw_version: str = "1.0.0",
    hw_version: str = "1.0",
    lang: str = "en-US",
    dev_type: str = "smartphone",
    oem: str | None = None,
    auth_name: str = "",
    secret: str = "",
    noti_secret: bytes = b"",
    noti_data: bytes = b"",
    fumo_instance: str = "fw1",
    pkg_name: str = "firmware",
    settings: Mapping[str, Value] | None = None,
) -> ManagementTree:
    """DevInfo, one DMAcc, one FUMO instance (PkgVersion = FwV) and the lab extension.

    The tree shares its nodes with every other standard tree of the same make (a
    fleet's devices differ only in DevID and credentials): they are written in as the
    device's own, and any later write copies what it changes (see :mod:`.tree`)."""
    common = (man, mod, server_id, server_uri, fw_version, sw_version, hw_version, lang)
    template = _template(
        *common,
        dev_type=dev_type,
        oem=oem,
        noti_data=noti_data,
        fumo_instance=fumo_instance,
        pkg_name=pkg_name,
        settings=tuple((settings or {}).items()),
    )
    tree = ManagementTree()
    for moid, table in template:
        tree.share_instances(moid, table)
    trsp = ClientURI(DMACC, server_id, ("Auth", "Trsp"))
    tree.set(ClientURI(DEVINFO, "", ("DevInfo", "DevID")), dev_id, force=True)
    tree.set(trsp.child("Data"), auth_name, force=True)
    tree.set(trsp.child("Secret"), secret, force=True)
    tree.set(ClientURI(DMACC, server_id, ("Auth", "Noti", "Secret")), _b64(noti_secret), force=True)
    return tree


#: The leaves of the shared standard objects that each tree holds for itself (its DevID
#: and credentials, which :func:`standard_tree` writes in): :class:`~.tree.Own` values.
_OWN_LEAVES: Final = {
    DEVINFO: (("DevInfo", "DevID"),),
    DMACC: (("Auth", "Trsp", "Data"), ("Auth", "Trsp", "Secret"), ("Auth", "Noti", "Secret")),
}


@functools.lru_cache(maxsize=16)
def _template(
    man: str,
    mod: str,
    server_id: str,
    server_uri: str,
    fw_version: str,
    sw_version: str,
    hw_version: str,
    lang: str,
    *,
    dev_type: str,
    oem: str | None,
    noti_data: bytes,
    fumo_instance: str,
    pkg_name: str,
    settings: tuple[tuple[str, Value], ...],
) -> tuple[tuple[str, Mapping[str, Node]], ...]:
    """The standard objects without a device's own values (DevID, credentials), shared,
    as one read-only table of instances per MO (the tables too are shared)."""
    instances = (
        devinfo(
            "",
            man,
            mod,
            fw_version=fw_version,
            sw_version=sw_version,
            hw_version=hw_version,
            lang=lang,
            dev_type=dev_type,
            oem=oem,
        ),
        dmacc(server_id, server_uri, noti_data=noti_data, moids=(DEVINFO, FUMO, EXT)),
        fumo(fumo_instance, pkg_name=pkg_name, pkg_version=fw_version),
        ext(dict(settings)),
    )
    for instance in instances:
        for path in _OWN_LEAVES.get(instance.moid, ()):
            leaf = instance.root
            for name in path:
                assert leaf.children is not None
                leaf = leaf.children[name]
            leaf.value = Own(str(ClientURI(instance.moid, instance.instance, path)))
        instance.root.share()
    return tuple(
        (instance.moid, MappingProxyType({instance.instance: instance.root}))
        for instance in instances
    )
