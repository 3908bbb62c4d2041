-- The application role: what the functions and the listener log in as. It may read and write
-- the rows of the tables they use, and nothing else: no DDL, no other schema objects. The
-- master user (the owner of everything) is left to the migrations. Roles belong to the whole
-- server, so a second database on the same server finds the role already there. The role
-- has no password here: where one is needed (AWS), the migrations step sets it from Secrets
-- Manager, since a migration file cannot hold a secret.
DO $app_role$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {app_role_name}) THEN
        CREATE ROLE {app_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$app_role$;

-- PostgreSQL 15 and later already refuse CREATE in public to ordinary roles; older servers
-- (a developer's) are made to match.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {app_role};

GRANT SELECT, INSERT, UPDATE, DELETE ON {vm_table}, vm_log_events, operations TO {app_role};
-- The audit trigger runs with the privileges of whoever changed the VM row: it inserts here
-- and draws the row's id from the sequence. Nothing of the application reads the trail.
GRANT INSERT ON vm_audit TO {app_role};
GRANT USAGE ON SEQUENCE vm_audit_audit_id_seq TO {app_role};
