"""Prometheus metrics of `koala serve` and `koala record` (one registry per service, so
tests and several services in one process do not share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import disable_created_metrics

disable_created_metrics()  # the *_created series only double the output

REJECT_REASONS = ("not_json", "too_large", "not_a_session", "bad_bytes", "bad_request", "unauthorized", "spool_full")


class IngestMetrics:
    """Counters of the path a session takes: accepted -> spooled -> flushed into the store."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.accepted = Counter("koala_ingest_accepted", "Sessions accepted (durably spooled).", registry=r)
        self.rejected = Counter("koala_ingest_rejected", "Documents or requests rejected, by reason.", ["reason"], registry=r)
        self.spooled = Counter("koala_ingest_spooled", "Sessions written to the spool (fsynced).", registry=r)
        self.flushed = Counter("koala_ingest_flushed", "Sessions moved from the spool into the store.", registry=r)
        self.store_errors = Counter("koala_ingest_store_errors", "Failed attempts to open or write the store.", registry=r)
        self.store_rejected = Counter("koala_ingest_store_rejected", "Sessions the store refused for good (kept in rejected.ndjson).", registry=r)
        self.redacted = Counter("koala_ingest_redacted_values", "Values masked by redaction.", registry=r)
        self.spool_bytes = Gauge("koala_ingest_spool_bytes", "Bytes in the spool not yet stored.", registry=r)
        self.spool_sessions = Gauge("koala_ingest_spool_sessions", "Sessions in the spool not yet stored.", registry=r)
        self.store_up = Gauge("koala_ingest_store_up", "1 while the last write to the store succeeded.", registry=r)
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)  # every reason shows, at 0, from the start

    def set_store_up(self, up: bool) -> None:
        self.store_up.set(1 if up else 0)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class RecordMetrics(IngestMetrics):
    """`koala record` adds what the recording proxy saw."""

    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.sessions = Counter("koala_record_sessions", "Sessions recorded, complete or incomplete.", ["state"], registry=r)
        self.unattributed = Counter("koala_record_unattributed_talks", "Outbound talks made while no inbound request was in flight.", registry=r)
        self.skipped = Counter("koala_record_skipped_requests", "Inbound requests proxied but not recorded (sampling, URL filters).", registry=r)
        self.sessions.labels("complete")
        self.sessions.labels("incomplete")


__all__ = ["CONTENT_TYPE", "IngestMetrics", "RecordMetrics", "REJECT_REASONS"]
