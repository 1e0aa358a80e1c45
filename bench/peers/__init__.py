"""Peer adapters. Each imports only its own system, so a case process loads one runtime."""
