"""The distok version (one place; hatch reads it from here)."""

__version__ = "0.8.0"
