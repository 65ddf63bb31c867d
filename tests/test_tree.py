"""The management tree: ClientURIs, ACLs, permanence, wildcards and listeners."""

from __future__ import annotations

import base64
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmlab.device import (
    DEVINFO,
    DMACC,
    EXT,
    FUMO,
    AlreadyExists,
    ClientURI,
    InvalidURI,
    InvalidValue,
    ManagementTree,
    Node,
    NodeNotFound,
    NotAllowed,
    PermissionDenied,
    TreeError,
    dmacc,
    fumo,
    standard_tree,
)
from dmlab.device.objects import noti_credentials

FWV = f"{DEVINFO}//DevInfo/FwV"
SETTINGS = f"{EXT}//Settings"


@pytest.fixture
def tree() -> ManagementTree:
    return standard_tree(
        "IMEI:490154203237518",
        "Acme",
        "Phone 1",
        "lab-server",
        "https://dm.example/",
        secret="s3cret",
        noti_secret=b"n0tif",
        noti_data=b"auth-data",
        settings={"Interval": 60},
    )


# -- ClientURI -------------------------------------------------------------


def test_parse_client_uris() -> None:
    assert ClientURI.parse(f"{FUMO}/fw1/State") == ClientURI(FUMO, "fw1", ("State",))
    assert ClientURI.parse(FWV) == ClientURI(DEVINFO, "", ("DevInfo", "FwV"))
    assert ClientURI.parse(f"{DEVINFO}//") == ClientURI(DEVINFO, "")
    assert ClientURI.parse(f"{FUMO}/fw1") == ClientURI(FUMO, "fw1")
    assert ClientURI.parse(f"{FUMO}/*/State").wildcard
    assert ClientURI.parse(f"{EXT}//Settings/") == ClientURI(EXT, "", ("Settings",))


def test_canonical_form() -> None:
    assert str(ClientURI.parse(FWV)) == FWV
    assert str(ClientURI.of(DEVINFO, "")) == f"{DEVINFO}//"
    assert str(ClientURI.parse(f"{FUMO}/fw1")) == f"{FUMO}/fw1/"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "State",
        "urn:oma:mo:oma-fumo:1.0",  # no instance part at all
        "http://example/fw1/State",  # an MOID is a URN
        f"{FUMO}/fw1//State",  # empty segment
        f"{FUMO}/fw1/State//",
        f"{FUMO}/fw1/../State",
        f"{FUMO}/fw1/*",  # '*' only as instance
        f"{FUMO}/f*w/State",
        f"{FUMO}/fw 1/State",
        "urn:x y/a/b",
    ],
)
def test_bad_client_uris_are_400(text: str) -> None:
    with pytest.raises(InvalidURI) as info:
        ClientURI.parse(text)
    assert info.value.status == 400


names = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="/*"
    ),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", "..") and not any(c.isspace() for c in s))


@given(instance=st.one_of(st.just(""), st.just("*"), names), path=st.lists(names, max_size=4))
def test_parse_round_trips(instance: str, path: list[str]) -> None:
    uri = ClientURI(FUMO, instance, tuple(path))
    assert ClientURI.parse(str(uri)) == uri


def test_tree_errors_carry_status_codes() -> None:
    codes = {
        cls: cls.status
        for cls in (
            InvalidURI,
            InvalidValue,
            PermissionDenied,
            NodeNotFound,
            NotAllowed,
            AlreadyExists,
        )
    }
    assert codes == {
        InvalidURI: 400,
        InvalidValue: 400,
        PermissionDenied: 403,
        NodeNotFound: 404,
        NotAllowed: 405,
        AlreadyExists: 409,
    }
    assert all(issubclass(cls, TreeError) for cls in codes)


# -- nodes -----------------------------------------------------------------


def test_node_shapes() -> None:
    leaf = Node.leaf("A", 1, acl="rw")
    assert leaf.is_leaf and leaf.acl == frozenset("rw")
    parent = Node.interior("P", leaf)
    assert not parent.is_leaf and parent.children == {"A": leaf}
    with pytest.raises(ValueError):
        leaf.add(Node.leaf("B"))
    with pytest.raises(ValueError):
        Node("bad", acl=frozenset("rq"))
    with pytest.raises(ValueError):
        Node("both", value="v", children={})
    with pytest.raises(InvalidValue):
        Node.leaf("float", 1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        Node.leaf("bool", True)
    with pytest.raises(InvalidURI):
        parent.add(Node.leaf("a/b"))


# -- GET -------------------------------------------------------------------


def test_get_leaf_and_subtree(tree: ManagementTree) -> None:
    assert tree.get(FWV) == "1.0.0"
    assert tree.get(f"{DEVINFO}//DevInfo/DmV") == "2.0"
    assert tree.get(f"{FUMO}/fw1/State") == 10
    info = tree.get(f"{DEVINFO}//")
    assert list(info) == ["DevInfo"]
    assert info["DevInfo"]["DevID"] == "IMEI:490154203237518"
    assert list(info["DevInfo"]) == [
        "DevID",
        "Man",
        "Mod",
        "DmV",
        "Lang",
        "DevType",
        "OEM",
        "FwV",
        "SwV",
        "HwV",
    ]


def test_dmacc_is_the_dm20_account_and_omits_unreadable_nodes(tree: ManagementTree) -> None:
    # Issue 17 point 4: urn:oma:mo:oma-dm-dmacc:1.2 with SrvID, SrvURI, Name, Perm and
    # Auth/Noti/{Type, Data, Secret}; Perm is never readable, secrets are write-only.
    assert DMACC == "urn:oma:mo:oma-dm-dmacc:1.2"
    account = tree.get(f"{DMACC}/lab-server/")
    assert account == {
        "SrvID": "lab-server",
        "SrvURI": "https://dm.example/",
        "Name": "lab-server",
        "Auth": {
            "Noti": {"Type": 1, "Data": base64.b64encode(b"auth-data").decode()},
            "Trsp": {"Data": ""},
        },
    }
    assert "s3cret" not in repr(account) and "n0tif" not in repr(account)
    perm = tree.get(f"{DMACC}/lab-server/Perm", force=True)
    assert perm["1"] == {"MOID": DEVINFO}
    assert noti_credentials(tree, "lab-server") == (b"n0tif", b"auth-data")
    assert noti_credentials(tree, "no-such-server") is None


def test_credentials_are_not_readable(tree: ManagementTree) -> None:
    for path in ("Auth/Trsp/Secret", "Auth/Noti/Secret", "Perm", "Perm/1/MOID"):
        with pytest.raises(PermissionDenied) as info:
            tree.get(f"{DMACC}/lab-server/{path}")
        assert info.value.status == 403
    # ... but the device itself reads them
    assert tree.get(f"{DMACC}/lab-server/Auth/Trsp/Secret", force=True) == "s3cret"
    noti = tree.get(f"{DMACC}/lab-server/", force=True)["Auth"]["Noti"]
    assert noti["Secret"] == base64.b64encode(b"n0tif").decode()


def test_get_missing_is_404(tree: ManagementTree) -> None:
    for uri in (
        f"{FUMO}/fw2/State",
        f"{FUMO}/fw1/Nope",
        "urn:oma:mo:nothing:1.0//x",
        f"{FWV}/deeper",
    ):
        with pytest.raises(NodeNotFound):
            tree.get(uri)


def test_wildcard_get_reads_every_instance(tree: ManagementTree) -> None:
    tree.add_instance(*fumo("fw2", pkg_version="0.9"))
    assert tree.get(f"{FUMO}/*/PkgVersion") == {"fw1": "1.0.0", "fw2": "0.9"}
    assert set(tree.get(f"{FUMO}/*/")) == {"fw1", "fw2"}
    assert tree.get(f"{DEVINFO}/*/DevInfo/Man") == {"": "Acme"}
    tree.set(f"{FUMO}/fw2/State", 40, force=True)
    assert tree.get(f"{FUMO}/*/State") == {"fw1": 10, "fw2": 40}


def test_wildcard_skips_instances_without_the_node(tree: ManagementTree) -> None:
    root = Node.interior("odd", Node.leaf("Extra", "yes"))
    tree.add_instance(FUMO, "odd", root)
    assert tree.get(f"{FUMO}/*/Extra") == {"odd": "yes"}
    with pytest.raises(NodeNotFound):
        tree.get(f"{FUMO}/*/Missing")
    with pytest.raises(NodeNotFound):
        tree.get("urn:oma:mo:unknown:1.0/*/x")


def test_wildcard_respects_acls(tree: ManagementTree) -> None:
    tree.add_instance(*dmacc("other", "https://other/", secret="x"))
    assert tree.get(f"{DMACC}/*/SrvURI") == {
        "lab-server": "https://dm.example/",
        "other": "https://other/",
    }
    with pytest.raises(PermissionDenied):
        tree.get(f"{DMACC}/*/Auth/Trsp/Secret")


def test_wildcard_is_only_for_reading(tree: ManagementTree) -> None:
    for call in (
        lambda: tree.set(f"{FUMO}/*/Download/PkgURL", "x"),
        lambda: tree.delete(f"{EXT}/*/Settings/Interval"),
        lambda: tree.node(f"{FUMO}/*/State"),
    ):
        with pytest.raises(InvalidURI):
            call()


# -- SET -------------------------------------------------------------------


def test_set_needs_write(tree: ManagementTree) -> None:
    tree.set(f"{FUMO}/fw1/Download/PkgURL", "https://dl/pkg")
    assert tree.get(f"{FUMO}/fw1/Download/PkgURL") == "https://dl/pkg"
    for uri in (FWV, f"{FUMO}/fw1/State", f"{DMACC}/lab-server/SrvURI"):
        with pytest.raises(PermissionDenied):
            tree.set(uri, "hacked")
    assert tree.get(FWV) == "1.0.0"


def test_force_bypasses_acls(tree: ManagementTree) -> None:
    tree.set(FWV, "2.0.0", force=True)
    tree.set(f"{FUMO}/fw1/State", 30, force=True)
    assert tree.get(FWV) == "2.0.0"
    assert tree.get(f"{FUMO}/fw1/State") == 30


def test_write_only_secret_can_be_rotated_not_read(tree: ManagementTree) -> None:
    tree.set(f"{DMACC}/lab-server/Auth/Trsp/Secret", "new")
    assert tree.get(f"{DMACC}/lab-server/Auth/Trsp/Secret", force=True) == "new"


def test_set_creates_leaves_under_writable_interior(tree: ManagementTree) -> None:
    tree.set(f"{SETTINGS}/Mode", "eco")
    assert tree.get(SETTINGS) == {"Interval": 60, "Mode": "eco"}
    node = tree.node(f"{SETTINGS}/Mode")
    assert node.acl == frozenset("rw") and not node.permanent


def test_set_create_false_and_missing_parents(tree: ManagementTree) -> None:
    with pytest.raises(NodeNotFound):
        tree.set(f"{SETTINGS}/Mode", "eco", create=False)
    with pytest.raises(NodeNotFound):
        tree.set(f"{SETTINGS}/No/Such", "x")  # only the last name may be created
    with pytest.raises(NodeNotFound):
        tree.set(f"{SETTINGS}/Interval/Sub", "x")  # under a leaf


def test_set_cannot_create_under_read_only_interior(tree: ManagementTree) -> None:
    with pytest.raises(PermissionDenied):
        tree.set(f"{DEVINFO}//DevInfo/Extra", "x")
    with pytest.raises(PermissionDenied):
        tree.set(f"{FUMO}/fw1/Download/Extra", "x")  # r and x, no w


def test_set_mapping_builds_subtree(tree: ManagementTree) -> None:
    tree.set(f"{SETTINGS}/Net", {"APN": "lab", "Ports": {"Http": 80}})
    assert tree.get(f"{SETTINGS}/Net/Ports/Http") == 80
    assert tree.get(SETTINGS)["Net"] == {"APN": "lab", "Ports": {"Http": 80}}
    tree.set(f"{SETTINGS}/Net", "flat")  # another shape replaces a non-permanent node
    assert tree.get(f"{SETTINGS}/Net") == "flat"


def test_permanent_nodes_keep_their_shape(tree: ManagementTree) -> None:
    with pytest.raises(NotAllowed):
        tree.set(SETTINGS, "flat")
    with pytest.raises(NotAllowed):
        tree.set(f"{FUMO}/fw1/Update/PkgData", {"a": "b"})
    with pytest.raises(NotAllowed):
        tree.set(f"{EXT}//", {"a": "b"}, force=True)


def test_set_rejects_bad_values_and_names(tree: ManagementTree) -> None:
    with pytest.raises(InvalidValue):
        tree.set(f"{SETTINGS}/F", 1.5)
    with pytest.raises(InvalidValue):
        tree.set(f"{SETTINGS}/F", [1, 2])
    with pytest.raises(InvalidURI):
        tree.set(f"{SETTINGS}/F", {"a/b": 1})
    assert "F" not in tree.get(SETTINGS)


# -- DELETE ----------------------------------------------------------------


def test_delete(tree: ManagementTree) -> None:
    tree.set(f"{SETTINGS}/Net", {"APN": "lab"})
    tree.delete(f"{SETTINGS}/Net")
    tree.delete(f"{SETTINGS}/Interval")
    assert tree.get(SETTINGS) == {}
    with pytest.raises(NodeNotFound):
        tree.delete(f"{SETTINGS}/Interval")


def test_delete_permanent_is_405_before_acl(tree: ManagementTree) -> None:
    for uri in (FWV, f"{FUMO}/fw1/Download/PkgURL", SETTINGS, f"{DEVINFO}//"):
        with pytest.raises(NotAllowed) as info:
            tree.delete(uri)
        assert info.value.status == 405


def test_delete_needs_write(tree: ManagementTree) -> None:
    tree.add_instance(EXT, "ro", Node.interior("ro", Node.leaf("Fixed", "x")))
    with pytest.raises(PermissionDenied):
        tree.delete(f"{EXT}/ro/Fixed")
    tree.delete(f"{EXT}/ro/Fixed", force=True)
    with pytest.raises(PermissionDenied):
        tree.delete(f"{EXT}/ro/")
    tree.delete(f"{EXT}/ro/", force=True)
    assert tree.instances(EXT) == [""]


# -- instances, iteration --------------------------------------------------


def test_instances(tree: ManagementTree) -> None:
    assert tree.moids() == [DEVINFO, DMACC, FUMO, EXT]
    assert tree.instances(FUMO) == ["fw1"]
    assert tree.instances("urn:oma:mo:none:1.0") == []
    with pytest.raises(AlreadyExists):
        tree.add_instance(*fumo("fw1"))
    with pytest.raises(InvalidURI):
        tree.add_instance(FUMO, "*", Node.interior("*"))
    tree.remove_instance(FUMO, "fw1")
    assert tree.instances(FUMO) == []
    with pytest.raises(NodeNotFound):
        tree.remove_instance(FUMO, "fw1")


def test_iteration_and_contains(tree: ManagementTree) -> None:
    leaves = dict(tree)
    assert leaves[FWV] == "1.0.0"
    assert leaves[f"{FUMO}/fw1/State"] == 10
    assert leaves[f"{DMACC}/lab-server/Auth/Trsp/Secret"] == "s3cret"  # device side: no ACLs
    assert leaves[f"{SETTINGS}/Interval"] == 60
    assert len(leaves) == 10 + 11 + 6 + 1
    assert FWV in tree and f"{FWV}/x" not in tree and "junk" not in tree and 3 not in tree


def test_check(tree: ManagementTree) -> None:
    tree.check(FWV, "r")
    tree.check(f"{SETTINGS}/New", "w")  # creatable
    tree.check(f"{FUMO}/fw1/Update", "x")
    with pytest.raises(PermissionDenied):
        tree.check(FWV, "w")
    with pytest.raises(NodeNotFound):
        tree.check(f"{SETTINGS}/New", "r")
    with pytest.raises(PermissionDenied):
        tree.check(f"{DEVINFO}//DevInfo/New", "w")


# -- listeners -------------------------------------------------------------


def test_listeners_see_changes_under_their_prefix(tree: ManagementTree) -> None:
    seen: list[str] = []
    tree.subscribe(SETTINGS, seen.append)
    tree.set(f"{SETTINGS}/Interval", 30)
    tree.set(f"{SETTINGS}/Interval", 30)  # not a change
    tree.set(f"{SETTINGS}/Mode", "eco")
    tree.delete(f"{SETTINGS}/Mode")
    tree.set(f"{FUMO}/fw1/State", 30, force=True)  # elsewhere
    assert seen == [f"{SETTINGS}/Interval", f"{SETTINGS}/Mode", f"{SETTINGS}/Mode"]


def test_prefix_matches_whole_names(tree: ManagementTree) -> None:
    seen: list[str] = []
    tree.subscribe(f"{SETTINGS}/A", seen.append)
    tree.set(f"{SETTINGS}/AB", 1)
    tree.set(f"{SETTINGS}/A", 1)
    assert seen == [f"{SETTINGS}/A"]


def test_listener_sees_ancestor_deleted(tree: ManagementTree) -> None:
    tree.set(f"{SETTINGS}/Net", {"APN": "lab"})
    seen: list[str] = []
    tree.subscribe(f"{SETTINGS}/Net/APN", seen.append)
    tree.delete(f"{SETTINGS}/Net")
    assert seen == [f"{SETTINGS}/Net"]


def test_wildcard_listener_and_unsubscribe(tree: ManagementTree) -> None:
    tree.add_instance(*fumo("fw2"))
    seen: list[str] = []
    tree.subscribe(f"{FUMO}/*/State", seen.append)
    tree.set(f"{FUMO}/fw1/State", 30, force=True)
    tree.set(f"{FUMO}/fw2/State", 30, force=True)
    assert tree.unsubscribe(f"{FUMO}/*/State", seen.append)
    assert not tree.unsubscribe(f"{FUMO}/*/State", seen.append)
    tree.set(f"{FUMO}/fw1/State", 40, force=True)
    assert seen == [f"{FUMO}/fw1/State", f"{FUMO}/fw2/State"]


def test_failing_listener_does_not_break_the_write(tree: ManagementTree) -> None:
    seen: list[str] = []

    def broken(uri: str) -> None:
        raise RuntimeError("boom")

    tree.subscribe(SETTINGS, broken)
    tree.subscribe(SETTINGS, seen.append)
    tree.set(f"{SETTINGS}/Interval", 5)
    assert tree.get(f"{SETTINGS}/Interval") == 5
    assert seen == [f"{SETTINGS}/Interval"]


def test_listener_may_read_the_tree(tree: ManagementTree) -> None:
    values: list[object] = []
    tree.subscribe(SETTINGS, lambda uri: values.append(tree.get(uri)))
    tree.set(f"{SETTINGS}/Interval", 7)
    assert values == [7]


def test_concurrent_writers() -> None:
    tree = ManagementTree()
    tree.add_instance(EXT, "", Node.interior("", Node.interior("Settings", acl="rw")))
    count: list[str] = []
    tree.subscribe(f"{EXT}//Settings", count.append)

    def writer(n: int) -> None:
        for i in range(200):
            tree.set(f"{EXT}//Settings/W{n}", i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tree.get(f"{EXT}//Settings") == {f"W{n}": 199 for n in range(8)}
    assert len(count) == 8 * 200


# -- shared nodes (copy on write) -------------------------------------------


def _twin(dev_id: str, secret: str) -> ManagementTree:
    return standard_tree(
        dev_id,
        "Acme",
        "Phone 1",
        "lab-server",
        "https://dm.example/",
        auth_name=dev_id,
        secret=secret,
        settings={"Interval": 60},
    )


def test_standard_trees_share_their_common_nodes() -> None:
    """A fleet's trees hold one copy of what they have in common (issue 15: 100,000
    devices in under 1 GiB); each keeps its own DevID and credentials."""
    a, b = _twin("IMEI:1", "secret-a"), _twin("IMEI:2", "secret-b")
    assert a.node(f"{FUMO}/fw1/State") is b.node(f"{FUMO}/fw1/State")
    assert a.node(FWV) is b.node(FWV)
    assert a.get(f"{DEVINFO}//DevInfo/DevID") == "IMEI:1"
    assert b.get(f"{DEVINFO}//DevInfo/DevID") == "IMEI:2"
    trsp = f"{DMACC}/lab-server/Auth/Trsp"
    assert (a.get(f"{trsp}/Data", force=True), a.get(f"{trsp}/Secret", force=True)) == (
        "IMEI:1",
        "secret-a",
    )
    assert b.get(f"{trsp}/Secret", force=True) == "secret-b"


def test_a_write_to_a_shared_node_is_the_writers_own() -> None:
    """Every way a tree changes (set a leaf, create, replace, delete, attach) changes
    only that tree; the others keep the shared node."""
    a, b = _twin("IMEI:1", "a"), _twin("IMEI:2", "b")
    before = b.get(f"{FUMO}/fw1", force=True)
    a.set(f"{FUMO}/fw1/State", 40, force=True)
    a.set(FWV, "2.0.0", force=True)
    a.set(f"{FUMO}/fw1/Download/PkgURL", "https://fw.example/2.0.0")
    a.set(f"{SETTINGS}/Mode", "eco")
    a.set(f"{EXT}//Downloads/1", {"k": "v"})
    a.delete(f"{SETTINGS}/Interval")
    a.attach(f"{FUMO}/fw1", Node.leaf("Extra", 1))
    assert a.get(f"{FUMO}/fw1/State") == 40 and a.get(FWV) == "2.0.0"
    assert a.get(SETTINGS) == {"Mode": "eco"} and a.get(f"{FUMO}/fw1/Extra") == 1
    assert b.get(f"{FUMO}/fw1", force=True) == before
    assert b.get(FWV) == "1.0.0" and b.get(SETTINGS) == {"Interval": 60}
    assert b.get(f"{EXT}//Downloads") == {}
    # What a did not write is still shared, and a new tree starts from the original.
    assert a.node(f"{FUMO}/fw1/PkgName") is b.node(f"{FUMO}/fw1/PkgName")
    assert _twin("IMEI:3", "c").get(FWV) == "1.0.0"


def test_standard_trees_share_the_instance_tables_they_do_not_change() -> None:
    """Each MO's table of instances is shared too until a tree changes it (issue 15:
    about 0.4 KiB a device); adding or removing an instance changes that tree alone."""
    a, b = _twin("IMEI:1", "a"), _twin("IMEI:2", "b")
    assert a._mos[FUMO] is b._mos[FUMO] and a._mos[EXT] is b._mos[EXT]
    # DevID and the credentials are each tree's own values, not copies of the nodes.
    assert a._mos[DEVINFO] is b._mos[DEVINFO] and a._mos[DMACC] is b._mos[DMACC]
    a.add_instance(FUMO, "fw2", fumo("fw2").root)
    b.remove_instance(EXT, "")
    assert a.instances(FUMO) == ["fw1", "fw2"] and b.instances(FUMO) == ["fw1"]
    assert EXT not in b.moids() and a.get(SETTINGS) == {"Interval": 60}
    assert _twin("IMEI:3", "c").instances(FUMO) == ["fw1"] and EXT in _twin("IMEI:4", "d").moids()
    with pytest.raises(ValueError, match="shared interior roots"):
        ManagementTree().share_instances(FUMO, {"fw1": fumo("fw1").root})
    with pytest.raises(NodeNotFound):
        a.remove_instance("urn:oma:mo:none:1.0", "x")


def test_a_trees_own_values_copy_no_shared_node() -> None:
    """DevID and the credentials sit in shared leaves whose value each tree holds itself
    (``Own``): writing them copies nothing (2 KiB a device did, issue 15), and every read
    (get, a subtree, iteration, listeners) sees the tree's own value."""
    a, b = _twin("IMEI:1", "secret-a"), _twin("IMEI:2", "secret-b")
    dev_id, secret = f"{DEVINFO}//DevInfo/DevID", f"{DMACC}/lab-server/Auth/Trsp/Secret"
    assert a.node(dev_id) is b.node(dev_id) and a.node(secret) is b.node(secret)
    assert a.get(f"{DEVINFO}//DevInfo")["DevID"] == "IMEI:1"
    assert dict(a)[dev_id] == "IMEI:1" and dict(b)[secret] == "secret-b"
    changed: list[str] = []
    a.subscribe(f"{DMACC}/lab-server/Auth", changed.append)
    a.set(secret, "rotated")  # a server may rotate a secret (w), never read it
    a.set(secret, "rotated")  # not a change: no listener call
    assert changed == [secret] and a.get(secret, force=True) == "rotated"
    assert b.get(secret, force=True) == "secret-b" and a.node(secret) is b.node(secret)
    with pytest.raises(PermissionDenied):
        a.get(secret)
    # A change of shape on the way to own values is copy on write, as everywhere.
    noti = f"{DMACC}/lab-server/Auth/Noti"
    a.delete(noti, force=True)
    assert noti + "/Secret" not in a and noti + "/Secret" in b
    assert a.get(secret, force=True) == "rotated"
    # A tree that never sets an own value reads nothing there.
    bare = ManagementTree()
    bare.share_instances(DEVINFO, a._mos[DEVINFO])
    assert bare.get(dev_id) is None


def test_a_shared_node_refuses_changes_in_place() -> None:
    shared = Node.interior("S", Node.leaf("A", 1)).share()
    assert shared.shared and shared.children is not None and shared.children["A"].shared
    with pytest.raises(ValueError, match="shared"):
        shared.add(Node.leaf("B", 2))
