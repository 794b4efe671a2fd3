"""Real processes for integration tests and benchmarks: nginx fixed-answer upstreams, the gateway."""
