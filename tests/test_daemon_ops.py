"""Running it for real: sd_notify, socket activation, snapshots across restarts, SIGHUP, metrics."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, metric, send_tcp


def app_lines(n: int, level: str = "INFO") -> bytes:
    return b"".join(b"2025-01-30 12:00:%02d %s [api] request %d\n" % (i % 60, level.encode(), i) for i in range(n))


def recv_notify(sock: socket.socket, want: str, timeout: float = 20.0) -> list[str]:
    """Datagrams until one holds the line `want`; returns every line seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            break
        seen += data.split("\n")
        if want in seen:
            return seen
    raise AssertionError(f"no {want!r} in {seen}")


def test_sd_notify_ready_reloading_stopping(start_server, tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(path)
    server = start_server(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    lines = recv_notify(notify, "READY=1")
    assert any(line.startswith("STATUS=") for line in lines)
    recv_notify(notify, "WATCHDOG=1", timeout=5)  # every WATCHDOG_USEC / 2
    server.proc.send_signal(signal.SIGHUP)
    lines = recv_notify(notify, "RELOADING=1")
    assert any(line.startswith("MONOTONIC_USEC=") for line in lines)
    recv_notify(notify, "READY=1")
    server.proc.send_signal(signal.SIGTERM)
    recv_notify(notify, "STOPPING=1")
    assert server.stop() == 0
    notify.close()


def test_abstract_notify_socket(start_server) -> None:
    name = f"logtally-test-{os.getpid()}-{time.monotonic_ns()}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + name)
    start_server(env={"NOTIFY_SOCKET": "@" + name})
    recv_notify(notify, "READY=1")
    notify.close()


# Does what systemd does for a socket unit: listening fds at 3, 4, ... and LISTEN_* naming them.
LAUNCHER = """
import os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i, inheritable=True)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_FDNAMES"] = sys.argv[2]
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[3], sys.argv[3:])
"""


def test_socket_activation_listen_fds(start_server) -> None:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    control = socket.socket()
    control.bind(("127.0.0.1", 0))
    control.listen(16)
    fds = (tcp.fileno(), udp.fileno(), control.fileno())
    server = start_server(
        launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "ingest:ingest:control"],
        extra_args=["--tcp", "", "--udp", "", "--control", "127.0.0.1:1"],  # must not be bound
        pass_fds=fds,
    )
    assert server.address("tcp") == tcp.getsockname()
    assert server.address("udp") == udp.getsockname()
    assert server.address("control") == control.getsockname()
    send_tcp(tcp.getsockname(), app_lines(300))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(10):
        sender.sendto(b"<14>Jan 30 12:00:00 host udpapp: via inherited udp %d" % i, udp.getsockname())
    report = server.wait_received(310)
    assert report["received"] == 310
    assert report["by_format"] == {"app": 300, "rfc3164": 10}
    for sock in (tcp, udp, control, sender):
        sock.close()


def test_state_survives_restart(start_server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = f'[state]\ndirectory = "{state}"\nsnapshot_interval_s = 60\n'
    first = start_server(config)
    send_tcp(first.address("tcp"), app_lines(500) + app_lines(50, "ERROR") + b"\n")
    first.wait_received(551)
    before = first.stats()
    top_before = first.command("TOP error")
    assert first.stop() == 0
    second = start_server(config)
    restored = second.wait_log("state_restored")
    assert restored["clean"] is True
    after = second.stats()
    for key in ("received", "parsed", "rejected", "bytes", "by_format", "by_level", "by_service", "errors"):
        assert after[key] == before[key], key
    assert second.command("TOP error")["top"] == top_before["top"]


def test_kill_9_loses_at_most_one_snapshot_interval_and_says_so(start_server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = f'[state]\ndirectory = "{state}"\nsnapshot_interval_s = 0.5\n'
    first = start_server(config)
    send_tcp(first.address("tcp"), app_lines(1000))
    first.wait_received(1000)
    time.sleep(1.5)  # at least one periodic snapshot after the lines were merged
    first.stop(signal.SIGKILL)
    second = start_server(config)
    restored = second.wait_log("state_restored")
    assert restored["clean"] is False
    assert restored["lost_at_most_s"] == 0.5
    assert second.stats()["received"] == 1000


def test_corrupt_snapshot_is_set_aside_and_server_starts(start_server, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.snapshot").write_bytes(b"not a snapshot at all")
    server = start_server(f'[state]\ndirectory = "{state}"\n')
    server.wait_log("snapshot_discarded")
    assert server.stats()["received"] == 0
    assert any(p.name.startswith("state.snapshot.corrupt") for p in state.iterdir())


def test_sighup_changes_detector_threshold_without_reconnect(start_server) -> None:
    base = "[rejects]\npath = \"\"\n[detect.spike]\nwindow_s = 10\nresolve_below = 2\novershoot = 0\n"
    base = base.replace("overshoot = 0\n", "")
    server = start_server(base + "threshold = 1000\n")
    control = socket.create_connection(server.address("control"))
    events = control.makefile("rb")
    control.sendall(b"SUBSCRIBE anomalies\n")
    assert "subscribed" in json.loads(events.readline())
    ingest = socket.create_connection(server.address("tcp"))

    def burst(minute: int) -> None:
        lines = b"".join(
            b"2025-01-30 12:%02d:%02d ERROR [api] disk full on volume %d\n" % (minute, s, s) for s in range(10)
        ) * 3
        ingest.sendall(lines)

    burst(0)
    server.wait_received(30)
    time.sleep(0.5)
    assert server.command("EVENTS")["events"] == []  # 30 errors < 1000: silent
    server.config_path.write_text(server.config_path.read_text().replace("threshold = 1000", "threshold = 20"))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    burst(5)
    event = json.loads(events.readline())
    assert event["type"] == "error_spike"
    assert event["key"] == "api"
    ingest.close()
    control.close()


def test_sighup_keeps_what_needs_a_restart_and_says_so(server: ServerProcess) -> None:
    """Windows, `[cluster]` and `[sources.nats]` are set up once at start: a reload naming new ones
    keeps the running values (no half-joined fleet) and logs which sections wait for a restart."""
    server.config_path.write_text(server.config_path.read_text() + '\n[cluster]\nnats = "nats://127.0.0.1:9"\n'
                                  '[sources.nats]\nsubjects = ["logs.>"]\n')
    server.proc.send_signal(signal.SIGHUP)
    warned = server.wait_log("reload_needs_restart")
    assert warned["sections"] == ["cluster", "sources.nats"]
    server.wait_log("reloaded")
    assert "cluster" not in server.command("STATS")
    assert server.command("CLUSTER")["error"].startswith("cluster is off")
    send_tcp(server.address("tcp"), app_lines(5))
    assert server.wait_received(5)["received"] == 5


def test_sighup_applies_the_command_lines_nats_options_again(start_server) -> None:
    """`--nats`/`--node` win over the file on SIGHUP as at start: an unchanged file is no change."""
    server = start_server(extra_args=["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0",
                                      "--nats", "nats://127.0.0.1:9", "--node", "web-9"])
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    assert not [e for e in server.logs if e.get("event") == "reload_needs_restart"]
    assert server.stats()["cluster"]["node"] == "web-9"


def test_a_node_started_while_nats_is_away_seals_its_seconds_into_the_bounded_buffer(start_server) -> None:
    """Before the first connection as after a lost one: a second a second, at most
    `buffer_seconds` of them, the rest dropped and counted (not an ever-growing open second)."""
    server = start_server("[cluster]\nbuffer_seconds = 2\n",
                          extra_args=["--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0",
                                      "--nats", "nats://127.0.0.1:9", "--node", "web-9"])
    send_tcp(server.address("tcp"), app_lines(30))
    server.wait_received(30)
    report = server.wait_stats(lambda r: r["cluster"]["unpublished_seconds"] >= 2, timeout=30)["cluster"]
    assert (report["connected"], report["buffered"], report["published"]) == (False, 2, 0)
    assert report["unpublished_lines"] <= 30


def test_invalid_config_on_sighup_keeps_the_old_one(server: ServerProcess) -> None:
    server.config_path.write_text("[ingest]\nmax_connections = -5\n")
    server.proc.send_signal(signal.SIGHUP)
    rejected = server.wait_log("reload_rejected")
    assert "ingest.max_connections" in rejected["reason"]
    send_tcp(server.address("tcp"), app_lines(5))
    assert server.wait_received(5)["received"] == 5


def test_metrics_on_control_port_and_http(start_server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    server = start_server('[http]\nlisten = "127.0.0.1:0"\n')
    send_tcp(server.address("tcp"), app_lines(40) + b"\n\n")
    server.wait_received(42)
    host, port = server.address("http")
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    curl = shutil.which("curl")
    if curl is not None:  # what an operator types; the same bytes as urllib got
        fetched = subprocess.run([curl, "-sf", f"http://{host}:{port}/metrics"], capture_output=True,
                                 text=True, timeout=10, check=True).stdout
        assert fetched.splitlines()[0] == text.splitlines()[0]
        assert [f.name for f in text_string_to_metric_families(fetched)] == [
            f.name for f in text_string_to_metric_families(text)
        ]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    received = families["logtally_lines_received"].samples[0].value
    assert received == 42
    rejected = {s.labels["reason"]: s.value for s in families["logtally_lines_rejected"].samples}
    assert {reason: n for reason, n in rejected.items() if n} == {"empty": 2}  # every other reason at 0
    control_text = server.command("METRICS")["metrics"]
    assert metric(control_text, "logtally_lines_received_total") == 42
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"http://{host}:{port}/other", timeout=10)
    assert excinfo.value.code == 404


def test_garbage_and_connection_floods_do_not_flood_the_log(start_server) -> None:
    server = start_server("[ingest]\nmax_message_bytes = 100\n")
    flood = (b"z" * 200 + b"\n") * 3000 + b"\n" * 3000  # 3000 oversize, 3000 empty
    send_tcp(server.address("tcp"), flood)
    for _ in range(60):
        socket.create_connection(server.address("tcp")).close()
    report = server.wait_received(6000)
    assert report["rejected"] == {"oversize": 3000, "empty": 3000}
    time.sleep(0.5)
    events = [entry.get("event") for entry in server.logs]
    assert events.count("line_rejected") == 10  # 5 a minute per reason
    assert events.count("connection_opened") == 20  # 20 a minute
    assert events.count("connection_closed") == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sighup_moves_the_tcp_listener_and_keeps_open_connections(start_server) -> None:
    first, second = _free_port(), _free_port()
    server = start_server(
        f'[ingest]\ntcp = "127.0.0.1:{first}"\nudp = ""\n',
        extra_args=["--control", "127.0.0.1:0"],  # tcp comes from the file, so SIGHUP may move it
    )
    assert server.address("tcp") == ("127.0.0.1", first)
    kept = socket.create_connection(("127.0.0.1", first))
    kept.sendall(app_lines(10))
    server.wait_received(10)
    server.config_path.write_text(server.config_path.read_text().replace(str(first), str(second)))
    server.proc.send_signal(signal.SIGHUP)
    server.wait_log("reloaded")
    kept.sendall(app_lines(5))  # the connection made before the reload still works
    kept.close()
    send_tcp(("127.0.0.1", second), app_lines(7))
    assert server.wait_received(22)["received"] == 22
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", first), timeout=2)


def test_socket_activation_serves_http_on_the_http_socket(start_server) -> None:
    """What the four shipped units pass (ingest TCP and UDP, control, http): the dashboard and
    API answer on logtallyd-http.socket's fd, and the config's own [http] address stays unbound."""
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    control = socket.create_server(("127.0.0.1", 0))
    http = socket.create_server(("127.0.0.1", 0))
    fds = (tcp.fileno(), udp.fileno(), control.fileno(), http.fileno())
    server = start_server(
        '[http]\nlisten = "127.0.0.1:1"\n',  # must not be bound
        launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "ingest:ingest:control:http"],
        extra_args=[], pass_fds=fds,
    )
    assert server.address("http") == http.getsockname()
    send_tcp(tcp.getsockname(), app_lines(7))
    server.wait_received(7)
    host, port = http.getsockname()
    with urllib.request.urlopen(f"http://{host}:{port}/api/v1/stats", timeout=10) as response:
        assert json.loads(response.read())["received"] == 7
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
        assert response.status == 200 and b"<html" in response.read().lower()
    for sock in (tcp, udp, control, http):
        sock.close()


def test_socket_activation_binds_only_what_systemd_passed(start_server, tmp_path: Path) -> None:
    # The config names a UDP address; systemd passed only TCP and control, so UDP stays unbound.
    tcp = socket.create_server(("127.0.0.1", 0))
    control = socket.create_server(("127.0.0.1", 0))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    udp_port = probe.getsockname()[1]
    probe.close()
    fds = (tcp.fileno(), control.fileno())
    server = start_server(
        f'[ingest]\ntcp = "127.0.0.1:0"\nudp = "127.0.0.1:{udp_port}"\n',
        launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "ingest:control"],
        extra_args=[],
        pass_fds=fds,
    )
    listening = server.wait_log("listening")
    assert set(k for k in listening if k in ("tcp", "udp", "tls", "control", "http")) == {"tcp", "control"}
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", udp_port))  # the daemon did not take it
    free.close()
    for sock in (tcp, control):
        sock.close()


def test_socket_activation_also_binds_what_the_config_adds(start_server) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    control = socket.create_server(("127.0.0.1", 0))
    fds = (tcp.fileno(), control.fileno())
    server = start_server(
        '[daemon]\nalso_bind = ["udp"]\n[ingest]\nudp = "127.0.0.1:0"\n',
        launcher=[sys.executable, "-c", LAUNCHER, ",".join(map(str, fds)), "ingest:control"],
        extra_args=[],
        pass_fds=fds,
    )
    assert server.address("tcp") == tcp.getsockname()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"<14>Jan 30 12:00:00 host udpapp: bound from the config", server.address("udp"))
    assert server.wait_received(1)["received"] == 1
    for sock in (tcp, control, sender):
        sock.close()


def test_second_daemon_cannot_share_the_udp_port(start_server) -> None:
    first = start_server()
    host, port = first.address("udp")
    with pytest.raises(AssertionError, match="Address already in use"):
        start_server(extra_args=["--tcp", "127.0.0.1:0", "--udp", f"{host}:{port}", "--control", "127.0.0.1:0"])


@pytest.mark.parametrize("which", ["cert", "key"])
def test_tls_file_errors_name_the_key_and_file(start_server, tmp_path: Path, which: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a pem\n")
    missing = tmp_path / "missing.pem"
    cert, key = (missing, garbage) if which == "cert" else (garbage, missing)
    with pytest.raises(AssertionError) as failed:
        start_server(f'[ingest.tls]\nlisten = "127.0.0.1:0"\ncert = "{cert}"\nkey = "{key}"\n')
    assert f"ingest.tls.{which} = '{missing}': no such file" in str(failed.value)


def test_tls_garbage_pem_names_both_files(start_server, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a pem\n")
    with pytest.raises(AssertionError) as failed:
        start_server(f'[ingest.tls]\nlisten = "127.0.0.1:0"\ncert = "{garbage}"\nkey = "{garbage}"\n')
    assert f"ingest.tls.cert = '{garbage}', ingest.tls.key = '{garbage}': not a PEM certificate" in str(failed.value)


def test_ctrl_c_stops_quietly_without_worker_tracebacks(tmp_path: Path) -> None:
    # Ctrl-C in a terminal sends SIGINT to the whole foreground process group: daemon, forkserver
    # and workers alike. Only the daemon should act on it.
    (tmp_path / "config.toml").write_text(f'[rejects]\npath = "{tmp_path / "rejects.log"}"\n[state]\ndirectory = ""\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtallyd", "--config", str(tmp_path / "config.toml"),
         "--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--http", ""],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if '"listening"' in line:
            break
    tcp = json.loads(lines[-1])["tcp"]
    host, port = tcp.rsplit(":", 1)
    send_tcp((host, int(port)), app_lines(100))
    time.sleep(0.5)  # let a batch reach the workers, so they are running when the signal lands
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "Traceback" not in out and "KeyboardInterrupt" not in out
    stopped = [json.loads(line) for line in out.splitlines() if '"stopped"' in line]
    assert len(stopped) == 1 and stopped[0]["received"] == 100 and stopped[0]["balanced"] is True


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_kill_9_takes_the_whole_pool_with_it(start_server) -> None:
    server = start_server()
    send_tcp(server.address("tcp"), app_lines(100))
    server.wait_received(100)
    pool = _descendants(server.proc.pid)
    # The resource tracker, the forkserver and its workers (2 or more).
    assert len(pool) >= 4
    server.proc.kill()
    server.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pool):
        time.sleep(0.1)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in pool if Path(f"/proc/{p}").exists()}
    assert left == {}


def test_sigterm_stops_the_daemon_when_stdout_is_a_closed_pipe(tmp_path: Path) -> None:
    # `logtallyd ... | head -1`: head exits after the first line, stdout becomes a broken pipe.
    (tmp_path / "config.toml").write_text(f'[rejects]\npath = "{tmp_path / "rejects.log"}"\n[state]\ndirectory = ""\n')
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "logtallyd", "--config", str(tmp_path / "config.toml"),
         "--tcp", "127.0.0.1:0", "--udp", "", "--control", "127.0.0.1:0", "--http", ""],
        cwd=tmp_path, stdout=write_end, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = reader.readline()  # the first log line, then the reader goes away
    assert b'"listening"' in first
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_unusable_state_directory_costs_snapshots_not_the_daemon(start_server, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    server = start_server(
        f'[state]\ndirectory = "{blocker / "state"}"\nsnapshot_interval_s = 0.2\n'
        '[ingest]\nidle_timeout_s = 1.0\n'
    )
    server.wait_log("snapshot_failed")
    # The periodic work goes on: idle senders are closed, stats subscribers are served.
    idle = socket.create_connection(server.address("tcp"))
    idle.sendall(app_lines(10))
    server.wait_received(10)
    server.wait_log("connection_idle_closed", timeout=15)
    with socket.create_connection(server.address("control")) as control:
        control.sendall(b"SUBSCRIBE stats interval=0.2\n")
        reader = control.makefile("rb")
        assert json.loads(reader.readline()) == {"subscribed": ["stats"]}
        assert json.loads(reader.readline())["type"] == "stats"
    idle.close()
    assert server.stop() == 0
    stopped = server.wait_log("stopped")
    assert stopped["received"] == 10 and stopped["balanced"] is True


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_pipelining_client_that_never_reads_starves_nobody(start_server) -> None:
    server = start_server()
    before = _rss_kib(server.proc.pid)
    greedy = socket.socket()
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    greedy.connect(server.address("control"))
    greedy.settimeout(5)
    sent, payload = 0, b"STATS\n" * 2_000_000  # 12 MB, more than any socket buffers hold
    try:  # the daemon stops reading this client once its answers pile up: sendall blocks
        while sent < len(payload):
            sent += greedy.send(payload[sent:sent + 65536])
    except socket.timeout:
        pass
    assert sent < len(payload)
    # Meanwhile another client is answered, and lines are still taken in.
    with socket.create_connection(server.address("control")) as polite:
        polite.settimeout(10)
        polite.sendall(b"PING\n")
        assert json.loads(polite.makefile("rb").readline()) == {"pong": True}
    send_tcp(server.address("tcp"), app_lines(100))
    assert server.wait_received(100)["received"] == 100
    # Unread answers are bounded by socket buffers, not by what the client asked for.
    assert _rss_kib(server.proc.pid) - before < 64 * 1024
    greedy.close()


def test_restart_on_the_shipped_config_keeps_the_totals(start_server, tmp_path: Path) -> None:
    # The shipped config.toml as is ([state] directory = "auto"); only the listen addresses come
    # from the command line. Both runs see one $XDG_STATE_HOME, as one user's two runs would.
    shipped = (Path(__file__).resolve().parents[1] / "config.toml").read_text()
    env = {"XDG_STATE_HOME": str(tmp_path / "xdg")}
    first = start_server(shipped, env=env)
    assert first.wait_log("state_directory")["directory"] == str(tmp_path / "xdg" / "logtally")
    send_tcp(first.address("tcp"), app_lines(300) + app_lines(20, "ERROR"))
    before = first.wait_received(320)
    assert before["received"] == 320
    assert first.stop() == 0
    second = start_server(shipped, env=env)
    assert second.wait_log("state_restored")["clean"] is True
    after = second.stats()
    for key in ("received", "parsed", "rejected", "bytes", "by_level", "errors"):
        assert after[key] == before[key], key


async def test_a_failing_periodic_job_is_counted_and_the_others_go_on(tmp_path: Path) -> None:
    import asyncio

    import msgspec

    from logtallyd.daemon.app import Server
    from logtallyd.daemon.assembly import build
    from logtallyd.daemon.config import Config, DaemonConfig, RejectsConfig, StateConfig

    config = msgspec.structs.replace(Config(), daemon=DaemonConfig(tick_interval_s=0.01, status_interval_s=0.01),
                                     state=StateConfig(directory=""), rejects=RejectsConfig(path=""))
    parts = build(config)
    server = Server(parts)
    statuses = 0

    def broken_sweep(mono: float) -> None:
        raise RuntimeError("a bug in one job")

    def status_ran() -> None:
        nonlocal statuses
        statuses += 1

    parts.connections.sweep_idle = broken_sweep  # type: ignore[method-assign]
    parts.pipeline.reject_log.flush = status_ran  # type: ignore[method-assign]
    tick = asyncio.get_running_loop().create_task(server._tick())
    try:
        for _ in range(1000):
            if statuses >= 3 and parts.job_failures.get("sweep", 0) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        tick.cancel()
        parts.executor.shutdown()
    failures = parts.stats_report("all")["job_failures"]
    assert set(failures) == {"sweep"} and failures["sweep"] >= 3
    assert statuses >= 3  # the status job kept running beside the failing one
    assert 'logtally_periodic_job_failures_total{job="sweep"}' in parts.metrics_text()


def test_lines_sent_while_the_pool_warms_are_all_counted(start_server) -> None:
    # `listening` comes before the workers are warm (issue 14): what arrives meanwhile must wait
    # for them, never be dropped or rejected, and the pool then reports itself ready.
    server = start_server()
    send_tcp(server.address("tcp"), app_lines(3000))
    server.wait_received(3000)
    stats = server.stats()
    assert (stats["received"], stats["parsed"], stats["rejected"]) == (3000, 3000, {})
    assert server.wait_log("workers_ready")["workers"] >= 1
