"""Durable event log backends."""
