-- The instance ledger records each instance's type (issue 13, pool core note (c)): the launch
-- step sets lablink.instance_type for the transaction that records the instance on its row
-- (Vms.set_instance), as a release reason is passed. Unset (an instance the reconciler adopts),
-- the type stays NULL and is priced as the configured machine type. Only those two lines differ
-- from the function of 0011_pool.sql.
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
