"""Anomaly detection: sans-I/O detectors fed with per-second aggregates built in the workers.

`Feed` (worker side) -> bytes -> `Engine.consume`; `Engine.advance(watermark)` steps each
`Detector` over the seconds in event-time order and returns `Event`s for the publisher.
"""
from server.detect.config import DetectConfig, check_detect
from server.detect.detector import Detector
from server.detect.engine import DetectFigures, Engine
from server.detect.events import AnyEvent, Event, decode_event, encode_event
from server.detect.feed import Feed

__all__ = [
    "AnyEvent", "DetectConfig", "DetectFigures", "Detector", "Engine", "Event", "Feed",
    "check_detect", "decode_event", "encode_event",
]
