-- Templates: named, versioned sandbox recipes per tenant; the recipe itself
-- is a JSON object in body (jsonb), version counts updates.
-- Quotas: per-owner caps; 0 means no limit. Durations are nanoseconds.
-- (Twin of sqlite/00003.)

-- +goose Up
CREATE TABLE templates (
    tenant_id  text        COLLATE "C" NOT NULL DEFAULT '',
    name       text        COLLATE "C" NOT NULL,
    version    bigint      NOT NULL,
    body       jsonb       NOT NULL CHECK (jsonb_typeof(body) = 'object'),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE quotas (
    owner               text        COLLATE "C" NOT NULL PRIMARY KEY,
    max_sandboxes       bigint      NOT NULL DEFAULT 0,
    max_ttl_ns          bigint      NOT NULL DEFAULT 0,
    max_exec_timeout_ns bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL
);

-- +goose Down
DROP TABLE quotas;
DROP TABLE templates;
