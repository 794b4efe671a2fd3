"""Backends: one small protocol (``base.Backend``) and one module per vendor or engine."""
