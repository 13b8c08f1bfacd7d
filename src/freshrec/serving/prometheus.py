"""Prometheus metrics of one app (own registry, so several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "freshrec_request_seconds",
            "Request latency by route and status.",
            ["route", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.events = Counter("freshrec_events_total", "Events acknowledged.", ["outcome"], registry=self.registry)
        self.recommendations = Counter(
            "freshrec_recommendations_total", "Lists served, by source.", ["source"], registry=self.registry
        )
        self.model_swaps = Counter("freshrec_model_swaps_total", "Model versions swapped in.", registry=self.registry)
        self.users = Gauge("freshrec_users", "Users with live state.", registry=self.registry)
        self.last_offset = Gauge(
            "freshrec_last_offset",
            "Events folded into live state, as log positions (the highest offset with one partition).",
            registry=self.registry,
        )
        self.trainer_running = Gauge(
            "freshrec_trainer_running",
            "1 while the supervised online trainer runs, 0 while it is being restarted.",
            registry=self.registry,
        )
        self.trainer_restarts = Gauge(
            "freshrec_trainer_restarts",
            "Times the supervised online trainer was restarted after dying.",
            registry=self.registry,
        )
        # Read from the online trainer's quality report at each scrape (another process keeps the counts).
        self.quality_events = Gauge(
            "freshrec_quality_events",
            "Events the data-quality guard judged, by decision (admitted, or why it was kept out of training).",
            ["decision"],
            registry=self.registry,
        )
        self.quality_flagged = Gauge(
            "freshrec_quality_flagged_users",
            "Users the data-quality guard quarantined from training, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.quality_drift = Gauge(
            "freshrec_quality_drift",
            "Newest drift figures: Jensen-Shannon divergence of the type mix and of item popularity; relative "
            "change of the model's recent-holdout NDCG@10.",
            ["signal"],
            registry=self.registry,
        )
        self.quality_drifting = Gauge(
            "freshrec_quality_drifting",
            "1 while a drift monitor is beyond its threshold.",
            ["signal"],
            registry=self.registry,
        )
