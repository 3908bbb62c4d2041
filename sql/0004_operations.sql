-- Progress of the asynchronous launch and destroy operations.
CREATE TABLE operations (
    operation_id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('launch', 'destroy')),
    status TEXT NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'partial')),
    requested INTEGER NOT NULL CHECK (requested >= 0),
    done INTEGER NOT NULL DEFAULT 0 CHECK (done >= 0),
    failed INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    hostnames TEXT[] NOT NULL DEFAULT '{{}}',
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX operations_created_at ON operations (created_at DESC);
