"""Registry tables beyond models and versions (see tables.py)."""
