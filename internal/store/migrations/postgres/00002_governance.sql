-- Governance: tenants, their members and policies, API keys created through
-- the admin API (hashed), and the audit log (twin of sqlite/00002).

-- +goose Up
-- Sandboxes from before tenancy belong to the default tenant (kept for
-- parity with SQLite; a new Postgres database has no such rows).
UPDATE sandboxes SET tenant_id = 'default' WHERE tenant_id = '';

CREATE TABLE tenants (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY,
    name       text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);

CREATE TABLE tenant_members (
    tenant_id  text        COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    text        COLLATE "C" NOT NULL,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE policies (
    id         text        COLLATE "C" NOT NULL PRIMARY KEY,
    tenant_id  text        COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind       text        NOT NULL,
    effect     text        NOT NULL,
    pattern    text        NOT NULL,
    priority   bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);
CREATE INDEX policies_tenant_idx ON policies (tenant_id, priority DESC);

-- Only the SHA-256 of a key is stored; the key is shown once at creation.
CREATE TABLE api_keys (
    id            text        COLLATE "C" NOT NULL PRIMARY KEY,
    hash          text        NOT NULL UNIQUE,
    name          text        NOT NULL DEFAULT '',
    role          text        NOT NULL,
    tenant_id     text        NOT NULL,
    act_for_users boolean     NOT NULL DEFAULT false,
    created_by    text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- kind is 'op' (sandbox operations) or 'admin' (control-plane calls).
-- detail never holds secrets, file contents or command output. seq follows
-- commit order: Append serializes on a transaction advisory lock, so a
-- reader paging with AfterSeq never skips a row committed late.
CREATE TABLE audit_events (
    seq         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    kind        text        NOT NULL,
    tenant_id   text        NOT NULL DEFAULT '',
    actor       text        NOT NULL DEFAULT '',
    action      text        NOT NULL,
    target      text        NOT NULL DEFAULT '',
    detail      text        NOT NULL DEFAULT '',
    remote_addr text        NOT NULL DEFAULT '',
    result      text        NOT NULL DEFAULT '',
    request_id  text        NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE policies;
DROP TABLE tenant_members;
DROP TABLE tenants;
