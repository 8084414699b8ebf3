"""Policy tables: decisions and approval requests (see tables.py)."""
