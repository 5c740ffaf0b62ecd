"""RFC 6587 framing for one TCP stream, sans-I/O: feed bytes in, take frames out.

Each frame is decided on its own (RFC 6587 §3.4): octet-counted (`MSG-LEN SP SYSLOG-MSG`,
§3.4.1) or non-transparent (§3.4.2), whose trailer is learned per stream (`Delimiter`). The
framer never touches a socket; the TCP protocol feeds it and hands the frames to the batcher.
"""
from __future__ import annotations

import re
from typing import Literal

import msgspec

from logtallyd.records import FrameErrorReason

# Octet counting is chosen only for `[1-9][0-9]{0,8} <`: a syslog message always opens with
# `<PRI>`, so a line such as `10.1.3.6 - - [30/Jan/2025...] "GET / ..."` or `200 OK` stays a
# plain LF-terminated line (rsyslog misframes those).
_MAX_DIGITS = 9
_DIGITS = frozenset(b"0123456789")
# Somewhere in the buffer a frame could open with an octet count: take the per-frame path.
# Two patterns, each with a literal start, so that the search is a fast scan (an `(?:\A|\n)`
# alternation makes the regex engine try every byte); both need a " <", checked first.
_OCTET_FIRST = re.compile(rb"[1-9][0-9]{0,8} <")
_OCTET_AFTER_LF = re.compile(rb"\n[1-9][0-9]{0,8} <")


# `[ingest] delimiter`: what ends a non-transparent frame (RFC 6587 §3.4.2 allows LF, CRLF or NUL).
#   "any"    LF, CRLF and NUL each end a frame.
#   "nul"    only NUL ends a frame; LFs stay inside the message (Python's SysLogHandler over TCP
#            ends each message with NUL, and a traceback holds LFs).
#   "learn"  per stream, decided at its first non-transparent frame: "nul" when a NUL within
#            `max_size` bytes ends the received data or comes right before `<` or `{` (the start
#            of the next message), "any" when some other NUL comes first, or the received data
#            ends on an LF, or more than `max_size` bytes are held. Until then nothing of that
#            frame is delivered; octet-counted frames before it do not decide.
Delimiter = Literal["learn", "any", "nul"]

# `Framer.seen` bits: the framings a stream has used (STATS-free; SENDERS shows them by name).
OCTET, LF, NUL = 1, 2, 4
FRAMING_NAMES = (("octet_counted", OCTET), ("lf", LF), ("nul", NUL))


def framing_names(seen: int) -> list[str]:
    """The names of the framings in a `Framer.seen` mask, in a fixed order."""
    return [name for name, bit in FRAMING_NAMES if seen & bit]


class _Discard:
    """Discarding an oversize frame: `remaining` bytes by count, or (-1) up to the next trailer.

    Its one `FrameError` is made when the discarding ends, so `size` is every byte discarded.
    """

    __slots__ = ("remaining", "size", "sample")

    def __init__(self, remaining: int) -> None:
        self.remaining = remaining
        self.size = 0
        self.sample = b""

    def passed(self, buf: bytearray, pos: int, stop: int, sample_bytes: int) -> None:
        """Bytes `pos:stop` of the frame were discarded: count them, keep the sample's share."""
        self.size += stop - pos
        if len(self.sample) < sample_bytes:
            self.sample += buf[pos : min(stop, pos + sample_bytes - len(self.sample))]


class FrameError(msgspec.Struct, frozen=True):
    """A frame that cannot be delivered: `oversize` or `truncated` (stream ended inside it)."""

    reason: FrameErrorReason
    size: int
    sample: bytes


class Framer:
    """Turns a byte stream into frames. Memory is bounded by `max_size` whatever arrives.

    A frame over `max_size` is discarded whole and counted once, when its end has passed, as one
    `oversize` error whose `size` is the bytes discarded: an octet-counted one by its MSG-LEN,
    LFs inside included (the count makes it one message, RFC 6587 §3.4.1; Vector's decoder does
    the same), a non-transparent one up to its trailer. A `FrameError` keeps the first
    `sample_bytes` of its frame (`[ingest] reject_sample_bytes`).
    """

    def __init__(self, max_size: int, sample_bytes: int = 256, delimiter: Delimiter = "learn") -> None:
        self.max_size = max_size
        self.sample_bytes = sample_bytes
        self.delimiter: Delimiter = delimiter  # "learn" becomes "any" or "nul" on this stream
        self._buf = bytearray()
        self._discard: _Discard | None = None  # inside an oversize frame
        self._after_octet = False  # an LF right after an octet-counted frame is its trailer
        self.seen = 0  # OCTET | LF | NUL: how this stream's delivered frames were framed

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        """Add bytes; return the frames and errors they complete."""
        frames: list[bytes] = []
        errors: list[FrameError] = []
        buf = self._buf
        buf += data
        if self._discard is None and not self._after_octet and self.delimiter != "nul":
            frames = self._plain_lines(buf)
        pos = 0
        end = len(buf)
        max_size = self.max_size
        sample = self.sample_bytes
        while pos < end:
            discard = self._discard
            if discard is not None:
                if discard.remaining >= 0:  # by count: whatever the bytes hold
                    n = min(discard.remaining, end - pos)
                    discard.remaining -= n
                    discard.passed(buf, pos, pos + n, sample)
                    pos += n
                    if discard.remaining:
                        break
                    self._after_octet = True
                else:
                    stop = self._terminator(buf, pos, end)
                    if stop < 0:
                        discard.passed(buf, pos, end, sample)
                        pos = end
                        break
                    discard.passed(buf, pos, stop, sample)
                    pos = stop + 1
                self._discard = None
                errors.append(FrameError("oversize", discard.size, discard.sample))
                continue
            first = buf[pos]
            if self._after_octet:
                if first == 0x0D and pos + 1 == end:
                    break  # a CR after a counted frame, its LF in the next read: wait for it
                self._after_octet = False
                if first == 0x0A:
                    pos += 1
                    continue
                if first == 0x0D and pos + 1 < end and buf[pos + 1] == 0x0A:
                    pos += 2
                    continue
            if 0x31 <= first <= 0x39:  # RFC 6587 §3.4.1: NONZERO-DIGIT *DIGIT SP
                verdict, count, start = _octet_header(buf, pos, end)
                if verdict == _NEED_MORE:
                    break
                if verdict == _OCTET:
                    if count > max_size:
                        self._discard = _Discard(count)
                        pos = start
                        continue
                    if end - start < count:
                        break  # wait for the rest of the frame
                    frames.append(bytes(buf[start : start + count]))
                    pos = start + count
                    self._after_octet = True
                    self.seen |= OCTET
                    continue
            if self.delimiter == "learn" and not self._learn(buf, pos, end):
                break
            stop = self._terminator(buf, pos, end)
            if stop < 0:
                if end - pos > max_size:
                    self._discard = _Discard(-1)  # up to the trailer, whenever it comes
                    continue
                break
            if stop - pos > max_size:
                errors.append(FrameError("oversize", stop - pos, bytes(buf[pos : pos + sample])))
            else:
                line_end = stop
                if line_end > pos and buf[line_end - 1] == 0x0D:
                    line_end -= 1  # CRLF
                frames.append(bytes(buf[pos:line_end]))
                self.seen |= NUL if buf[stop] == 0 else LF
            pos = stop + 1
        del buf[:pos]
        return frames, errors

    def _learn(self, buf: bytearray, pos: int, end: int) -> bool:
        """Decide the stream's delimiter at its first non-transparent frame; False: not yet."""
        nul = buf.find(b"\0", pos, min(end, pos + self.max_size + 1))
        if nul >= 0:
            # A sender's trailer ends the data or comes right before its next message; a NUL
            # anywhere else (padding, binary junk) says nothing about the sender.
            after = buf[nul + 1] if nul + 1 < end else None
            self.delimiter = "nul" if after is None or after in _MESSAGE_START else "any"
        elif buf[end - 1] == 0x0A or end - pos > self.max_size:
            self.delimiter = "any"
        else:
            return False
        return True

    def _terminator(self, buf: bytearray, pos: int, end: int) -> int:
        if self.delimiter == "nul":
            return buf.find(b"\0", pos, end)
        return _find_terminator(buf, pos, end)

    def _plain_lines(self, buf: bytearray) -> list[bytes]:
        """Fast path for the common stream of LF lines: split in C, no per-frame decisions.

        Taken only when no frame in the buffer can be octet-counted or NUL-terminated and no
        complete line is over the limit; otherwise the per-frame loop decides (same result).
        """
        last = buf.rfind(b"\n")
        if last < 0 or b"\0" in buf or _maybe_octet(buf):
            return []
        if self.delimiter == "learn":
            if last != len(buf) - 1:
                return []  # the loop holds the first frame until the stream shows its trailer
            self.delimiter = "any"
        lines = bytes(buf).split(b"\n")
        lines.pop()  # the unterminated rest after the last LF stays buffered
        if max(map(len, lines)) > self.max_size:
            return []
        if b"\r" in buf:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        del buf[: last + 1]
        self.seen |= LF
        return lines

    def close(self) -> tuple[list[bytes], list[FrameError]]:
        """End of stream: a last line without terminator is a frame; a cut octet frame is an error."""
        frames: list[bytes] = []
        errors: list[FrameError] = []
        if self.delimiter == "learn" and self._buf and self._discard is None:
            self.delimiter = "any"  # the stream ended before it showed its trailer
            frames, errors = self.feed(b"")
        buf = self._buf
        sample = self.sample_bytes
        if self._discard is not None:  # the stream ended inside an oversize frame: what was discarded
            errors.append(FrameError("oversize", self._discard.size, self._discard.sample))
        elif buf:
            verdict, count, start = _octet_header(buf, 0, len(buf)) if buf[0] in _DIGITS else (_LINE, 0, 0)
            if verdict == _OCTET and count <= self.max_size:
                errors.append(FrameError("truncated", len(buf) - start, bytes(buf[start : start + sample])))
            elif verdict == _OCTET:
                errors.append(FrameError("oversize", len(buf) - start, bytes(buf[start : start + sample])))
            else:
                line = bytes(buf)
                frames.append(line[:-1] if line.endswith(b"\r") else line)
        buf.clear()
        self._discard = None
        return frames, errors

    @property
    def buffered(self) -> int:
        return len(self._buf)


_LINE, _OCTET, _NEED_MORE = 0, 1, 2
_MESSAGE_START = frozenset(b"<{")  # syslog's PRI, GELF's JSON object


def _maybe_octet(buf: bytearray) -> bool:
    """Could a frame in `buf` open with an octet count (`[1-9][0-9]{0,8} <` at a frame start)?"""
    # "<" first: one memchr settles text logs, which hold none. Where there is one (syslog), the
    # patterns' own scans (131 us for 256 KiB) cost less than a search for " <" first (235 us:
    # a two-byte search crawls through text full of spaces).
    return b"<" in buf and (
        _OCTET_FIRST.match(buf) is not None or _OCTET_AFTER_LF.search(buf) is not None
    )


def _octet_header(buf: bytearray, pos: int, end: int) -> tuple[int, int, int]:
    """Classify the frame at `pos`: (_OCTET, count, payload start) / (_LINE, 0, 0) / (_NEED_MORE, 0, 0)."""
    i = pos
    limit = min(end, pos + _MAX_DIGITS)
    while i < limit and 0x30 <= buf[i] <= 0x39:
        i += 1
    if i == end:
        return (_NEED_MORE, 0, 0)
    if buf[i] != 0x20:
        return (_LINE, 0, 0)
    if i + 1 == end:
        return (_NEED_MORE, 0, 0)
    if buf[i + 1] != 0x3C:  # '<': the PRI that opens every syslog message
        return (_LINE, 0, 0)
    return (_OCTET, int(buf[pos:i]), i + 1)


def _find_terminator(buf: bytearray, pos: int, end: int) -> int:
    """Index of the LF or NUL that ends the frame at `pos`, or -1 (RFC 6587 §3.4.2 trailers)."""
    lf = buf.find(b"\n", pos, end)
    nul = buf.find(b"\0", pos, lf if lf >= 0 else end)
    return nul if nul >= 0 else lf
