"""Product events: decoding, validation and the dead-letter envelope (pure code)."""
