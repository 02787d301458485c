"""Loading and validating the TOML config; resolving secrets."""

from replydeck.config.errors import ConfigError
from replydeck.config.secrets import Secret
from replydeck.config.table import Table

__all__ = ["ConfigError", "Secret", "Table"]
