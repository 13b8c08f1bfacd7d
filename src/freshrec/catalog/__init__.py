"""Catalogue backends: items and the id map."""
