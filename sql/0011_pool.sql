-- The pool autopilot (issue 13): its policy, what it did and why, and the history that
-- outlives the VMs (assignments and instance hours, for reports and cost).

-- When the in-use flag last changed: idle recycling measures from it (or from the assignment,
-- whichever is later). Kept by the trigger below, so no code path has to remember it.
ALTER TABLE {vm_table} ADD COLUMN inuse_changed_at TIMESTAMPTZ;

CREATE OR REPLACE FUNCTION lablink_track_inuse_change()
RETURNS TRIGGER AS $$
BEGIN
    IF NEW.inuse IS DISTINCT FROM OLD.inuse THEN
        NEW.inuse_changed_at := now();
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_vm_inuse_changed
BEFORE UPDATE OF inuse ON {vm_table}
FOR EACH ROW
EXECUTE FUNCTION lablink_track_inuse_change();

-- The policy: one row, written when an admin first changes it (until then the `pool` section
-- of the configuration file is the policy).
CREATE TABLE pool_policy (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    min_free INTEGER NOT NULL CHECK (min_free >= 0),
    max_vms INTEGER NOT NULL CHECK (max_vms >= 0),
    idle_timeout_s INTEGER NOT NULL CHECK (idle_timeout_s >= 0),
    max_session_s INTEGER NOT NULL CHECK (max_session_s >= 0),
    unhealthy_after_s INTEGER NOT NULL CHECK (unhealthy_after_s > 0),
    opens_at TIMESTAMPTZ,
    closes_at TIMESTAMPTZ,
    prewarm_s INTEGER NOT NULL CHECK (prewarm_s >= 0),
    paused BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (min_free <= max_vms),
    CHECK (opens_at IS NULL OR closes_at IS NULL OR opens_at < closes_at)
);

-- When the reconciler last ran (one row, there from the start).
CREATE TABLE pool_state (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    last_reconcile_at TIMESTAMPTZ
);
INSERT INTO pool_state (singleton) VALUES (TRUE);

-- Every action of the reconciler, with its reason.
CREATE TABLE pool_actions (
    action_id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('launch', 'recycle', 'reboot', 'replace', 'terminate', 'adopt', 'release', 'close')),
    hostname TEXT,
    reason TEXT NOT NULL,
    operation_id UUID
);

CREATE INDEX pool_actions_at ON pool_actions (at DESC, action_id DESC);
-- The reboots of one VM (how many, the last one) are read without scanning the log.
CREATE INDEX pool_actions_reboots ON pool_actions (hostname, at) WHERE action = 'reboot';

-- Every assignment, kept after its VM is gone. Opened when a VM gets an email, closed when
-- the email is cleared or the row deleted.
CREATE TABLE assignment_history (
    assignment_id BIGSERIAL PRIMARY KEY,
    hostname TEXT NOT NULL,
    email TEXT NOT NULL,
    instance_id TEXT,
    assigned_at TIMESTAMPTZ NOT NULL,
    released_at TIMESTAMPTZ,
    release_reason TEXT,
    provisioning_seconds FLOAT,
    cloud_init_seconds FLOAT,
    container_seconds FLOAT,
    total_startup_seconds FLOAT
);

CREATE INDEX assignment_history_assigned_at ON assignment_history (assigned_at);
CREATE INDEX assignment_history_open ON assignment_history (hostname) WHERE released_at IS NULL;

-- Every instance the deployment ran, and for how long: cost = hours x the hourly price of its
-- type. instance_type is NULL when the launch did not record it (the configured machine type).
CREATE TABLE instance_ledger (
    instance_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    instance_type TEXT,
    launched_at TIMESTAMPTZ NOT NULL,
    terminated_at TIMESTAMPTZ
);

CREATE INDEX instance_ledger_open ON instance_ledger (hostname) WHERE terminated_at IS NULL;

-- History is written by the database on every change of a VM row, whatever code path made it
-- (claim, recycle, destroy, close). The release reason is the transaction's
-- lablink.release_reason setting (set_config(..., true)), else 'destroyed' for a deleted row
-- and 'released' for a cleared email. An instance's type is the transaction's
-- lablink.instance_type, set by the launch step when it records the instance on its row
-- (Vms.set_instance); unset (an instance the reconciler adopts), it stays NULL.
CREATE OR REPLACE FUNCTION lablink_record_history()
RETURNS TRIGGER AS $$
DECLARE
    old_email TEXT := CASE WHEN TG_OP <> 'INSERT' THEN OLD.useremail END;
    new_email TEXT := CASE WHEN TG_OP <> 'DELETE' THEN NEW.useremail END;
    old_instance TEXT := CASE WHEN TG_OP <> 'INSERT' THEN OLD.instance_id END;
    new_instance TEXT := CASE WHEN TG_OP <> 'DELETE' THEN NEW.instance_id END;
    reason TEXT := NULLIF(current_setting('lablink.release_reason', true), '');
    launched_type TEXT := NULLIF(current_setting('lablink.instance_type', true), '');
BEGIN
    IF old_email IS NOT NULL AND old_email IS DISTINCT FROM new_email THEN
        UPDATE assignment_history
           SET released_at = now(),
               release_reason = COALESCE(reason, CASE WHEN TG_OP = 'DELETE' THEN 'destroyed' ELSE 'released' END),
               instance_id = COALESCE(instance_id, OLD.instance_id),
               provisioning_seconds = OLD.terraformapplydurationseconds,
               cloud_init_seconds = OLD.cloudinitdurationseconds,
               container_seconds = OLD.containerstartupdurationseconds,
               total_startup_seconds = OLD.totalstartupdurationseconds
         WHERE hostname = OLD.hostname AND email = old_email AND released_at IS NULL;
    END IF;
    IF new_email IS NOT NULL AND new_email IS DISTINCT FROM old_email THEN
        INSERT INTO assignment_history (hostname, email, instance_id, assigned_at, provisioning_seconds,
                                        cloud_init_seconds, container_seconds, total_startup_seconds)
        VALUES (NEW.hostname, new_email, NEW.instance_id, COALESCE(NEW.assigned_at, now()),
                NEW.terraformapplydurationseconds, NEW.cloudinitdurationseconds,
                NEW.containerstartupdurationseconds, NEW.totalstartupdurationseconds);
    END IF;
    IF old_instance IS NOT NULL AND old_instance IS DISTINCT FROM new_instance THEN
        UPDATE instance_ledger SET terminated_at = now()
         WHERE instance_id = old_instance AND terminated_at IS NULL;
    END IF;
    IF new_instance IS NOT NULL AND new_instance IS DISTINCT FROM old_instance THEN
        INSERT INTO instance_ledger (instance_id, hostname, instance_type, launched_at)
        VALUES (new_instance, NEW.hostname, launched_type, now())
        ON CONFLICT (instance_id) DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_vm_history
AFTER INSERT OR DELETE OR UPDATE OF useremail, instance_id ON {vm_table}
FOR EACH ROW
EXECUTE FUNCTION lablink_record_history();

GRANT SELECT, INSERT, UPDATE ON pool_policy, pool_state TO {app_role};
GRANT SELECT, INSERT ON pool_actions TO {app_role};
GRANT USAGE ON SEQUENCE pool_actions_action_id_seq TO {app_role};
-- The history trigger runs with the privileges of whoever changed the VM row.
GRANT SELECT, INSERT, UPDATE ON assignment_history, instance_ledger TO {app_role};
GRANT USAGE ON SEQUENCE assignment_history_assignment_id_seq TO {app_role};
