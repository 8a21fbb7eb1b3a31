// The server under test comes from STACYVM_URL. Without it the live tests
// skip, except under CI=true, where they fail.
export const URL = process.env.STACYVM_URL ?? "";
export const IMAGE = process.env.STACYVM_TEST_IMAGE ?? "stacyvm/busybox";
export const LABEL = { "sdk-test": "typescript" };

/** The skip reason, or undefined when a server is configured. */
export function skipReason(): string | undefined {
  if (URL) return undefined;
  if (process.env.CI === "true") throw new Error("STACYVM_URL is not set (test/sdk starts the server and sets it)");
  return "STACYVM_URL not set: start `stacyvm serve` and export STACYVM_URL";
}
