"""The real-time ranker: merges every live source's candidates and orders them from real-time features."""
