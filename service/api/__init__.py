"""HTTP endpoints of tgwatch processes: the ops endpoints (metrics, health, readiness)."""
