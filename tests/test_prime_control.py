"""Prime jobs through the control port and the `logtally prime` CLI, against a real server."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

from tests.conftest import ROOT, ServerProcess, send_tcp


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    host, port = server.address("control")
    return subprocess.run(
        [sys.executable, "-m", "logtally", "--control", f"{host}:{port}", "--token-file", str(server.token_file), *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )


def test_count_small_range_answers_at_once(start_server) -> None:
    # The first prime job of a run also loads the compiled kernels in its worker (about half a
    # second, more on a loaded machine): a wide answer window keeps this test about the answer,
    # not about the clock.
    server = start_server("[primes]\nanswer_within_s = 60\n")
    answer = server.command("PRIME COUNT 1 1e6", timeout=90, auth=True)
    assert answer["count"] == 78498
    assert answer["first"] == 2 and answer["last"] == 999983
    assert answer["twin_pairs"] == 8169
    assert answer["largest_gap"] == 114


def test_bad_input_gets_json_errors(server: ServerProcess) -> None:
    for command in ("PRIME COUNT -5 10", "PRIME COUNT 10 2", "PRIME COUNT ten 20", "PRIME COUNT 1 1e30",
                    "ISPRIME 2**x", "PRIME LIST 1 1e12", "CANCEL nosuchjob", "PRIME COUNT 1"):
        answer = server.command(command, auth=True)
        assert set(answer) == {"error"}, (command, answer)


def test_isprime_deterministic_and_probable(server: ServerProcess) -> None:
    small = server.command("ISPRIME 1_000_000_007")
    assert (small["prime"], small["certainty"]) == (True, "deterministic")
    carmichael = server.command("ISPRIME 3317044064679887385961981")  # strong pseudoprime to 12 bases
    assert carmichael["prime"] is False
    big = server.command("ISPRIME " + str(2**607 - 1))
    assert (big["prime"], big["certainty"]) == (True, "probable")


def test_list_streams_chunks(server: ServerProcess) -> None:
    with socket.create_connection(server.address("control")) as sock:
        f = sock.makefile("rb")
        sock.sendall(f"AUTH {server.token}\nPRIME LIST 100 200\n".encode())
        assert json.loads(f.readline()) == {"auth": "ok"}
        primes: list[int] = []
        while True:
            message = json.loads(f.readline())
            if message.get("done"):
                break
            primes += message["primes"]
    assert primes == [p for p in range(100, 201) if all(p % d for d in range(2, int(p**0.5) + 1))]
    assert message["count"] == len(primes)


def test_long_job_returns_id_reports_progress_and_cancels(server: ServerProcess) -> None:
    with socket.create_connection(server.address("control"), timeout=60) as sock:  # never hang on a lost answer
        f = sock.makefile("rb")
        sock.sendall(f"AUTH {server.token}\nSUBSCRIBE jobs\n".encode())
        assert json.loads(f.readline()) == {"auth": "ok"}
        assert "subscribed" in json.loads(f.readline())
        sock.sendall(b"PRIME COUNT 1 1e12\n")
        messages = []
        while not any("job" in m for m in messages):  # progress may come before the answer
            messages.append(json.loads(f.readline()))
        job = next(m["job"] for m in messages if "job" in m)
        while not any(m.get("type") == "job_progress" for m in messages):
            messages.append(json.loads(f.readline()))
            assert messages[-1].get("type") not in ("job_failed", "job_done"), messages[-1]
        progress = next(m for m in messages if m.get("type") == "job_progress")
        assert progress["id"] == job
        assert 0 <= progress["percent"] <= 100
        jobs = server.command("JOBS")["jobs"]
        assert [j["state"] for j in jobs if j["id"] == job] == ["running"]
        # Another connection cancels: without AUTH it may not, with it it may.
        assert server.command(f"CANCEL {job}") == {
            "error": "auth required: send AUTH <token> first, or use the control Unix socket"}
        assert [j["state"] for j in server.command("JOBS")["jobs"] if j["id"] == job] == ["running"]
        started = time.monotonic()
        assert server.command(f"CANCEL {job}", auth=True) == {"cancelled": job}
        while True:
            message = json.loads(f.readline())
            if message.get("type") == "job_cancelled":
                break
        assert time.monotonic() - started < 1.0
    # Ingestion still flows once the job is gone.
    send_tcp(server.address("tcp"), b"2025-01-30 12:00:00 INFO after the job\n")
    assert server.wait_received(1)["received"] == 1


def test_cli_prime_commands(server: ServerProcess) -> None:
    out = cli(server, "prime", "count", "1", "1e7", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["count"] == 664579
    out = cli(server, "prime", "is", "97")
    assert out.stdout.startswith("97 is prime (deterministic, ")
    out = cli(server, "prime", "is", "561")
    assert out.stdout.startswith("561 is composite (deterministic, ")
    out = cli(server, "prime", "list", "10", "30")
    assert out.stdout.split() == ["11", "13", "17", "19", "23", "29"]
    out = cli(server, "prime", "count", "5", "1")
    assert out.returncode == 1 and "below" in out.stderr


def test_jobs_need_auth_over_tcp_and_not_over_the_unix_socket(start_server, control_socket: str) -> None:
    path = control_socket
    server = start_server(f'[control]\nunix_socket = "{path}"\n[primes]\nanswer_within_s = 60\n')
    refused = "auth required: send AUTH <token> first, or use the control Unix socket"
    for command in ("PRIME COUNT 1 1e6", "PRIME LIST 1 100", "CANCEL nosuchjob"):
        assert server.command(command) == {"error": refused}, command
    assert server.command("JOBS") == {"jobs": []}  # refused commands started nothing
    assert server.command("ISPRIME 97")["prime"] is True  # a single test stays open
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(90)
        sock.connect(path)
        f = sock.makefile("rb")
        sock.sendall(b"PRIME COUNT 1 1e6\nCANCEL nosuchjob\n")
        assert json.loads(f.readline())["count"] == 78498
        assert json.loads(f.readline()) == {"error": "no running job 'nosuchjob'"}
    assert server.stats()["control"] == {"auth_ok": 0, "refused": {"auth_required": 3}}
