"""The SSE sink under the hub's policy: a client that does not read has its messages queued in
the subscriber's bounded queue (the oldest dropped, then a `lagged` notice) and is disconnected
once stalled, exactly as a control-port subscriber is."""
from __future__ import annotations

import asyncio
import json

from logtallyd.publish.pubsub import Hub, Subscriber
from logtallyd.publish.sse import SseSink, sse_frames


def test_frames_are_one_data_event_per_line() -> None:
    assert sse_frames(b'{"a":1}\n{"b":2}\n') == b'data: {"a":1}\n\ndata: {"b":2}\n\n'


def test_a_client_that_does_not_read_is_bounded_then_disconnected() -> None:
    async def run() -> None:
        now = [0.0]
        aborted: list[bool] = []
        hub = Hub(queue_size=2, stalled_s=0.5, clock=lambda: now[0])
        sink = SseSink(lambda: aborted.append(True))
        sub = Subscriber(sink, hub.queue_size, hub.clock)  # type: ignore[arg-type]
        sink.subscriber = sub
        sub.topics.add("stats")
        hub.add(sub)
        body = sink.stream(hub, sub)
        for i in range(5):  # the response has not sent the first: the rest wait in the queue
            hub.publish("stats", {"n": i})
        assert sub.dropped_total == 2 and list(sub.queue) == [b'{"n":3}\n', b'{"n":4}\n']
        assert await anext(body) == b'data: {"n":0}\n\n'
        # sent: the queue goes out with its lagged notice first, in one write
        assert await anext(body) == sse_frames(b'{"type":"lagged","dropped":2}\n{"n":3}\n{"n":4}\n')
        hub.publish("stats", {"n": 5})  # held: the response is "writing" it and never returns
        now[0] = 0.4
        assert hub.sweep_stalled(now[0]) == 0
        now[0] = 1.0
        assert hub.sweep_stalled(now[0]) == 1 and aborted == [True]
        assert hub.figures().disconnected_stalled == 1 and not hub.subscribers
        await body.aclose()

    asyncio.run(run())


def test_frames_hold_the_stream_lines_unchanged() -> None:
    line = json.dumps({"type": "stats", "received": 3}).encode() + b"\n"
    assert json.loads(sse_frames(line)[len(b"data: "):]) == {"type": "stats", "received": 3}
