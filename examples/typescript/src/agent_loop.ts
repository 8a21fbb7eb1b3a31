// Agent loop: feed "model-written" code to a sandbox, show the model the
// result, and let it try again until the task passes.
//
// A real agent calls an LLM in model(). To stay runnable offline, this
// example's model is a fixed script of answers: a first attempt with a bug,
// then a fix after it sees the failure. Everything else is what a real agent
// does: one sandbox per task, files written, code run with a timeout, output
// and exit code fed back, the sandbox destroyed at the end (withSandbox).
//
//   STACYVM_URL=http://127.0.0.1:7423 node build/agent_loop.js
import { Client, Timeout, type ExecResult, type Sandbox } from "stacyvm";

const TASK = "Write solution.py defining fib(n) (fib(0)=0, fib(1)=1); tests.py must pass.";
const TESTS = `from solution import fib
assert [fib(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34], [fib(n) for n in range(10)]
print("all tests passed")
`;
const ANSWERS = [
  "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 3)\n", // a bug
  "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
];

/** Stand-in for an LLM call: the next answer of the script. */
function model(_task: string, history: string[]): string {
  return ANSWERS[Math.min(history.length, ANSWERS.length - 1)]!;
}

async function run(sb: Sandbox, code: string): Promise<ExecResult> {
  await sb.writeFile("/work/solution.py", code);
  try {
    return await sb.exec("python3 tests.py", { workdir: "/work", timeout: "20s" });
  } catch (e) {
    if (e instanceof Timeout) return { exit_code: 124, stdout: "", stderr: "timed out after 20s", duration: "" };
    throw e;
  }
}

const client = new Client({ baseUrl: process.env.STACYVM_URL ?? "http://127.0.0.1:7423", timeout: 30_000 });
const image = process.env.STACYVM_PYTHON_IMAGE ?? "stacyvm/python";
const ok = await client.withSandbox({ image, ttl: "10m", metadata: { example: "agent_loop" } }, async (sb) => {
  await sb.writeFile("/work/tests.py", TESTS);
  const history: string[] = [];
  for (let turn = 1; turn <= 3; turn++) {
    const code = model(TASK, history);
    const r = await run(sb, code);
    console.log(`turn ${turn}: exit ${r.exit_code}`);
    console.log("  " + (r.stdout + r.stderr).trim().replaceAll("\n", "\n  "));
    if (r.exit_code === 0) {
      console.log(`agent finished after ${turn} turn(s): success`);
      return true;
    }
    history.push(`code:\n${code}\nresult:\n${r.stderr.slice(-2000)}`);
  }
  console.log("agent finished: gave up");
  return false;
});
process.exitCode = ok ? 0 : 1;
