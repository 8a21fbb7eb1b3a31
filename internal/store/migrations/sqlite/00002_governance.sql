-- Governance: tenants, their members and policies, API keys created through
-- the admin API (hashed), and the audit log. Times are INTEGER unix
-- nanoseconds UTC. Sandboxes already carry owner_id and tenant_id (00001).

-- +goose Up
-- Sandboxes from before tenancy belong to the default tenant (the tenant of
-- configured keys), so their owners keep seeing them.
UPDATE sandboxes SET tenant_id = 'default' WHERE tenant_id = '';

CREATE TABLE tenants (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE tenant_members (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) STRICT;

CREATE TABLE policies (
    id         TEXT    NOT NULL PRIMARY KEY,
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,
    effect     TEXT    NOT NULL,
    pattern    TEXT    NOT NULL,
    priority   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX policies_tenant_idx ON policies (tenant_id, priority DESC);

-- Only the SHA-256 of a key is stored; the key is shown once at creation.
CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    hash          TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL DEFAULT '',
    role          TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL,
    act_for_users INTEGER NOT NULL DEFAULT 0,
    created_by    TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

-- kind is 'op' (sandbox operations) or 'admin' (control-plane calls).
-- detail never holds secrets, file contents or command output.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL DEFAULT '',
    actor       TEXT    NOT NULL DEFAULT '',
    action      TEXT    NOT NULL,
    target      TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT    NOT NULL DEFAULT '',
    result      TEXT    NOT NULL DEFAULT '',
    request_id  TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_tenant_idx ON audit_events (tenant_id, at);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE api_keys;
DROP TABLE policies;
DROP TABLE tenant_members;
DROP TABLE tenants;
