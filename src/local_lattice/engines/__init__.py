"""In-process model engines: discovery, residency (LRU, pinning, budgets) and the token pump that
runs a blocking generation loop in a worker thread. Importing this package imports no engine."""
