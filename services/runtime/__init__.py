"""What a running process needs whatever its role: signals, serving, riding out backend outages
(``resilience``) and the fault suite's crash points (``faults``). Imports no deployable and no
adapter."""
