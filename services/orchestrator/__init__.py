"""The orchestrator deployable: applies events to runs and dispatches what became ready."""

from services.orchestrator.loop import Orchestrator

__all__ = ["Orchestrator"]
