"""A command may name any URL (HGET, HPUT, HPOST, an EXEC's ServerURI): the device's
credentials and OMADM-DevID go to the DM server's own origin and nowhere else."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dmlab.device import VirtualDevice
from dmlab.protocol import media


def _fetch_all(shared: bool, urls: list[str]) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"x", headers={"Content-Type": "text/plain"})

    async def scenario() -> None:
        transport = httpx.MockTransport(server)
        client = httpx.AsyncClient(transport=transport) if shared else None
        device = VirtualDevice(
            "IMEI:1",
            "device-secret",
            "https://dm.example:8443",
            transport=None if shared else transport,
            client=client,
        )
        for url in urls:
            await device.http_get(url)
        await device.http_send("PUT", "https://elsewhere.example/up", b"{}", "application/json")
        await device.aclose()
        if client is not None:
            await client.aclose()

    asyncio.run(scenario())
    return seen


@pytest.mark.parametrize("shared", [False, True], ids=["own-client", "shared-client"])
def test_credentials_go_only_to_the_servers_origin(shared: bool) -> None:
    urls = [
        "/data/1",  # the server's own path
        "https://dm.example:8443/data/2",  # the same origin, spelled out
        "https://files.example/firmware.bin",  # another host
        "https://dm.example/data/3",  # same host, another port (443)
        "http://dm.example:8443/data/4",  # same host and port, another scheme
    ]
    requests = _fetch_all(shared, urls)
    carried = [
        (str(r.url), "authorization" in r.headers, media.DEVID_HEADER.lower() in r.headers)
        for r in requests
    ]
    assert carried == [
        ("https://dm.example:8443/data/1", True, True),
        ("https://dm.example:8443/data/2", True, True),
        ("https://files.example/firmware.bin", False, False),
        ("https://dm.example/data/3", False, False),
        ("http://dm.example:8443/data/4", False, False),
        ("https://elsewhere.example/up", False, False),
    ]
