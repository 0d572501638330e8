"""The ``opencts`` command (Typer + Rich)."""
