"""Settings, declared once. Precedence: command-line flag > environment > default."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """evalfleet's configuration, read from ``EVALFLEET_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="EVALFLEET_", extra="ignore")

    home: Path = Field(Path(".evalfleet"),
                       description="Where the journal, results and trajectories live.")
    journal_url: str | None = Field(None, description="SQLAlchemy URL of the journal; default "
                                    "SQLite in the home (journal.db).")
    prices: str | None = Field(None, description="YAML price table extending the packaged one.")
    sandbox: str | None = Field(None, description="Force a sandbox provider: local or bwrap.")


def load_settings(home: Path | None = None) -> Settings:
    """Settings from the environment, with ``home`` from a flag taking precedence."""
    settings = Settings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    return settings
