"""Local API server (see core.py)."""
