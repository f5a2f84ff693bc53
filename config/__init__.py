"""Settings (``LEADLINE_*`` environment) and the declarative metric definitions."""

from config.definitions import Definitions, load_definitions
from config.settings import Settings, load_settings

__all__ = ["Definitions", "Settings", "load_definitions", "load_settings"]
