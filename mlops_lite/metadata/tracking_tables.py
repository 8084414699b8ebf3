"""Tracking tables beyond runs, params and metrics (see tables.py)."""
