-- The access gate of request_vm, as the admin set it at run time (PUT /api/access). No row:
-- the `access` section of the configuration applies. At most one row (the key is always
-- TRUE). The workshop code is kept only as a salted hash; the lists hold lower-case text.
CREATE TABLE access_settings (
    singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    code_hash TEXT,
    allowed_emails TEXT[] NOT NULL DEFAULT '{{}}',
    allowed_domains TEXT[] NOT NULL DEFAULT '{{}}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (allowed_emails::text = lower(allowed_emails::text)),
    CHECK (allowed_domains::text = lower(allowed_domains::text))
);

GRANT SELECT, INSERT, UPDATE ON access_settings TO {app_role};
