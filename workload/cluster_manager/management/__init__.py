"""The Management API: the web UI and the JSON it needs."""
