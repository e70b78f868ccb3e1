"""Fixtures that ship with the package, for tests, benchmarks, the demo and users' own pipelines: a Twilio stand-in
on 127.0.0.1 (``twilio``) and synthetic histories with planted fake credentials (``history``)."""

from auditor.testing.twilio import TwilioStandIn, serve, serve_in_thread

__all__ = ["TwilioStandIn", "serve", "serve_in_thread"]
