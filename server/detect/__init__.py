"""Anomaly detection: sans-I/O detectors fed with per-second aggregates built in the workers.

`Feed` (worker side) -> bytes -> `Engine.consume`; `Engine.advance(watermark)` steps each
`Detector` over the seconds in event-time order and returns `Event`s for the publisher. Importing
the package imports nothing, so `detect.config` stays light for the config loader.
"""
