"""Transition alias of :mod:`stratpos.core.settings` (import from there)."""

from stratpos.core.errors import ConfigError
from stratpos.core.settings import LAYERS, PROJECT_ROOT, TARGETS, MySQLSettings, Settings, load_settings

__all__ = ["LAYERS", "PROJECT_ROOT", "TARGETS", "ConfigError", "MySQLSettings", "Settings", "load_settings"]
