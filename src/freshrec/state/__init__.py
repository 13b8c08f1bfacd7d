"""Live per-user state backends and trending."""
