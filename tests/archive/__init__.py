"""A package only so that its ``conftest.py`` is ``archive.conftest`` to mypy and pytest (the root
``tests/conftest.py`` is ``conftest``); tests elsewhere stay top-level modules."""
