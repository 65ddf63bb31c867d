"""The lab's certificate authority: TLS everywhere, without asking anyone to install a real CA.

OMA DM 2.0 runs over HTTPS only, so the lab never serves plain HTTP.  `trustme` makes a private
CA and a server certificate in milliseconds; clients trust exactly that CA and nothing else.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

import trustme
from cryptography import x509

__all__ = ["DEFAULT_HOSTS", "LabCA"]

#: Names the server certificate covers: the lab only ever listens on the loopback interface.
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost")

# File names inside a `load_or_create` directory.  `ca.pem` is the only one meant to be shared.
CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"  # private key + certificate chain, the format `load_cert_chain` reads

# Owner read/write only: the two files that hold private keys.
PRIVATE_MODE = 0o600


class LabCA:
    """A throwaway CA plus one server certificate issued by it.

    Build one with `create()` (in memory, for notebooks and tests) or `load_or_create()` (kept on
    disk, for the standalone server).
    """

    def __init__(self, ca: trustme.CA, server_pem: bytes, hosts: Iterable[str]) -> None:
        self._ca = ca
        self._server_pem = server_pem
        self.hosts: tuple[str, ...] = tuple(hosts)

    @classmethod
    def create(cls, hosts: Iterable[str] = DEFAULT_HOSTS) -> LabCA:
        """A fresh CA that lives only as long as this object: nothing is written to disk."""
        hosts = tuple(hosts)
        ca = trustme.CA(organization_name="dmlab")
        return cls(ca, _issue(ca, hosts), hosts)

    @classmethod
    def load_or_create(
        cls, directory: str | os.PathLike[str], hosts: Iterable[str] = DEFAULT_HOSTS
    ) -> LabCA:
        """Reuse the CA kept in `directory`, creating it on first use.

        Restarts must keep the same CA, otherwise every client configured with `DIR/ca.pem`
        would stop trusting the server.  The CA's private key therefore lives beside the lab
        data, readable by the owner only: acceptable for a lab on loopback, never for production,
        where the CA key belongs offline and the server would only hold its own key.

        Existing files are never regenerated.  Only `server.pem` is (re)issued, by the same CA,
        when it is missing or does not cover `hosts`; clients notice nothing.
        """
        directory = Path(directory)
        hosts = tuple(hosts)
        ca_cert, ca_key, server = (
            directory / CA_CERT_FILE,
            directory / CA_KEY_FILE,
            directory / SERVER_FILE,
        )

        if ca_cert.exists() or ca_key.exists():
            if not (ca_cert.exists() and ca_key.exists()):
                # Half a CA: making a new one would silently break the clients that trust the old one.
                raise RuntimeError(
                    f"{directory} holds only one of {CA_CERT_FILE} and {CA_KEY_FILE}; "
                    "restore the missing file or remove both to start a new lab CA"
                )
            ca = trustme.CA.from_pem(ca_cert.read_bytes(), ca_key.read_bytes())
        else:
            directory.mkdir(parents=True, exist_ok=True)
            ca = trustme.CA(organization_name="dmlab")
            _write(ca_key, ca.private_key_pem.bytes(), PRIVATE_MODE)
            _write(ca_cert, ca.cert_pem.bytes(), 0o644)

        server_pem = server.read_bytes() if server.exists() else None
        if server_pem is None or not _covers(server_pem, hosts):
            server_pem = _issue(ca, hosts)
            _write(server, server_pem, PRIVATE_MODE)
        return cls(ca, server_pem, hosts)

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM encoded: what a client needs to trust the lab server."""
        return self._ca.cert_pem.bytes()

    def write_ca(self, path: str | os.PathLike[str]) -> Path:
        """Write the CA certificate (public, no key) for tools such as `curl --cacert`.

        Left alone if it holds these bytes already, and replaced whole otherwise: the
        workers of `serve --workers` start at once, and one must never read the file
        half written by another."""
        path = Path(path)
        if path.exists() and path.read_bytes() == self.ca_pem:
            return path
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_bytes(self.ca_pem)
        os.replace(temp, path)
        return path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the lab certificate; TLS 1.2 or newer only."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # `load_cert_chain` reads files only: trustme's temp file is removed right after.
        with trustme.Blob(self._server_pem).tempfile() as path:
            context.load_cert_chain(path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the lab CA and nothing else, with hostname checking on."""
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cadata=self.ca_pem.decode("ascii")
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def __repr__(self) -> str:
        return f"{type(self).__name__}(hosts={self.hosts!r})"


def _issue(ca: trustme.CA, hosts: tuple[str, ...]) -> bytes:
    return ca.issue_cert(*hosts).private_key_and_cert_chain_pem.bytes()


def _covers(server_pem: bytes, hosts: tuple[str, ...]) -> bool:
    """Whether the leaf certificate (the first in the chain) names every one of `hosts`."""
    leaf = x509.load_pem_x509_certificates(server_pem)[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = set(san.get_values_for_type(x509.DNSName))
    names.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return all(_normalize(host) in names for host in hosts)


def _normalize(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, with `mode` from the first byte: a key is never briefly world-readable."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(temp, mode)  # the umask may have narrowed `mode`; keep it exact
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
        if exc.filename is None:  # a failed write names no file: say which
            exc.filename = str(path)
        raise
