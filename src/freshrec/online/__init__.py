"""Continual learning from the event stream: the online trainer, its replay buffer, the quality gate."""
