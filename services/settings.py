"""Settings from the environment (pydantic-settings). Every name is documented in the README."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.limits import Limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    engine_backend: Literal["memory"] = Field(
        default="memory", description="Where state and messages live; 'memory' is embedded."
    )
    worker_concurrency: int = Field(default=16, ge=1, le=10_000)
    worker_handler_modules: str = Field(
        default="", description="Comma-separated modules imported at start to register handlers."
    )
    orchestrator_batch_size: int = Field(default=512, ge=1, le=100_000)
    max_nodes: int = Field(default=100_000, ge=1)
    max_edges: int = Field(default=1_000_000, ge=1)
    max_config_bytes: int = Field(default=64 * 1024, ge=1)
    max_nesting_depth: int = Field(default=32, ge=1)
    max_input_bytes: int = Field(default=1024 * 1024, ge=1)
    max_output_bytes: int = Field(default=1024 * 1024, ge=1)
    log_level: str = Field(default="WARNING")

    def limits(self) -> Limits:
        return Limits(
            max_nodes=self.max_nodes,
            max_edges=self.max_edges,
            max_config_bytes=self.max_config_bytes,
            max_nesting_depth=self.max_nesting_depth,
            max_input_bytes=self.max_input_bytes,
        )

    def handler_modules(self) -> list[str]:
        return [name.strip() for name in self.worker_handler_modules.split(",") if name.strip()]
