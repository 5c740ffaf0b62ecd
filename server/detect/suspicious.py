"""Suspicious IP detector: per client IP, HTTP responses and 4xx/5xx among them over a sliding
event-time window; fires when the 4xx/5xx count, or their share of enough requests, crosses
its threshold, and sends `resolved` once both fall below `resolve_ratio` of their thresholds.
"""
from __future__ import annotations

import msgspec

from logtallyd.detect.config import DetectConfig, SuspiciousConfig
from logtallyd.detect.detector import SectionDetector
from logtallyd.detect.events import Event, Resolved, SuspiciousIp
from logtallyd.detect.feed import Second


class Entry(msgspec.Struct, array_like=True):
    second: int
    ip: str
    total: int
    bad: int


class IpState(msgspec.Struct, array_like=True):
    total: int = 0
    bad: int = 0
    active: bool = False
    started: float = 0.0
    peak: int = 0


class SuspiciousState(msgspec.Struct):
    ips: dict[str, IpState] = {}
    window: list[Entry] = []  # every (second, ip) inside the window, oldest first
    head: int = 0  # entries before this index have left the window
    untracked: int = 0  # requests of IPs beyond max_ips


class SuspiciousDetector(SectionDetector[SuspiciousConfig, SuspiciousState]):
    def section(self, config: DetectConfig) -> SuspiciousConfig:
        return config.suspicious

    def figures(self) -> dict[str, int]:
        return {"untracked_ip_requests": self.state.untracked}

    def step(self, second: int, data: Second | None) -> list[Event]:
        config, state = self.config, self.state
        events: list[Event] = []
        touched: set[str] = set()
        # Leave the window first, so a second's figures are those of the window ending at it.
        oldest = second - config.window_s + 1
        window = state.window
        while state.head < len(window) and window[state.head].second < oldest:
            entry = window[state.head]
            state.head += 1
            ip = state.ips[entry.ip]
            ip.total -= entry.total
            ip.bad -= entry.bad
            touched.add(entry.ip)
        if state.head > 1024 and state.head * 2 > len(window):
            del window[: state.head]
            state.head = 0
        if data is not None:
            for address in sorted(data.ips):
                tally = data.ips[address]
                ip = state.ips.get(address)
                if ip is None:
                    if len(state.ips) >= config.max_ips:
                        state.untracked += tally.total
                        continue
                    ip = state.ips[address] = IpState()
                ip.total += tally.total
                ip.bad += tally.bad
                window.append(Entry(second, address, tally.total, tally.bad))
                touched.add(address)
        for address in sorted(touched):
            ip = state.ips[address]
            self._evaluate(address, ip, second, events)
            if ip.total == 0 and not ip.active:
                del state.ips[address]
        return events

    def _evaluate(self, address: str, ip: IpState, second: int, events: list[Event]) -> None:
        config = self.config
        share = ip.bad / ip.total if ip.total else 0.0
        if not ip.active:
            reason = ""
            if ip.bad >= config.min_bad:
                reason = "count"
            elif ip.total >= config.min_requests and share >= config.share:
                reason = "share"
            if reason:
                ip.active, ip.started, ip.peak = True, float(second), ip.bad
                events.append(
                    SuspiciousIp(
                        float(second), "suspicious", address, ip.bad, ip.total, share,
                        config.window_s, reason,
                    )
                )
            return
        ip.peak = max(ip.peak, ip.bad)
        ratio = config.resolve_ratio
        if ip.bad < config.min_bad * ratio and (
            ip.total < config.min_requests or share < config.share * ratio
        ):
            ip.active = False
            events.append(
                Resolved(float(second), "suspicious", address, "suspicious_ip", ip.bad, ip.peak, ip.started)
            )
