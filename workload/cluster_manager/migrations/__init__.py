"""Versioned SQL migrations, applied in order of their number."""
