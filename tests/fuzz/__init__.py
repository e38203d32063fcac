"""Every route, every method, every role, with hostile values (RELIABILITY row 34)."""
