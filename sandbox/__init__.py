"""Stockade sandbox: what runs in the confined child, and the API app authors program against.

This package imports nothing from `host` or `policies` (DESIGN: the child holds no host code).
"""
from __future__ import annotations
