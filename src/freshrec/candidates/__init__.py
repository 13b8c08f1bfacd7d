"""Live candidate sources: items proposed for a user from live state, each with its own score."""
