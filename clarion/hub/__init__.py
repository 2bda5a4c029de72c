"""Realtime hub: the broker (memory | redis | postgres), unread-count cache, rate limits,
session registry, Redis health and graceful degradation. The only package that speaks
Redis. See docs/realtime.md."""
