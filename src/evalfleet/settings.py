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
    warehouse_url: str | None = Field(None, description="Where results/ and trajectories/ "
                                      "live: a path or an fsspec URL (file://, memory://, "
                                      "s3://...); default the home. The journal stays in "
                                      "the home.")
    prices: str | None = Field(None, description="YAML price table extending the packaged one.")
    sandbox: str | None = Field(None, description="Force a sandbox provider: local or bwrap.")
    # retention (docs/retention.md); text, checked by `evalfleet retention` itself, so that a
    # mistyped value is its one-line error and no other command's
    retention_hot_days: str | None = Field(None, description="Evals younger than this many "
                                           "days keep every trajectory (default 30).")
    retention_warm_days: str | None = Field(None, description="Evals younger than this many "
                                            "days keep a stratified sample (default 183).")
    retention_warm_sample: str | None = Field(None, description="Fraction of each stratum's "
                                              "trajectories a warm eval keeps (default 0.1).")


def load_settings(home: Path | None = None) -> Settings:
    """Settings from the environment, with ``home`` from a flag taking precedence."""
    settings = Settings()
    if home is not None:
        settings = settings.model_copy(update={"home": home})
    return settings
