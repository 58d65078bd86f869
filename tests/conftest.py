"""Shared test set-up: puts tests/ on sys.path so helpers like gatehelp.py import by name."""
