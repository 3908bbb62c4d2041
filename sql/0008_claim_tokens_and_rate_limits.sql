-- Claim tokens: a researcher's VM answers a repeat request of the same email only to the
-- holder of the token handed out with the first answer. Only its SHA-256 hash is stored.
ALTER TABLE {vm_table} ADD COLUMN claim_token_hash TEXT;

-- A VM whose assignment ends (released, terminated) forgets its claim token, whoever ends
-- it: a recycled VM never carries the previous researcher's token.
CREATE OR REPLACE FUNCTION lablink_forget_claim_token()
RETURNS TRIGGER AS $$
BEGIN
    IF NEW.useremail IS NULL OR NEW.status = 'terminated' THEN
        NEW.claim_token_hash := NULL;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trigger_forget_claim_token
    BEFORE UPDATE OF useremail, status, claim_token_hash ON {vm_table}
    FOR EACH ROW EXECUTE FUNCTION lablink_forget_claim_token();

-- Rate limits of request_vm: attempts per key (a source address or an email) in fixed
-- windows. Windows that have ended are deleted as new attempts arrive, so the table holds
-- at most the keys seen in the current window.
CREATE TABLE rate_limit_windows (
    scope TEXT NOT NULL CHECK (scope IN ('address', 'email')),
    key TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end TIMESTAMPTZ NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (scope, key, window_start)
);

CREATE INDEX rate_limit_windows_end ON rate_limit_windows (window_end);

GRANT SELECT, INSERT, UPDATE, DELETE ON rate_limit_windows TO {app_role};
