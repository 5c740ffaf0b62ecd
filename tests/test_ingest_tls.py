"""TLS ingest limits against a real daemon: client certificates checked against a CA and an
allow-list, handshakes timed out and counted against `max_connections`, each refusal counted."""
from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerProcess, metric, require_tool, send_tcp

x509 = pytest.importorskip("cryptography.x509")  # test-only dependency ([test] extra)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

LINE = b"<165>1 2025-01-30T12:00:00Z web-1 app - - - over tls\n"


def _issue(directory: Path, name: str, issuer: tuple[Any, Any] | None, *, ca: bool = False,
           dns: str | None = None) -> tuple[Path, Path, tuple[Any, Any]]:
    """A certificate for CN=`name` (signed by `issuer`, else self-signed) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, (cert, key)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    """A CA; a server certificate; clients `web-1` (allowed), `intruder` (same CA, not allowed),
    `stranger` (self-signed); `web-2` is allowed by its DNS subjectAltName only."""
    ca_cert, ca_key, ca = _issue(tmp_path, "test-ca", None, ca=True)
    files = {"ca": (ca_cert, ca_key)}
    files["server"] = _issue(tmp_path, "localhost", ca, dns="localhost")[:2]
    files["web-1"] = _issue(tmp_path, "web-1", ca)[:2]
    files["web-2"] = _issue(tmp_path, "other-cn", ca, dns="web-2.example.org")[:2]
    files["intruder"] = _issue(tmp_path, "intruder", ca)[:2]
    files["stranger"] = _issue(tmp_path, "stranger", None)[:2]
    return files


def tls_config(pki: dict[str, tuple[Path, Path]], extra: str = "", allowed: str = '["web-1", "web-2.example.org"]') -> str:
    cert, key = pki["server"]
    return (f'[ingest.tls]\nlisten = "127.0.0.1:0"\ncert = "{cert}"\nkey = "{key}"\n'
            f'client_ca = "{pki["ca"][0]}"\nallowed_clients = {allowed}\n{extra}')


def send_tls(server: ServerProcess, pki: dict[str, tuple[Path, Path]], client: str | None, data: bytes) -> None:
    """Send `data` as `client` (None: no certificate). Under TLS 1.3 the client's side of the
    handshake ends before the server has seen its certificate, so a refusal may not show here at
    all: what the daemon made of it is read from STATS."""
    context = ssl.create_default_context(cafile=str(pki["ca"][0]))
    if client is not None:
        context.load_cert_chain(*map(str, pki[client]))
    try:
        with socket.create_connection(server.address("tls"), timeout=30) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(data)
    except (ssl.SSLError, OSError):
        pass


def test_client_certificates_are_checked_against_the_ca_and_the_allow_list(start_server, pki) -> None:
    server = start_server(tls_config(pki))
    send_tls(server, pki, "web-1", LINE * 3)
    assert server.wait_received(3)["received"] == 3
    for client in (None, "stranger", "intruder"):
        send_tls(server, pki, client, LINE * 5)
    send_tls(server, pki, "web-2", LINE * 2)  # allowed by its DNS subjectAltName
    report = server.wait_stats(lambda r: r["connections"]["refused"] == 3 and r["received"] == 5)
    # Nothing the refused clients sent is counted as received: their connections never opened.
    assert report["received"] == 5 and report["parsed"] == 5
    assert report["connections"]["refused_by"] == {"handshake_failed": 2, "client_not_allowed": 1}
    assert report["connections"]["total"] == 5 and report["connections"]["handshaking"] == 0
    refusals = [e for e in server.logs if e.get("event") == "connection_refused"]
    assert [e["reason"] for e in refusals].count("handshake_failed") == 2
    assert next(e for e in refusals if e["reason"] == "client_not_allowed")["client"] == ["intruder"]
    metrics = server.command("METRICS")["metrics"]
    assert metric(metrics, "logtally_connections_refused_total", reason="client_not_allowed") == 1
    assert metric(metrics, "logtally_connections_refused_total", reason="handshake_failed") == 2


def test_openssl_s_client_with_an_allowed_certificate(start_server, pki) -> None:
    openssl = require_tool("openssl")
    server = start_server(tls_config(pki))
    host, port = server.address("tls")
    cert, key = pki["web-1"]
    subprocess.run([openssl, "s_client", "-connect", f"{host}:{port}", "-cert", str(cert), "-key", str(key),
                    "-CAfile", str(pki["ca"][0]), "-quiet", "-no_ign_eof"], input=LINE * 4, capture_output=True, timeout=60)
    assert server.wait_received(4)["received"] == 4
    out = subprocess.run([openssl, "s_client", "-connect", f"{host}:{port}", "-CAfile", str(pki["ca"][0]),
                          "-quiet", "-no_ign_eof"], input=LINE, capture_output=True, timeout=60)
    report = server.wait_stats(lambda r: r["connections"]["refused"] == 1)
    assert report["connections"]["refused_by"] == {"handshake_failed": 1}, out.stderr
    assert report["received"] == 4


def test_handshakes_count_against_max_connections(start_server, pki) -> None:
    server = start_server(tls_config(pki, "handshake_timeout_s = 3600\n") + "[ingest]\nmax_connections = 1\n")
    with socket.create_connection(server.address("tls"), timeout=30) as silent:  # connects, never says hello
        report = server.wait_stats(lambda r: r["connections"]["handshaking"] == 1)
        assert report["connections"]["open"] == 1
        send_tcp(server.address("tcp"), b"refused line\n")  # the one slot is the handshake's
        report = server.wait_stats(lambda r: r["connections"]["refused"] == 1)
        assert report["connections"]["refused_by"] == {"max_connections": 1}
    report = server.wait_stats(lambda r: r["connections"]["open"] == 0)
    assert report["connections"]["refused_by"] == {"max_connections": 1, "handshake_failed": 1}
    send_tcp(server.address("tcp"), b"counted line\n")
    assert server.wait_received(1)["received"] == 1


def test_a_handshake_that_never_ends_is_closed_at_the_timeout(start_server, pki) -> None:
    server = start_server(tls_config(pki, "handshake_timeout_s = 0.3\n"))
    with socket.create_connection(server.address("tls"), timeout=30) as silent:
        silent.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
        try:
            assert silent.recv(1) == b""  # the daemon closed it
        except ConnectionResetError:
            pass
    report = server.wait_stats(lambda r: r["connections"]["refused"] == 1)
    assert report["connections"]["refused_by"] == {"handshake_timeout": 1}
    assert report["connections"]["open"] == 0 and report["connections"]["handshaking"] == 0
    assert server.wait_log("connection_refused")["reason"] == "handshake_timeout"
    send_tls(server, pki, "web-1", LINE)  # the listener still serves
    assert server.wait_received(1)["received"] == 1


def test_allowed_clients_need_client_ca(start_server, pki) -> None:
    cert, key = pki["server"]
    with pytest.raises(AssertionError, match="ingest.tls.allowed_clients needs ingest.tls.client_ca"):
        start_server(f'[ingest.tls]\nlisten = "127.0.0.1:0"\ncert = "{cert}"\nkey = "{key}"\nallowed_clients = ["x"]\n')


def test_readme_tls_blocks(start_server, tmp_path: Path) -> None:
    """The README's `[ingest.tls]` block and its `openssl s_client` line, as written but for paths and ports."""
    from tests.test_readme_shippers import block_with

    openssl = require_tool("openssl")
    _, _, ca = _issue(tmp_path, "clients-ca", None, ca=True)
    _issue(tmp_path, "server", ca, dns="localhost")
    _issue(tmp_path, "web-1.example.org", ca)
    (tmp_path / "web-1.crt").write_bytes((tmp_path / "web-1.example.org.crt").read_bytes())
    (tmp_path / "web-1.key").write_bytes((tmp_path / "web-1.example.org.key").read_bytes())
    (tmp_path / "server-ca.crt").write_bytes((tmp_path / "clients-ca.crt").read_bytes())
    toml = block_with('client_ca = "/etc/logtally/clients-ca.crt"')
    toml = toml.replace("/etc/logtally/", f"{tmp_path}/").replace("0.0.0.0:6514", "127.0.0.1:0")
    server = start_server(toml)
    (tmp_path / "app.log").write_bytes(LINE * 7)
    host, port = server.address("tls")
    command = block_with("-no_ign_eof -connect logs.example.org:6514").replace("\\\n", " ")
    command = command.replace("openssl ", f"{openssl} ", 1).replace("logs.example.org:6514", f"{host}:{port}")
    subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, timeout=60, check=True)
    assert server.wait_received(7)["received"] == 7


def test_sighup_applies_a_new_allow_list_to_the_next_connection(start_server, pki) -> None:
    import signal

    server = start_server(tls_config(pki, allowed='["web-1"]'))
    send_tls(server, pki, "intruder", LINE)
    server.wait_stats(lambda r: r["connections"]["refused"] == 1)
    server.config_path.write_text(server.config_path.read_text().replace('["web-1"]', '["intruder"]'))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    send_tls(server, pki, "intruder", LINE * 2)
    send_tls(server, pki, "web-1", LINE)
    report = server.wait_stats(lambda r: r["connections"]["refused"] == 2 and r["received"] == 2)
    assert report["received"] == 2
    assert report["connections"]["refused_by"] == {"client_not_allowed": 2}


def test_sighup_reads_the_tls_files_again(start_server, pki) -> None:
    """A client CA added on SIGHUP applies to the next connection: no certificate, no entry."""
    import signal

    server = start_server(tls_config(pki).replace(f'client_ca = "{pki["ca"][0]}"\n', "").replace(
        'allowed_clients = ["web-1", "web-2.example.org"]\n', ""))
    send_tls(server, pki, None, LINE)
    assert server.wait_stats(lambda r: r["received"] == 1)["received"] == 1
    server.config_path.write_text(server.config_path.read_text().replace(
        "[ingest.tls]\n", f'[ingest.tls]\nclient_ca = "{pki["ca"][0]}"\n'))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    send_tls(server, pki, None, LINE)
    send_tls(server, pki, "web-1", LINE)
    report = server.wait_stats(lambda r: r["connections"]["refused"] == 1 and r["received"] == 2)
    assert report["received"] == 2 and report["connections"]["refused_by"] == {"handshake_failed": 1}
    server.wait_log("tls_reloaded")


def test_senders_shows_the_tls_client_identity(start_server, pki) -> None:
    server = start_server(tls_config(pki))
    context = ssl.create_default_context(cafile=str(pki["ca"][0]))
    context.load_cert_chain(*map(str, pki["web-2"]))
    with socket.create_connection(server.address("tls"), timeout=30, source_address=("127.0.0.6", 0)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(LINE * 2)
    send_tcp(server.address("tcp"), LINE)  # plain TCP from 127.0.0.1: no identity
    assert server.wait_received(3)["received"] == 3
    rows = {row["peer"]: row for row in server.command("SENDERS")["senders"]}
    assert rows["127.0.0.6"]["tls_client"] == ["other-cn", "web-2.example.org"]
    assert rows["127.0.0.6"]["lines"] == 2 and rows["127.0.0.6"]["bytes"] == 2 * len(LINE)
    assert rows["127.0.0.1"]["tls_client"] is None and rows["127.0.0.1"]["lines"] == 1
