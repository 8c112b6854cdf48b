-- +goose Up
CREATE TABLE organizations (
    id          text NOT NULL PRIMARY KEY,
    name        text NOT NULL,
    created_at  datetime NOT NULL,
    updated_at  datetime NOT NULL
);
CREATE UNIQUE INDEX organizations_name_key ON organizations (name);

CREATE TABLE operators (
    id            text NOT NULL PRIMARY KEY,
    email         text NOT NULL,
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    disabled_at   datetime,
    created_at    datetime NOT NULL,
    updated_at    datetime NOT NULL
);
CREATE UNIQUE INDEX operators_email_key ON operators (email);

CREATE TABLE memberships (
    id              text NOT NULL PRIMARY KEY,
    organization_id text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    operator_id     text NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    created_at      datetime NOT NULL
);
CREATE UNIQUE INDEX memberships_org_operator_key ON memberships (organization_id, operator_id);
CREATE INDEX memberships_operator_idx ON memberships (operator_id);

CREATE TABLE apps (
    id                    text NOT NULL PRIMARY KEY,
    organization_id       text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                  text NOT NULL,
    display_name          text NOT NULL DEFAULT '',
    brand_color           text NOT NULL DEFAULT '',
    logo_url              text NOT NULL DEFAULT '',
    retrieve_mode_enabled boolean NOT NULL DEFAULT false,
    created_at            datetime NOT NULL,
    updated_at            datetime NOT NULL
);
CREATE UNIQUE INDEX apps_org_name_key ON apps (organization_id, name);

CREATE TABLE app_urls (
    id         text NOT NULL PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('origin', 'return_url')),
    value      text NOT NULL,
    created_at datetime NOT NULL
);
CREATE UNIQUE INDEX app_urls_app_kind_value_key ON app_urls (app_id, kind, value);

CREATE TABLE data_keys (
    id          text NOT NULL PRIMARY KEY,
    app_id      text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    version     integer NOT NULL,
    wrapped_key blob NOT NULL,
    status      text NOT NULL CHECK (status IN ('active', 'retired')),
    created_at  datetime NOT NULL
);
CREATE UNIQUE INDEX data_keys_app_version_key ON data_keys (app_id, version);

CREATE TABLE agents (
    id           text NOT NULL PRIMARY KEY,
    app_id       text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name         text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    description  text NOT NULL DEFAULT '',
    status       text NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL
);
CREATE UNIQUE INDEX agents_app_name_key ON agents (app_id, name);

CREATE TABLE api_keys (
    id                     text NOT NULL PRIMARY KEY,
    key_id                 text NOT NULL,
    app_id                 text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    agent_id               text REFERENCES agents (id) ON DELETE CASCADE,
    kind                   text NOT NULL CHECK (kind IN ('app', 'agent')),
    status                 text NOT NULL CHECK (status IN ('active', 'deprecated', 'revoked')),
    label                  text NOT NULL DEFAULT '',
    signing_key_ciphertext blob NOT NULL,
    last_used_at           datetime,
    deprecated_at          datetime,
    revoked_at             datetime,
    created_at             datetime NOT NULL,
    updated_at             datetime NOT NULL,
    CHECK ((kind = 'agent') = (agent_id IS NOT NULL))
);
CREATE UNIQUE INDEX api_keys_key_id_key ON api_keys (key_id);
CREATE INDEX api_keys_app_idx ON api_keys (app_id, agent_id);

CREATE TABLE identity_providers (
    id                       text NOT NULL PRIMARY KEY,
    app_id                   text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    issuer                   text NOT NULL,
    audience                 text NOT NULL,
    user_claim               text NOT NULL DEFAULT 'sub',
    groups_claim             text NOT NULL DEFAULT '',
    preset                   text NOT NULL DEFAULT 'generic',
    client_id                text NOT NULL DEFAULT '',
    client_secret_ciphertext blob,
    created_at               datetime NOT NULL,
    updated_at               datetime NOT NULL
);
CREATE UNIQUE INDEX identity_providers_app_key ON identity_providers (app_id);

CREATE TABLE end_users (
    id           text NOT NULL PRIMARY KEY,
    app_id       text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    issuer       text NOT NULL,
    subject      text NOT NULL,
    source       text NOT NULL CHECK (source IN ('idp', 'app_asserted')),
    email        text NOT NULL DEFAULT '',
    display_name text NOT NULL DEFAULT '',
    status       text NOT NULL CHECK (status IN ('active', 'disabled')),
    last_seen_at datetime,
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL
);
CREATE UNIQUE INDEX end_users_app_issuer_subject_key ON end_users (app_id, issuer, subject);

CREATE TABLE end_user_groups (
    id          text NOT NULL PRIMARY KEY,
    app_id      text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    end_user_id text NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    group_name  text NOT NULL,
    created_at  datetime NOT NULL
);
CREATE UNIQUE INDEX end_user_groups_user_group_key ON end_user_groups (end_user_id, group_name);
CREATE INDEX end_user_groups_app_group_idx ON end_user_groups (app_id, group_name);

CREATE TABLE provider_configs (
    id                       text NOT NULL PRIMARY KEY,
    app_id                   text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    provider                 text NOT NULL,
    client_id                text NOT NULL,
    client_secret_ciphertext blob,
    scopes                   text NOT NULL DEFAULT '',
    status                   text NOT NULL CHECK (status IN ('active', 'disabled', 'broken')),
    broken_reason            text NOT NULL DEFAULT '',
    custom_definition        text NOT NULL DEFAULT '',
    created_at               datetime NOT NULL,
    updated_at               datetime NOT NULL
);
CREATE UNIQUE INDEX provider_configs_app_provider_key ON provider_configs (app_id, provider);

CREATE TABLE managed_secrets (
    id            text NOT NULL PRIMARY KEY,
    app_id        text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name          text NOT NULL,
    description   text NOT NULL DEFAULT '',
    injection     text NOT NULL,
    allowed_hosts text NOT NULL,
    created_at    datetime NOT NULL,
    updated_at    datetime NOT NULL,
    rotated_at    datetime
);
CREATE UNIQUE INDEX managed_secrets_app_name_key ON managed_secrets (app_id, name);

CREATE TABLE credentials (
    id                       text NOT NULL PRIMARY KEY,
    app_id                   text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind                     text NOT NULL CHECK (kind IN ('oauth', 'managed_secret')),
    provider_config_id       text REFERENCES provider_configs (id) ON DELETE CASCADE,
    managed_secret_id        text REFERENCES managed_secrets (id) ON DELETE CASCADE,
    account_identifier       text NOT NULL DEFAULT '',
    access_token_ciphertext  blob,
    refresh_token_ciphertext blob,
    token_type               text NOT NULL DEFAULT '',
    scopes                   text NOT NULL DEFAULT '',
    expires_at               datetime,
    version                  integer NOT NULL DEFAULT 1,
    refresh_state            text NOT NULL DEFAULT 'idle' CHECK (refresh_state IN ('idle', 'in_flight')),
    refresh_started_at       datetime,
    refresh_failures         integer NOT NULL DEFAULT 0,
    next_refresh_at          datetime,
    last_refresh_error       text NOT NULL DEFAULT '',
    created_at               datetime NOT NULL,
    updated_at               datetime NOT NULL
);
CREATE INDEX credentials_app_provider_account_idx ON credentials (app_id, provider_config_id, account_identifier);
CREATE UNIQUE INDEX credentials_managed_secret_key ON credentials (managed_secret_id);
CREATE INDEX credentials_refresh_due_idx ON credentials (kind, expires_at);

CREATE TABLE grants (
    id                 text NOT NULL PRIMARY KEY,
    app_id             text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    credential_id      text NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    principal_kind     text NOT NULL CHECK (principal_kind IN ('user', 'group', 'system', 'agent')),
    principal_id       text NOT NULL DEFAULT '',
    provider           text NOT NULL,
    managed_secret_id  text REFERENCES managed_secrets (id) ON DELETE CASCADE,
    account_identifier text NOT NULL DEFAULT '',
    status             text NOT NULL CHECK (status IN ('active', 'expired', 'revoked', 'needs_reauth')),
    scopes             text NOT NULL DEFAULT '',
    metadata           text NOT NULL DEFAULT '{}',
    expires_at         datetime,
    last_used_at       datetime,
    revoked_at         datetime,
    created_at         datetime NOT NULL,
    updated_at         datetime NOT NULL
);
-- Grant resolution: app + principal + provider, narrowed by status.
CREATE INDEX grants_resolution_idx ON grants (app_id, principal_kind, principal_id, provider, status);
CREATE INDEX grants_credential_idx ON grants (credential_id);

CREATE TABLE delegations (
    id          text NOT NULL PRIMARY KEY,
    app_id      text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    grant_id    text NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    agent_id    text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    end_user_id text NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    status      text NOT NULL CHECK (status IN ('active', 'revoked')),
    revoked_at  datetime,
    created_at  datetime NOT NULL,
    updated_at  datetime NOT NULL
);
CREATE UNIQUE INDEX delegations_grant_agent_key ON delegations (grant_id, agent_id);
CREATE INDEX delegations_agent_idx ON delegations (app_id, agent_id, status);

CREATE TABLE connect_sessions (
    id                   text NOT NULL PRIMARY KEY,
    app_id               text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    token_hash           text NOT NULL,
    end_user_id          text REFERENCES end_users (id) ON DELETE CASCADE,
    principal_kind       text NOT NULL CHECK (principal_kind IN ('user', 'system')),
    agent_id             text REFERENCES agents (id) ON DELETE CASCADE,
    allowed_providers    text NOT NULL DEFAULT '[]',
    allowed_origin       text NOT NULL DEFAULT '',
    return_url           text NOT NULL DEFAULT '',
    metadata             text NOT NULL DEFAULT '{}',
    status               text NOT NULL CHECK (status IN ('pending', 'completed', 'failed', 'expired')),
    browser_binding_hash text NOT NULL DEFAULT '',
    result_grants        text NOT NULL DEFAULT '[]',
    error_code           text NOT NULL DEFAULT '',
    expires_at           datetime NOT NULL,
    opened_at            datetime,
    completed_at         datetime,
    created_at           datetime NOT NULL,
    updated_at           datetime NOT NULL
);
CREATE UNIQUE INDEX connect_sessions_token_hash_key ON connect_sessions (token_hash);
CREATE INDEX connect_sessions_app_idx ON connect_sessions (app_id, created_at);

CREATE TABLE oauth_flows (
    id                   text NOT NULL PRIMARY KEY,
    app_id               text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    connect_session_id   text NOT NULL REFERENCES connect_sessions (id) ON DELETE CASCADE,
    provider_config_id   text NOT NULL REFERENCES provider_configs (id) ON DELETE CASCADE,
    state_hash           text NOT NULL,
    pkce_verifier_sealed blob NOT NULL,
    browser_binding_hash text NOT NULL,
    redirect_uri         text NOT NULL,
    expires_at           datetime NOT NULL,
    used_at              datetime,
    created_at           datetime NOT NULL
);
CREATE UNIQUE INDEX oauth_flows_state_hash_key ON oauth_flows (state_hash);

CREATE TABLE policies (
    id         text NOT NULL PRIMARY KEY,
    app_id     text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    scope_kind text NOT NULL CHECK (scope_kind IN ('app', 'provider_config', 'agent', 'grant')),
    scope_id   text NOT NULL DEFAULT '',
    name       text NOT NULL,
    rule       text NOT NULL,
    enabled    boolean NOT NULL DEFAULT true,
    priority   integer NOT NULL DEFAULT 0,
    created_at datetime NOT NULL,
    updated_at datetime NOT NULL
);
CREATE INDEX policies_app_scope_idx ON policies (app_id, scope_kind, scope_id);

CREATE TABLE approvals (
    id             text NOT NULL PRIMARY KEY,
    app_id         text NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    grant_id       text NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    agent_id       text REFERENCES agents (id) ON DELETE SET NULL,
    end_user_id    text REFERENCES end_users (id) ON DELETE SET NULL,
    key_id         text NOT NULL,
    policy_id      text REFERENCES policies (id) ON DELETE SET NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'executed')),
    method         text NOT NULL,
    host           text NOT NULL,
    path           text NOT NULL,
    reason         text NOT NULL DEFAULT '',
    context        text NOT NULL DEFAULT '{}',
    request_sealed blob NOT NULL,
    result_sealed  blob,
    result_status  integer NOT NULL DEFAULT 0,
    decided_by     text NOT NULL DEFAULT '',
    decided_at     datetime,
    expires_at     datetime NOT NULL,
    created_at     datetime NOT NULL,
    updated_at     datetime NOT NULL
);
CREATE INDEX approvals_app_status_idx ON approvals (app_id, status, created_at);

-- Audit rows outlive what they describe: no foreign keys, append-only.
CREATE TABLE audit_events (
    id              text NOT NULL PRIMARY KEY,
    occurred_at     datetime NOT NULL,
    organization_id text NOT NULL DEFAULT '',
    app_id          text NOT NULL DEFAULT '',
    action          text NOT NULL,
    actor_kind      text NOT NULL DEFAULT '',
    actor_id        text NOT NULL DEFAULT '',
    key_id          text NOT NULL DEFAULT '',
    agent_id        text NOT NULL DEFAULT '',
    caller          text NOT NULL DEFAULT '',
    principal_kind  text NOT NULL DEFAULT '',
    principal_id    text NOT NULL DEFAULT '',
    grant_id        text NOT NULL DEFAULT '',
    provider        text NOT NULL DEFAULT '',
    method          text NOT NULL DEFAULT '',
    host            text NOT NULL DEFAULT '',
    path            text NOT NULL DEFAULT '',
    upstream_status integer NOT NULL DEFAULT 0,
    latency_ms      integer NOT NULL DEFAULT 0,
    outcome         text NOT NULL CHECK (outcome IN ('success', 'denied', 'error', 'upstream_error')),
    error_code      text NOT NULL DEFAULT '',
    reason          text NOT NULL DEFAULT '',
    context         text NOT NULL DEFAULT '{}',
    request_id      text NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_app_time_idx ON audit_events (app_id, occurred_at);
CREATE INDEX audit_events_grant_idx ON audit_events (grant_id, occurred_at);

CREATE TABLE request_nonces (
    key_id     text NOT NULL,
    nonce      text NOT NULL,
    expires_at datetime NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX request_nonces_expires_idx ON request_nonces (expires_at);

CREATE TABLE web_sessions (
    id              text NOT NULL PRIMARY KEY,
    token_hash      text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('operator', 'end_user')),
    operator_id     text REFERENCES operators (id) ON DELETE CASCADE,
    end_user_id     text REFERENCES end_users (id) ON DELETE CASCADE,
    app_id          text REFERENCES apps (id) ON DELETE CASCADE,
    csrf_token_hash text NOT NULL DEFAULT '',
    expires_at      datetime NOT NULL,
    last_seen_at    datetime NOT NULL,
    revoked_at      datetime,
    created_at      datetime NOT NULL
);
CREATE UNIQUE INDEX web_sessions_token_hash_key ON web_sessions (token_hash);

-- +goose Down
DROP TABLE web_sessions;
DROP TABLE request_nonces;
DROP TABLE audit_events;
DROP TABLE approvals;
DROP TABLE policies;
DROP TABLE oauth_flows;
DROP TABLE connect_sessions;
DROP TABLE delegations;
DROP TABLE grants;
DROP TABLE credentials;
DROP TABLE managed_secrets;
DROP TABLE provider_configs;
DROP TABLE end_user_groups;
DROP TABLE end_users;
DROP TABLE identity_providers;
DROP TABLE api_keys;
DROP TABLE agents;
DROP TABLE data_keys;
DROP TABLE app_urls;
DROP TABLE apps;
DROP TABLE memberships;
DROP TABLE operators;
DROP TABLE organizations;
