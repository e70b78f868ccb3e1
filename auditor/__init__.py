"""auditor: audit git history for leaked credentials and measure occurrences per million commits."""

__version__ = "0.1.0"
