"""Capability routing: which concrete model (on which backend) serves a request's ``model``."""
