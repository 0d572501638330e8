"""The HTTP layer: thin routers per public API, one error mapper. Handlers only translate."""

from opencts.api.app import create_app

__all__ = ["create_app"]
