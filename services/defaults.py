"""Defaults that a setting and a quick client command both need (the client does not import the
settings: pydantic-settings alone costs a tenth of a second of start-up)."""

DEFAULT_API_STR = "/api"
