"""Clouds behind one protocol. Adapters return the project's dataclasses and raise `ProviderError`."""
