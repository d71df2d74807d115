"""Driven adapters: implementations of the domain's ports. They never import ``services``."""
