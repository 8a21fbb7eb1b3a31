/**
 * `Symbol.asyncDispose` for runtimes that lack it (Node 18/20, older
 * browsers), so `await using sb = await client.spawn()` works everywhere
 * TypeScript downlevels `using`. It defines the well-known symbol only when
 * missing, as TypeScript's release notes recommend.
 */
const S = Symbol as unknown as { asyncDispose?: symbol };
if (typeof S.asyncDispose !== "symbol") {
  Object.defineProperty(Symbol, "asyncDispose", { value: Symbol.for("Symbol.asyncDispose") });
}

/** The async-dispose symbol the SDK's objects implement. */
export const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose;
