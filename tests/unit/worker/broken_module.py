"""Fails on import, as a user's module with a bug would; `--app` must say so clearly."""

raise ImportError("cannot import name 'Thing' from 'somewhere' (a bug in the user's module)")
