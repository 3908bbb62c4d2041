-- A launch that a "destroy all" stopped ends 'cancelled' (issue 12 item 6): its step starts
-- no further instance once it sees that status, and the status tells the admin why.
ALTER TABLE operations DROP CONSTRAINT operations_status_check;
ALTER TABLE operations ADD CONSTRAINT operations_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'partial', 'cancelled'));
