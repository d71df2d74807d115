"""The application layer (``application``), the process runtime (``runtime``), the deployables (api,
orchestrator, worker), the CLI, and the one composition root (``container``)."""
