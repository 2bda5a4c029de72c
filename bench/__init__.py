"""Clarion benchmark suite: see bench/README.md."""
