"""What the deployables share: use cases over the ports, and run-completion notices."""
