"""The user-facing surface: the HTTP server routes, the httpx client and the `shoal` CLI."""
