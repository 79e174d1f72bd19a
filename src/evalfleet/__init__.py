"""evalfleet: AI-agent evaluation as a production service."""

__version__ = "0.1.0"

__all__ = ["__version__"]
