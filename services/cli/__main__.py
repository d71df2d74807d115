"""``python -m services.cli``: the same as ``dag-service`` (how ``web`` starts its orchestrator)."""

from services.cli import main

main()
