/**
 * StacyVM TypeScript SDK: sandboxes for AI agents. Zero runtime
 * dependencies; runs on Node 18+ and in browsers (fetch).
 *
 *     import { Client } from "stacyvm";
 *     const client = new Client("http://127.0.0.1:7423");
 *     await using sb = await client.spawn();
 *     console.log((await sb.exec("echo hi")).stdout);
 */
export { asyncDispose } from "./dispose.js";
export { Client, type ListOptions } from "./client.js";
export { Sandbox, ExecStream } from "./sandbox.js";
export { EventStream, type ServerEvent } from "./sse.js";
export { ExecSession } from "./session.js";
export { VERSION, type ClientOptions } from "./http.js";
export {
  StacyVMError,
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  SandboxNotFound,
  Timeout,
  Conflict,
  PayloadTooLarge,
  RateLimited,
  ProviderError,
  ServerError,
  ConnectionError,
} from "./errors.js";
export type {
  AdminObject,
  Admission,
  ArchiveResult,
  PreviewToken,
  Process,
  ProcessOptions,
  ProcessOutputLine,
  Principal,
  Quota,
  QuotaUsage,
  Template,
  TemplateOptions,
  CallOptions,
  ExecChunk,
  ExecOptions,
  ExecResult,
  FileInfo,
  Health,
  PoolStatus,
  ProviderInfo,
  QuotaSummary,
  SandboxInfo,
  SpawnOptions,
  Stats,
} from "./models.js";
