"""State shared by several gateway replicas through a Redis- or Valkey-compatible store."""
