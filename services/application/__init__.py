"""The application layer, on ports only: the use cases (``WorkflowService``), the wait for a run's
end (``RunCompletions``), the one table of errors and their outcomes, and the read model of a run.
Shared by the CLI and the HTTP API; imports no deployable, no adapter and no framework."""
