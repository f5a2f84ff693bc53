"""Settings (``LEADLINE_*`` environment) and the declarative metric definitions."""

from leadline.config.definitions import Definitions, load_definitions
from leadline.config.settings import Settings, load_settings

__all__ = ["Definitions", "Settings", "load_definitions", "load_settings"]
