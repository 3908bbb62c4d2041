-- Audit trail: one row per insert, update and delete of a VM row, written by the database
-- itself so no code path can forget it. The actor is the session's lablink.actor setting
-- (set by every lablink connection), else the database role.
CREATE TABLE vm_audit (
    audit_id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    actor TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    hostname TEXT NOT NULL,
    old_status TEXT,
    new_status TEXT,
    old_email TEXT,
    new_email TEXT,
    assignment_changed BOOLEAN NOT NULL DEFAULT FALSE,
    changed_columns TEXT[] NOT NULL DEFAULT '{{}}'
);

CREATE INDEX vm_audit_hostname_at ON vm_audit (hostname, at);

CREATE OR REPLACE FUNCTION lablink_audit_vm_change()
RETURNS TRIGGER AS $$
DECLARE
    old_row JSONB := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END;
    new_row JSONB := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END;
    changed TEXT[] := '{{}}';
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT COALESCE(array_agg(key ORDER BY key), '{{}}')
          INTO changed
          FROM jsonb_object_keys(new_row) AS key
         WHERE old_row -> key IS DISTINCT FROM new_row -> key;
    END IF;

    INSERT INTO vm_audit (actor, action, hostname, old_status, new_status,
                          old_email, new_email, assignment_changed, changed_columns)
    VALUES (
        COALESCE(NULLIF(current_setting('lablink.actor', true), ''), session_user),
        TG_OP,
        COALESCE(new_row ->> 'hostname', old_row ->> 'hostname'),
        old_row ->> 'status',
        new_row ->> 'status',
        old_row ->> 'useremail',
        new_row ->> 'useremail',
        (old_row ->> 'useremail') IS DISTINCT FROM (new_row ->> 'useremail')
            OR (old_row ->> 'crdcommand') IS DISTINCT FROM (new_row ->> 'crdcommand'),
        changed
    );
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_vm_audit
AFTER INSERT OR UPDATE OR DELETE ON {vm_table}
FOR EACH ROW
EXECUTE FUNCTION lablink_audit_vm_change();
