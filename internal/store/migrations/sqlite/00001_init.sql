-- Sandboxes: one row per store.Sandbox.
-- Times are INTEGER unix nanoseconds UTC; NULL means the zero time.Time
-- (never expires / not destroyed). created_at and updated_at are always set.
-- metadata and env are JSON objects of strings; handle is the provider's
-- opaque JSON handle, NULL until the runtime exists.
-- Later aggregates (templates, quotas, audit, tenants) get their own files.

-- +goose Up
CREATE TABLE sandboxes (
    id           TEXT    NOT NULL PRIMARY KEY,
    state        TEXT    NOT NULL,
    provider     TEXT    NOT NULL DEFAULT '',
    image        TEXT    NOT NULL DEFAULT '',
    memory_mb    INTEGER NOT NULL DEFAULT 0,
    vcpus        REAL    NOT NULL DEFAULT 0,
    network      TEXT    NOT NULL DEFAULT '',
    owner_id     TEXT    NOT NULL DEFAULT '',
    tenant_id    TEXT    NOT NULL DEFAULT '',
    metadata     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    env          TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(env)),
    handle       BLOB,
    error        TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    destroyed_at INTEGER
) STRICT;

-- List walks (created_at DESC, id DESC); the owner and tenant indexes carry
-- the same order so a scoped listing is one index range scan.
CREATE INDEX sandboxes_created_idx ON sandboxes (created_at DESC, id DESC);
CREATE INDEX sandboxes_owner_idx ON sandboxes (owner_id, created_at DESC, id DESC);
CREATE INDEX sandboxes_tenant_idx ON sandboxes (tenant_id, created_at DESC, id DESC);
CREATE INDEX sandboxes_state_idx ON sandboxes (state);
CREATE INDEX sandboxes_expires_idx ON sandboxes (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX sandboxes_destroyed_idx ON sandboxes (destroyed_at) WHERE destroyed_at IS NOT NULL;

-- +goose Down
DROP TABLE sandboxes;
