-- Sandboxes: one row per store.Sandbox (the Postgres twin of
-- sqlite/00001_init.sql; versions are numbered alike in both dialects).
-- Times are timestamptz (microseconds); NULL means the zero time.Time
-- (never expires / not destroyed). created_at and updated_at are always set.
-- metadata and env are JSON objects of strings; handle is the provider's
-- opaque handle, kept byte for byte (bytea, not jsonb, which would
-- reformat it), NULL until the runtime exists.
-- Keys that are listed in order use COLLATE "C": byte order, the same on
-- every server locale and the same as SQLite's.

-- +goose Up
CREATE TABLE sandboxes (
    id           text             COLLATE "C" NOT NULL PRIMARY KEY,
    state        text             NOT NULL,
    provider     text             NOT NULL DEFAULT '',
    image        text             NOT NULL DEFAULT '',
    memory_mb    bigint           NOT NULL DEFAULT 0,
    vcpus        double precision NOT NULL DEFAULT 0,
    network      text             NOT NULL DEFAULT '',
    owner_id     text             NOT NULL DEFAULT '',
    tenant_id    text             NOT NULL DEFAULT '',
    metadata     jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    env          jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(env) = 'object'),
    handle       bytea,
    error        text             NOT NULL DEFAULT '',
    created_at   timestamptz      NOT NULL,
    updated_at   timestamptz      NOT NULL,
    expires_at   timestamptz,
    destroyed_at timestamptz
);

-- List walks (created_at DESC, id DESC); the owner and tenant indexes carry
-- the same order so a scoped listing is one index range scan. Label
-- filters are one jsonb containment test (metadata @> '{"k":"v"}').
CREATE INDEX sandboxes_created_idx ON sandboxes (created_at DESC, id DESC);
CREATE INDEX sandboxes_owner_idx ON sandboxes (owner_id, created_at DESC, id DESC);
CREATE INDEX sandboxes_tenant_idx ON sandboxes (tenant_id, created_at DESC, id DESC);
CREATE INDEX sandboxes_state_idx ON sandboxes (state);
CREATE INDEX sandboxes_expires_idx ON sandboxes (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX sandboxes_destroyed_idx ON sandboxes (destroyed_at) WHERE destroyed_at IS NOT NULL;
CREATE INDEX sandboxes_metadata_idx ON sandboxes USING gin (metadata jsonb_path_ops);

-- +goose Down
DROP TABLE sandboxes;
