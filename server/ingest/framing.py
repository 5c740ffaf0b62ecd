"""RFC 6587 framing for one TCP stream, sans-I/O: feed bytes in, take frames out.

Each frame is decided on its own (RFC 6587 §3.4): octet-counted (`MSG-LEN SP SYSLOG-MSG`,
§3.4.1) or non-transparent (terminated by LF, CRLF or NUL, §3.4.2). The framer never touches a
socket; the TCP protocol feeds it and hands the frames to the batcher.
"""
from __future__ import annotations

import re

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


class FrameError(msgspec.Struct, frozen=True):
    """A frame that cannot be delivered: `oversize` or `truncated` (stream ended inside it)."""

    reason: FrameErrorReason
    size: int
    sample: bytes


class Framer:
    """Turns a byte stream into frames. Memory is bounded by `max_size` whatever arrives.

    A `FrameError` keeps the first `sample_bytes` of its frame (`[ingest] reject_sample_bytes`).
    """

    def __init__(self, max_size: int, sample_bytes: int = 256) -> None:
        self.max_size = max_size
        self.sample_bytes = sample_bytes
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversize octet-counted frame still to discard
        self._discard_line = False  # inside an oversize LF frame: drop up to the next LF/NUL
        self._after_octet = False  # an LF right after an octet-counted frame is its trailer

    def feed(self, data: bytes) -> tuple[list[bytes], list[FrameError]]:
        """Add bytes; return the frames and errors they complete."""
        frames: list[bytes] = []
        errors: list[FrameError] = []
        buf = self._buf
        buf += data
        if not (self._skip or self._discard_line or self._after_octet):
            frames = self._plain_lines(buf)
        pos = 0
        end = len(buf)
        max_size = self.max_size
        sample = self.sample_bytes
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                continue
            if self._discard_line:
                stop = _find_terminator(buf, pos, end)
                if stop < 0:
                    pos = end
                    break
                self._discard_line = False
                pos = stop + 1
                continue
            first = buf[pos]
            if self._after_octet:
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
                        errors.append(FrameError("oversize", count, bytes(buf[start : start + sample])))
                        self._skip = count
                        pos = start
                        self._after_octet = True
                        continue
                    if end - start < count:
                        break  # wait for the rest of the frame
                    frames.append(bytes(buf[start : start + count]))
                    pos = start + count
                    self._after_octet = True
                    continue
            stop = _find_terminator(buf, pos, end)
            if stop < 0:
                if end - pos > max_size:
                    errors.append(FrameError("oversize", end - pos, bytes(buf[pos : pos + sample])))
                    self._discard_line = True
                    pos = end
                break
            if stop - pos > max_size:
                errors.append(FrameError("oversize", stop - pos, bytes(buf[pos : pos + sample])))
            else:
                line_end = stop
                if line_end > pos and buf[line_end - 1] == 0x0D:
                    line_end -= 1  # CRLF
                frames.append(bytes(buf[pos:line_end]))
            pos = stop + 1
        del buf[:pos]
        return frames, errors

    def _plain_lines(self, buf: bytearray) -> list[bytes]:
        """Fast path for the common stream of LF lines: split in C, no per-frame decisions.

        Taken only when no frame in the buffer can be octet-counted or NUL-terminated and no
        complete line is over the limit; otherwise the per-frame loop decides (same result).
        """
        last = buf.rfind(b"\n")
        if last < 0 or b"\0" in buf or _maybe_octet(buf):
            return []
        lines = bytes(buf).split(b"\n")
        lines.pop()  # the unterminated rest after the last LF stays buffered
        if max(map(len, lines)) > self.max_size:
            return []
        if b"\r" in buf:
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
        del buf[: last + 1]
        return lines

    def close(self) -> tuple[list[bytes], list[FrameError]]:
        """End of stream: a last line without terminator is a frame; a cut octet frame is an error."""
        buf = self._buf
        sample = self.sample_bytes
        frames: list[bytes] = []
        errors: list[FrameError] = []
        if buf and not self._skip and not self._discard_line:
            verdict, count, start = _octet_header(buf, 0, len(buf)) if buf[0] in _DIGITS else (_LINE, 0, 0)
            if verdict == _OCTET and count <= self.max_size:
                errors.append(FrameError("truncated", len(buf) - start, bytes(buf[start : start + sample])))
            elif verdict == _OCTET:
                errors.append(FrameError("oversize", count, bytes(buf[start : start + sample])))
            else:
                line = bytes(buf)
                frames.append(line[:-1] if line.endswith(b"\r") else line)
        buf.clear()
        self._skip = 0
        self._discard_line = False
        return frames, errors

    @property
    def buffered(self) -> int:
        return len(self._buf)


_LINE, _OCTET, _NEED_MORE = 0, 1, 2


def _maybe_octet(buf: bytearray) -> bool:
    """Could a frame in `buf` open with an octet count (`[1-9][0-9]{0,8} <` at a frame start)?"""
    return b" <" in buf and (
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
