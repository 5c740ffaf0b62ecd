"""Datagrams the kernel dropped on a UDP ingest socket (receive buffer full), which no
userspace counter can see: the socket's `drops` column in /proc/net/udp and /proc/net/udp6."""
from __future__ import annotations

import os
import socket

TABLES = ("/proc/net/udp", "/proc/net/udp6")


def parse_drops(table: str, inode: int) -> int | None:
    """The `drops` field of the row for socket `inode` in a /proc/net/udp table, or None."""
    lines = table.splitlines()
    if not lines:
        return None
    header = lines[0].split()
    # The header names 14 columns for 17 fields ("tr tm->when" and "retrnsmt"): drops is last.
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 13 and header and fields[9] == str(inode):
            return int(fields[-1])
    return None


def socket_drops(sock: socket.socket, tables: tuple[str, ...] = TABLES) -> int | None:
    """Kernel drops of `sock` so far; None where the kernel does not say (not Linux, no /proc)."""
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except (OSError, ValueError):
        return None
    for path in tables:
        try:
            with open(path) as f:
                found = parse_drops(f.read(), inode)
        except OSError:
            continue
        if found is not None:
            return found
    return None
