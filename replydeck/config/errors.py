"""Config errors that name the file, the key path, what was expected and what was found."""

from __future__ import annotations


class ConfigError(Exception):
    """A problem in the user's config. ``str()`` is the whole message shown to the user.

    ``replydeck`` prints it and exits with status 2, never with a traceback.
    """

    def __init__(self, file: str | None, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        super().__init__(self.render())

    def render(self) -> str:
        where = self.file or "<config>"
        if self.key:
            return f"{where}: {self.key}: {self.problem}"
        return f"{where}: {self.problem}"


def describe(value: object) -> str:
    """How a found value is named in an error: its TOML type and a short rendering."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"string {shown!r}"
    if isinstance(value, list):
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__
