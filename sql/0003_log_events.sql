-- Append-only store of CloudWatch log events. The CloudWatch event id is the key, so a
-- batch delivered again stores nothing twice. Events of a stream with no VM row are kept
-- (vm_known = false), never dropped.
CREATE TABLE vm_log_events (
    event_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    log_group TEXT NOT NULL,
    event_time TIMESTAMPTZ NOT NULL,
    message TEXT NOT NULL,
    vm_known BOOLEAN NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The newest events of one VM are read without scanning its history.
CREATE INDEX vm_log_events_hostname_time ON vm_log_events (hostname, event_time DESC, event_id DESC);
CREATE INDEX vm_log_events_orphans ON vm_log_events (hostname) WHERE NOT vm_known;
