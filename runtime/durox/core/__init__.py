"""The deterministic heart of durox: histories in, decisions out.

Nothing in this package touches a store, a socket, the wall clock or a random source; time and
ids come in as arguments. That is what lets every turn be replayed bit for bit, and what lets the
tests drive it with small hand-built histories and no event loop (import-linter enforces it).
"""
