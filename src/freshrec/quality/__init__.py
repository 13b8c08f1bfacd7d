"""Data quality of the event stream: what the online trainer may learn from, and drift monitors."""
