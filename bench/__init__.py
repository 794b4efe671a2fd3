"""Benchmarks: scripts that start real processes on loopback and print figures (never run by pytest)."""
