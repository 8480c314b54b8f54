"""The route: cim's stateless HTTP API (FastAPI). ``python -m cim_route`` serves it."""

from __future__ import annotations

from cim_route.app import create_app

__all__ = ["create_app"]
