"""Observability: request timings, the timing log line, metrics and the events ring."""
