-- What the serverless system needs beside the seed's columns (which stay untouched):
-- the per-VM token (only its SHA-256 is stored), the EC2 instance, assignment and
-- liveness times.
ALTER TABLE {vm_table}
    ADD COLUMN token_hash TEXT,
    ADD COLUMN instance_id TEXT,
    ADD COLUMN assigned_at TIMESTAMPTZ,
    ADD COLUMN last_seen_at TIMESTAMPTZ;

-- One researcher, one VM: the database itself refuses a second VM for the same email,
-- whatever races the application loses.
CREATE UNIQUE INDEX {vm_email_index} ON {vm_table} (UserEmail) WHERE UserEmail IS NOT NULL;

-- The free pool: what assignment and the public free-VM count scan.
CREATE INDEX {vm_free_index} ON {vm_table} (CreatedAt, HostName)
    WHERE CrdCommand IS NULL AND UserEmail IS NULL AND Status = 'running';

CREATE UNIQUE INDEX {vm_instance_index} ON {vm_table} (instance_id) WHERE instance_id IS NOT NULL;
