"""koala-store: record, store, replay and diff backend traffic; compatible with DiDi's Koala."""

__version__ = "0.1.0"
