"""Dataset readers, format detection, import, and the synthetic shop."""
