"""Realtime hub: the broker (memory | redis | postgres), rate limits,
session registry, Redis health and graceful degradation. The only package that speaks
Redis. See docs/realtime.md."""
