"""Drivers and deployables: orchestrator, worker, CLI, and the one composition root."""
