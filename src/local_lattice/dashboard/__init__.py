"""The live dashboard: a static page (HTML, CSS, one script) and its key-protected JSON API."""
