-- Bounds on what the VMs' logs store (lablink/db/vm_logs.py): each VM's ingest window and
-- what it did not store because the window was full (shown to the admin beside its logs).
CREATE TABLE vm_log_ingest (
    hostname TEXT PRIMARY KEY,
    window_start TIMESTAMPTZ NOT NULL DEFAULT now(),
    window_events INTEGER NOT NULL DEFAULT 0,
    window_bytes BIGINT NOT NULL DEFAULT 0,
    dropped_events BIGINT NOT NULL DEFAULT 0,
    dropped_bytes BIGINT NOT NULL DEFAULT 0
);

-- Pruning by age reads the oldest events first, by the server's time (a VM sets event_time).
CREATE INDEX vm_log_events_ingested ON vm_log_events (ingested_at);
-- Pruning the events kept aside reads the newest of them first.
CREATE INDEX vm_log_events_unknown_newest ON vm_log_events (ingested_at DESC, event_id DESC) WHERE NOT vm_known;

GRANT SELECT, INSERT, UPDATE, DELETE ON vm_log_ingest TO {app_role};
