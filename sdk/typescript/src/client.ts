/** The StacyVM Client. */
import { NotFound } from "./errors.js";
import { Transport, duration, type ClientOptions } from "./http.js";
import type {
  AdminObject,
  Admission,
  CallOptions,
  Health,
  PoolStatus,
  Principal,
  ProviderInfo,
  Quota,
  QuotaSummary,
  QuotaUsage,
  SandboxInfo,
  SpawnOptions,
  Template,
  TemplateOptions,
} from "./models.js";
import { Sandbox, seconds } from "./sandbox.js";
import { EventStream } from "./sse.js";

const q = encodeURIComponent;

function templateBody(name: string, image: string, o: TemplateOptions): Record<string, unknown> {
  const b: Record<string, unknown> = { name, image };
  if (o.description !== undefined) b.description = o.description;
  if (o.setup !== undefined) b.setup = o.setup;
  if (o.memoryMb !== undefined) b.memory_mb = o.memoryMb;
  if (o.cpuCores !== undefined) b.cpu_cores = o.cpuCores;
  if (o.ttl !== undefined) {
    const secs = seconds(o.ttl);
    if (secs === undefined) throw new RangeError(`ttl must be seconds or a duration like "30m", got ${JSON.stringify(o.ttl)}`);
    b.ttl_seconds = Math.round(secs);
  }
  if (o.env !== undefined) b.env = o.env;
  if (o.poolSize !== undefined) b.pool_size = o.poolSize;
  if (o.provider !== undefined) b.provider = o.provider;
  if (o.network !== undefined) b.network = o.network;
  return b;
}

function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function spawnBody(o: SpawnOptions): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (o.image !== undefined) b.image = o.image;
  if (o.provider !== undefined) b.provider = o.provider;
  if (o.memoryMb !== undefined) b.memory_mb = o.memoryMb;
  if (o.vcpus !== undefined) b.vcpus = o.vcpus;
  if (o.ttl !== undefined) b.ttl = duration(o.ttl);
  if (o.template !== undefined) b.template = o.template;
  if (o.ownerId !== undefined) b.owner_id = o.ownerId;
  if (o.metadata !== undefined) b.metadata = o.metadata;
  if (o.env !== undefined) b.env = o.env;
  if (o.network !== undefined) b.network = o.network;
  return b;
}

/** Filters of list(). */
export interface ListOptions extends CallOptions {
  ownerId?: string;
  state?: string;
  label?: string;
  limit?: number;
}

/**
 * A client for one StacyVM server: `new Client("http://127.0.0.1:7423")` or
 * `new Client({ baseUrl, apiKey, userId, timeout })` (timeout in ms).
 */
export class Client {
  private readonly t: Transport;

  constructor(opts: string | ClientOptions = {}) {
    this.t = new Transport(typeof opts === "string" ? { baseUrl: opts } : opts);
  }

  /** The API root, ending in /api/v1. */
  get baseUrl(): string {
    return this.t.baseUrl;
  }

  /** @internal the transport (tests tune its backoff). */
  get transport(): Transport {
    return this.t;
  }

  private sandbox(info: SandboxInfo): Sandbox {
    return new Sandbox(this.t, info);
  }

  /** Create a sandbox and resolve once it runs. Not retried (not idempotent). */
  async spawn(opts: SpawnOptions & CallOptions = {}): Promise<Sandbox> {
    const info = await this.t.json<SandboxInfo>({
      method: "POST",
      path: "/sandboxes",
      json: spawnBody(opts),
      signal: opts.signal,
      timeout: opts.timeout ?? Math.max(this.t.timeout, 120_000),
    });
    return this.sandbox(info);
  }

  /** Spawn a sandbox, run fn with it, and destroy it whatever happens. */
  async withSandbox<T>(opts: SpawnOptions & CallOptions, fn: (sb: Sandbox) => Promise<T> | T): Promise<T> {
    const sb = await this.spawn(opts);
    try {
      return await fn(sb);
    } finally {
      try {
        await sb.destroy();
      } catch (e) {
        if (!(e instanceof NotFound)) throw e;
      }
    }
  }

  /** Would a spawn with these options be admitted now? Creates nothing. */
  async admission(opts: SpawnOptions & CallOptions = {}): Promise<Admission> {
    return this.t.json<Admission>({
      method: "POST",
      path: "/sandboxes/admission",
      json: spawnBody(opts),
      idempotent: true,
      signal: opts.signal,
      timeout: opts.timeout,
    });
  }

  /** One sandbox; an unknown id throws NotFound (SandboxNotFound). */
  async get(id: string, o: CallOptions = {}): Promise<Sandbox> {
    return this.sandbox(await this.t.json<SandboxInfo>({ method: "GET", path: `/sandboxes/${encodeURIComponent(id)}`, ...o }));
  }

  /** Visible sandboxes, newest first. */
  async list(opts: ListOptions = {}): Promise<Sandbox[]> {
    const query = { owner_id: opts.ownerId, state: opts.state, label: opts.label, limit: opts.limit };
    const infos = await this.t.json<SandboxInfo[]>({ method: "GET", path: "/sandboxes", query, signal: opts.signal, timeout: opts.timeout });
    return (infos ?? []).map((i) => this.sandbox(i));
  }

  /** Destroy expired sandboxes; resolves with how many. */
  async prune(o: CallOptions = {}): Promise<number> {
    return (await this.t.json<{ pruned: number }>({ method: "DELETE", path: "/sandboxes", ...o })).pruned ?? 0;
  }

  /** Create a sandbox from a template (its setup steps run first); an unknown name throws NotFound. */
  async spawnTemplate(
    name: string,
    opts: { provider?: string; ttl?: string | number; ownerId?: string; metadata?: Record<string, string>; env?: Record<string, string> } & CallOptions = {},
  ): Promise<Sandbox> {
    const json = defined({ provider: opts.provider, ttl: duration(opts.ttl), owner_id: opts.ownerId, metadata: opts.metadata, env: opts.env });
    const info = await this.t.json<SandboxInfo>({
      method: "POST",
      path: `/templates/${encodeURIComponent(name)}/spawn`,
      json,
      signal: opts.signal,
      timeout: opts.timeout ?? Math.max(this.t.timeout, 120_000),
    });
    return this.sandbox(info);
  }

  /** GET /health. */
  async health(o: CallOptions = {}): Promise<Health> {
    return this.t.json<Health>({ method: "GET", path: "/health", ...o });
  }

  /** GET /live: the process answers. */
  async live(o: CallOptions = {}): Promise<Health> {
    return this.t.json<Health>({ method: "GET", path: "/live", ...o });
  }

  /** GET /ready: throws ProviderError (503) while the server is not ready. */
  async ready(o: CallOptions = {}): Promise<Health> {
    return this.t.json<Health>({ method: "GET", path: "/ready", idempotent: false, ...o });
  }

  /** The server's OpenAPI 3.1 document. */
  async openapi(o: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.t.json<Record<string, unknown>>({ method: "GET", path: "/openapi.json", ...o });
  }

  /** Every configured provider with its health and capabilities. */
  async providers(o: CallOptions = {}): Promise<ProviderInfo[]> {
    return (await this.t.json<ProviderInfo[]>({ method: "GET", path: "/providers", ...o })) ?? [];
  }

  /** One provider; an unknown name throws NotFound. */
  async provider(name: string, o: CallOptions = {}): Promise<ProviderInfo> {
    return this.t.json<ProviderInfo>({ method: "GET", path: `/providers/${encodeURIComponent(name)}`, ...o });
  }

  /** Health-check every provider now: {name: healthy}. */
  async testProviders(o: CallOptions = {}): Promise<Record<string, boolean>> {
    return this.t.json<Record<string, boolean>>({ method: "POST", path: "/providers/test", idempotent: true, ...o });
  }

  /** The shared-VM pool's status. */
  async poolStatus(o: CallOptions = {}): Promise<PoolStatus> {
    return this.t.json<PoolStatus>({ method: "GET", path: "/pool/status", ...o });
  }

  /** The warm pools of pre-started sandboxes. */
  async warmPools(o: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.t.json<Record<string, unknown>>({ method: "GET", path: "/pool/warm", ...o });
  }

  /** Counts of owners with quotas. */
  async quotaSummary(o: CallOptions = {}): Promise<QuotaSummary> {
    return this.t.json<QuotaSummary>({ method: "GET", path: "/quotas/summary", ...o });
  }

  // -- templates ---------------------------------------------------------------

  /** Every template visible to the caller. */
  async templates(o: CallOptions = {}): Promise<Template[]> {
    return (await this.t.json<Template[]>({ method: "GET", path: "/templates", ...o })) ?? [];
  }

  /** One template; an unknown name throws NotFound. */
  async template(name: string, o: CallOptions = {}): Promise<Template> {
    return this.t.json<Template>({ method: "GET", path: `/templates/${q(name)}`, ...o });
  }

  /** Create a template; a duplicate name throws Conflict. */
  async createTemplate(name: string, image: string, opts: TemplateOptions & CallOptions = {}): Promise<Template> {
    const json = templateBody(name, image, opts);
    return this.t.json<Template>({ method: "POST", path: "/templates", json, signal: opts.signal, timeout: opts.timeout });
  }

  /** Replace a template (a new version); fields left out take their defaults. */
  async updateTemplate(name: string, image: string, opts: TemplateOptions & CallOptions = {}): Promise<Template> {
    const json = templateBody(name, image, opts);
    return this.t.json<Template>({ method: "PUT", path: `/templates/${q(name)}`, json, signal: opts.signal, timeout: opts.timeout });
  }

  /** Delete a template. */
  async deleteTemplate(name: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/templates/${q(name)}`, ...o });
  }

  // -- quotas --------------------------------------------------------------------

  /** Every owner's quota. */
  async quotas(o: CallOptions = {}): Promise<Quota[]> {
    return (await this.t.json<Quota[]>({ method: "GET", path: "/quotas", ...o })) ?? [];
  }

  /** One owner's quota; none set throws NotFound. */
  async quota(owner: string, o: CallOptions = {}): Promise<Quota> {
    return this.t.json<Quota>({ method: "GET", path: `/quotas/${q(owner)}`, ...o });
  }

  /** Set an owner's quota (admin). */
  async setQuota(
    owner: string,
    opts: { maxSandboxes?: number; maxTtl?: string | number; maxExecTimeout?: string | number } & CallOptions = {},
  ): Promise<Quota> {
    const json = defined({ max_sandboxes: opts.maxSandboxes, max_ttl: duration(opts.maxTtl), max_exec_timeout: duration(opts.maxExecTimeout) });
    return this.t.json<Quota>({ method: "PUT", path: `/quotas/${q(owner)}`, json, signal: opts.signal, timeout: opts.timeout });
  }

  /** Remove an owner's quota (admin). */
  async deleteQuota(owner: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/quotas/${q(owner)}`, ...o });
  }

  /** An owner's active sandboxes against their quota. */
  async quotaUsage(owner: string, o: CallOptions = {}): Promise<QuotaUsage> {
    return this.t.json<QuotaUsage>({ method: "GET", path: `/quotas/${q(owner)}/usage`, ...o });
  }

  // -- identity and administration ---------------------------------------------------

  /** The principal the server authenticated this client as. */
  async whoami(o: CallOptions = {}): Promise<Principal> {
    return this.t.json<Principal>({ method: "GET", path: "/auth/whoami", ...o });
  }

  /** Mint an API key; the answer's `key` is shown only this once. */
  async createApiKey(role: string, opts: { name?: string; tenantId?: string; actForUsers?: boolean } & CallOptions = {}): Promise<AdminObject> {
    const json = defined({ role, name: opts.name, tenant_id: opts.tenantId, act_for_users: opts.actForUsers });
    return this.t.json<AdminObject>({ method: "POST", path: "/admin/keys", json, signal: opts.signal, timeout: opts.timeout });
  }

  /** API keys (without their secrets). */
  async apiKeys(tenant?: string, o: CallOptions = {}): Promise<AdminObject[]> {
    return (await this.t.json<AdminObject[]>({ method: "GET", path: "/admin/keys", query: { tenant }, ...o })) ?? [];
  }

  /** Revoke an API key. */
  async deleteApiKey(keyId: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/admin/keys/${q(keyId)}`, ...o });
  }

  /** Create a tenant (admin). */
  async createTenant(tenantId: string, name?: string, o: CallOptions = {}): Promise<AdminObject> {
    return this.t.json<AdminObject>({ method: "POST", path: "/admin/tenants", json: defined({ id: tenantId, name }), ...o });
  }

  /** Every tenant (admin). */
  async tenants(o: CallOptions = {}): Promise<AdminObject[]> {
    return (await this.t.json<AdminObject[]>({ method: "GET", path: "/admin/tenants", ...o })) ?? [];
  }

  /** One tenant. */
  async tenant(tenantId: string, o: CallOptions = {}): Promise<AdminObject> {
    return this.t.json<AdminObject>({ method: "GET", path: `/admin/tenants/${q(tenantId)}`, ...o });
  }

  /** Delete a tenant (admin). */
  async deleteTenant(tenantId: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/admin/tenants/${q(tenantId)}`, ...o });
  }

  /** A tenant's members and their roles. */
  async tenantMembers(tenantId: string, o: CallOptions = {}): Promise<AdminObject[]> {
    return (await this.t.json<AdminObject[]>({ method: "GET", path: `/admin/tenants/${q(tenantId)}/members`, ...o })) ?? [];
  }

  /** Add a member to a tenant or change their role. */
  async setTenantMember(tenantId: string, user: string, role: string, o: CallOptions = {}): Promise<AdminObject> {
    return this.t.json<AdminObject>({ method: "PUT", path: `/admin/tenants/${q(tenantId)}/members/${q(user)}`, json: { role }, ...o });
  }

  /** Remove a member from a tenant. */
  async deleteTenantMember(tenantId: string, user: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/admin/tenants/${q(tenantId)}/members/${q(user)}`, ...o });
  }

  /** A tenant's allow/deny policies. */
  async tenantPolicies(tenantId: string, o: CallOptions = {}): Promise<AdminObject[]> {
    return (await this.t.json<AdminObject[]>({ method: "GET", path: `/admin/tenants/${q(tenantId)}/policies`, ...o })) ?? [];
  }

  /** Add a policy (kind: image, provider or network; effect: allow or deny). */
  async createTenantPolicy(
    tenantId: string,
    kind: string,
    effect: string,
    pattern: string,
    opts: { policyId?: string; priority?: number } & CallOptions = {},
  ): Promise<AdminObject> {
    const json = defined({ kind, effect, pattern, id: opts.policyId, priority: opts.priority });
    return this.t.json<AdminObject>({ method: "POST", path: `/admin/tenants/${q(tenantId)}/policies`, json, signal: opts.signal, timeout: opts.timeout });
  }

  /** Remove a policy. */
  async deleteTenantPolicy(tenantId: string, policyId: string, o: CallOptions = {}): Promise<void> {
    await this.t.json({ method: "DELETE", path: `/admin/tenants/${q(tenantId)}/policies/${q(policyId)}`, ...o });
  }

  /** Audit events, oldest first. */
  async audit(
    opts: { tenant?: string; kind?: string; since?: string; after?: string; limit?: number } & CallOptions = {},
  ): Promise<AdminObject[]> {
    const query = { format: "jsonl", tenant: opts.tenant, kind: opts.kind, since: opts.since, after: opts.after, limit: opts.limit };
    const resp = await this.t.request({ method: "GET", path: "/admin/audit", query, accept: "application/x-ndjson", signal: opts.signal, timeout: opts.timeout });
    return (await resp.text())
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as AdminObject);
  }

  // -- observability -----------------------------------------------------------------

  /** The server's redacted diagnostics. */
  async diagnostics(o: CallOptions = {}): Promise<Record<string, unknown>> {
    return this.t.json<Record<string, unknown>>({ method: "GET", path: "/diagnostics", ...o });
  }

  /** Metric families as JSON. */
  async metrics(o: CallOptions = {}): Promise<Record<string, unknown>[]> {
    return (await this.t.json<Record<string, unknown>[]>({ method: "GET", path: "/metrics", ...o })) ?? [];
  }

  /** Metrics in the Prometheus text format (families prefixed `stacyvm_`). */
  async metricsPrometheus(o: CallOptions = {}): Promise<string> {
    return (await this.t.request({ method: "GET", path: "/metrics/prometheus", accept: "text/plain", ...o })).text();
  }

  /** Live server events (SSE): `for await (const ev of client.events())`; resume after lastEventId. */
  events(opts: { lastEventId?: string; signal?: AbortSignal } = {}): EventStream<Record<string, unknown>> {
    return new EventStream(
      () =>
        this.t.request({
          method: "GET",
          path: "/events",
          query: { last_event_id: opts.lastEventId },
          accept: "text/event-stream",
          stream: true,
          signal: opts.signal,
        }),
      opts.signal,
    );
  }
}
