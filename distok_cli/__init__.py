"""distok: creative tokens from class distributions (DisTok, CVPR 2026)."""

__version__ = "0.5.0"
