-- Templates: named, versioned sandbox recipes per tenant. The recipe itself
-- (image, limits, env, setup, ...) is a JSON object in body; version counts
-- updates. Times are INTEGER unix nanoseconds UTC.
-- Quotas: per-owner caps; 0 means no limit. Durations are nanoseconds.

-- +goose Up
CREATE TABLE templates (
    tenant_id  TEXT    NOT NULL DEFAULT '',
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    body       TEXT    NOT NULL CHECK (json_valid(body)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE quotas (
    owner               TEXT    NOT NULL PRIMARY KEY,
    max_sandboxes       INTEGER NOT NULL DEFAULT 0,
    max_ttl_ns          INTEGER NOT NULL DEFAULT 0,
    max_exec_timeout_ns INTEGER NOT NULL DEFAULT 0,
    updated_at          INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE quotas;
DROP TABLE templates;
