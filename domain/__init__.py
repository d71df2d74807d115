"""Pure core of the engine: definitions, validation, templates, the run aggregate and the ports.

Only the standard library and pydantic (for the definition schema) are imported here.
"""
