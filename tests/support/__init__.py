"""Test helpers: real worker processes, producers, and the batch oracle."""
