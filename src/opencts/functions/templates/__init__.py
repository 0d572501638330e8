"""Ready-made function handlers (``opencts functions create NAME --template ...``).

Each template is a plain handler file that runs on FunctionGraph too: the standard library and
``requests`` only, nothing from OpenCTS. :data:`TEMPLATES` names them for the CLI.
"""

from __future__ import annotations

from importlib.resources import files

#: template name -> (file name in this package, handler, environment variables it reads)
TEMPLATES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "login-whitelist": ("login_whitelist.py", "login_whitelist.handler", ("SMN_Topic", "RegionName", "IP")),
}


def source(name: str) -> bytes:
    """The handler file of template ``name``; KeyError if there is no such template."""
    filename = TEMPLATES[name][0]
    return files(__package__).joinpath(filename).read_bytes()
