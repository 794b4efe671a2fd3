"""Wire models: the request and response shapes of the APIs the gateway speaks."""
