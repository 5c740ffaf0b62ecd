"""Preloaded by the forkserver: its workers are forked with SIGINT already ignored.

A worker's initializer ignores SIGINT too, but only after the worker has unpickled it, which
imports the worker module (the parsers, numpy); a Ctrl-C that lands in that window would print a
`KeyboardInterrupt` traceback. The forkserver restores, in each child it forks, the handlers it
found at start, after its preloads: so this import decides them.
"""
import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
