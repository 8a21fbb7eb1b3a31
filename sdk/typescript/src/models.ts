/** JSON shapes of the StacyVM API (API.md). Times are RFC 3339 strings. */

/** The API's sandbox object. */
export interface SandboxInfo {
  id: string;
  state: "creating" | "running" | "paused" | "stopped" | "unhealthy" | "expired" | "destroyed" | "error" | string;
  provider: string;
  image: string;
  memory_mb: number;
  vcpus: number;
  owner_id?: string;
  tenant_id?: string;
  vm_id?: string;
  worker_id?: string;
  created_at: string;
  expires_at: string;
  metadata?: Record<string, string>;
  preview_domain?: string;
  [key: string]: unknown;
}

/** Options of spawn and admission; omitted fields take the server's defaults. */
export interface SpawnOptions {
  image?: string;
  provider?: string;
  memoryMb?: number;
  vcpus?: number;
  /** A Go duration string ("30m") or seconds. */
  ttl?: string | number;
  template?: string;
  ownerId?: string;
  metadata?: Record<string, string>;
  env?: Record<string, string>;
  network?: "none" | "bridge" | "allowlist";
}

/** Options of exec and execStream. */
export interface ExecOptions {
  args?: string[];
  /** "shell" (default: /bin/sh -c) or "argv" (executed directly). */
  mode?: "shell" | "argv";
  env?: Record<string, string>;
  workdir?: string;
  /** Kill the command after this long: a Go duration string ("10s") or seconds. */
  timeout?: string | number;
}

/** A synchronous exec's outcome; a non-zero exit code is a result, not an error. */
export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  duration: string;
}

/** One streamed exec line; the last has stream "exit" and the exit code. */
export interface ExecChunk {
  stream: "stdout" | "stderr" | "exit";
  data: string;
  exit_code?: number;
}

/** A file inside a sandbox; mode is octal digits ("644"). */
export interface FileInfo {
  path: string;
  size: number;
  mode: string;
  is_dir: boolean;
  mod_time: string;
}

/** Would a spawn be admitted now? Exactly the keys API.md lists. */
export interface Admission {
  allowed: boolean;
  queueable: boolean;
  reason?: string;
  active_sandboxes: number;
  max_sandboxes: number;
  active_owner_sandboxes?: number;
  max_owner_sandboxes?: number;
  max_ttl?: string;
}

/** GET /health, /live, /ready. */
export interface Health {
  status: string;
  version: string;
  uptime: string;
  [key: string]: unknown;
}

/** One provider of GET /providers. */
export interface ProviderInfo {
  name: string;
  healthy: boolean;
  default: boolean;
  latency_ms: number;
  last_checked: string;
  error?: string;
  capabilities: string[];
  [key: string]: unknown;
}

/** GET /pool/status. */
export interface PoolStatus {
  enabled: boolean;
  vms?: number;
  max_vms?: number;
  total_users?: number;
  max_users_per_vm?: number;
}

/** GET /quotas/summary. */
export interface QuotaSummary {
  total: number;
  with_max_sandboxes: number;
  with_max_ttl: number;
  with_max_exec_timeout: number;
}

/** GET /sandboxes/{id}/stats. */
export interface Stats {
  supported: boolean;
  cpu_pct?: number;
  mem_bytes?: number;
  mem_limit_bytes?: number;
}

/** Per-call options: every call accepts an AbortSignal and a timeout override (ms). */
export interface CallOptions {
  signal?: AbortSignal;
  timeout?: number;
}

/** A sandbox template (a named, versioned recipe). */
export interface Template {
  name: string;
  version: number;
  image: string;
  description?: string;
  setup?: string[];
  allowed_hosts?: string[];
  memory_mb: number;
  cpu_cores: number;
  ttl_seconds: number;
  env?: Record<string, string>;
  pool_size: number;
  provider?: string;
  network?: string;
  created_at: string;
  updated_at: string;
  [key: string]: unknown;
}

/** Fields of createTemplate/updateTemplate (name and image are arguments). */
export interface TemplateOptions {
  description?: string;
  setup?: string[];
  memoryMb?: number;
  cpuCores?: number;
  /** Seconds, or a duration string like "30m" (converted to ttl_seconds). */
  ttl?: number | string;
  env?: Record<string, string>;
  poolSize?: number;
  provider?: string;
  network?: string;
}

/** An owner's quota; "" and 0 mean no limit. */
export interface Quota {
  owner: string;
  max_sandboxes: number;
  max_ttl: string;
  max_exec_timeout: string;
  updated_at?: string;
}

/** An owner's active sandboxes against their quota. */
export interface QuotaUsage {
  owner: string;
  active_sandboxes: number;
  has_quota: boolean;
  max_sandboxes: number;
  max_ttl: string;
  max_exec_timeout: string;
}

/** GET /auth/whoami. */
export interface Principal {
  subject: string;
  role: string;
  tenant_id: string;
  method: string;
  act_for_users: boolean;
}

/** The summary of an archive upload. */
export interface ArchiveResult {
  status: string;
  files: number;
  dirs: number;
  symlinks: number;
  hard_links: number;
  bytes: number;
  skipped: number;
  received_bytes: number;
}

/** A preview token for a sandbox port. */
export interface PreviewToken {
  token: string;
  expires_at: string;
  url?: string;
  path_url: string;
}

/** An administrative object (tenant, key, member, policy, audit event): the server's JSON. */
export type AdminObject = Record<string, unknown>;

/** A background process (startProcess). */
export interface Process {
  id: string;
  pid: number;
  argv: string[];
  tty: boolean;
  stdin: boolean;
  running: boolean;
  exit_code?: number;
  timed_out?: boolean;
  started_at: string;
  exited_at?: string;
  output_start: number;
  output_end: number;
  output_limit: number;
}

/** Options of startProcess. */
export interface ProcessOptions extends ExecOptions {
  tty?: boolean;
  cols?: number;
  rows?: number;
  /** Keep stdin open for processStdin. */
  stdin?: boolean;
  /** Bytes of output kept in the ring. */
  outputLimit?: number;
}

/** One NDJSON line of processOutput; the last has stream "exit". */
export interface ProcessOutputLine {
  stream: "stdout" | "stderr" | "exit" | string;
  data?: string;
  offset?: number;
  exit_code?: number;
  timed_out?: boolean;
}
