/**
 * Typed errors of the StacyVM SDK. Every API error carries the wire `code`
 * (UPPERCASE, e.g. `NOT_FOUND`), the server's `message`, the HTTP `status`
 * and the `requestId` when the server sent one; the class follows the code.
 */

/** Base class of every error the SDK throws. */
export class StacyVMError extends Error {
  readonly code: string;
  readonly status: number;
  readonly requestId: string;
  override name = "StacyVMError";

  constructor(message: string, opts: { code?: string; status?: number; requestId?: string; cause?: unknown } = {}) {
    super(opts.code ? `${opts.code}: ${message}` : message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = opts.code ?? "";
    this.status = opts.status ?? 0;
    this.requestId = opts.requestId ?? "";
  }
}

/** 400 BAD_REQUEST: malformed request or invalid field. */
export class BadRequest extends StacyVMError {
  override name = "BadRequest";
}
/** 401 UNAUTHORIZED: missing or wrong credentials. */
export class Unauthorized extends StacyVMError {
  override name = "Unauthorized";
}
/** 403 FORBIDDEN: authenticated but not allowed. */
export class Forbidden extends StacyVMError {
  override name = "Forbidden";
}
/** 404 NOT_FOUND: unknown sandbox, file, template or route. */
export class NotFound extends StacyVMError {
  override name = "NotFound";
}
/** The older SDK's name for a 404 on a sandbox. */
export const SandboxNotFound = NotFound;
/** 408 TIMEOUT (the command was killed) or the client's own request timeout. */
export class Timeout extends StacyVMError {
  override name = "Timeout";
}
/** 409 CONFLICT: duplicate name or a lease held elsewhere. */
export class Conflict extends StacyVMError {
  override name = "Conflict";
}
/** 413 PAYLOAD_TOO_LARGE. */
export class PayloadTooLarge extends StacyVMError {
  override name = "PayloadTooLarge";
}
/** 429 RESOURCE_LIMIT: quota, capacity or rate limit; `retryAfter` in seconds when the server said. */
export class RateLimited extends StacyVMError {
  override name = "RateLimited";
  readonly retryAfter: number | undefined;
  constructor(message: string, opts: { code?: string; status?: number; requestId?: string; retryAfter?: number } = {}) {
    super(message, opts);
    this.retryAfter = opts.retryAfter;
  }
}
/** 503 UNAVAILABLE: a provider or worker is unreachable, or the server drains. */
export class ProviderError extends StacyVMError {
  override name = "ProviderError";
}
/** 500 INTERNAL_ERROR: a server bug (the message carries an error id). */
export class ServerError extends StacyVMError {
  override name = "ServerError";
}
/** The server could not be reached, or the connection broke mid-answer. */
export class ConnectionError extends StacyVMError {
  override name = "ConnectionError";
}

const byCode: Record<string, new (m: string, o: { code?: string; status?: number; requestId?: string }) => StacyVMError> = {
  BAD_REQUEST: BadRequest,
  UNAUTHORIZED: Unauthorized,
  FORBIDDEN: Forbidden,
  NOT_FOUND: NotFound,
  TIMEOUT: Timeout,
  CONFLICT: Conflict,
  PAYLOAD_TOO_LARGE: PayloadTooLarge,
  UNAVAILABLE: ProviderError,
  INTERNAL_ERROR: ServerError,
};

const byStatus: Record<number, string> = {
  400: "BAD_REQUEST",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  408: "TIMEOUT",
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  429: "RESOURCE_LIMIT",
  502: "UNAVAILABLE",
  503: "UNAVAILABLE",
  504: "UNAVAILABLE",
};

/** The wire code for a status whose answer had no JSON error body. */
export function codeForStatus(status: number): string {
  return byStatus[status] ?? "INTERNAL_ERROR";
}

/** Build the typed error for a wire error. */
export function errorFor(
  code: string,
  message: string,
  opts: { status?: number; requestId?: string; retryAfter?: number } = {},
): StacyVMError {
  if (code === "RESOURCE_LIMIT") return new RateLimited(message, { code, ...opts });
  const cls = byCode[code] ?? StacyVMError;
  return new cls(message, { code, status: opts.status, requestId: opts.requestId });
}
