// Code runner: run a Python program in a fresh sandbox and stream its output.
//
//   STACYVM_URL=http://127.0.0.1:7423 node build/code_runner.js [file.py]
import { readFileSync } from "node:fs";
import { Client } from "stacyvm";

const PROGRAM = `import platform, sys
squares = [n * n for n in range(10)]
print("python", platform.python_version(), "sum of squares:", sum(squares))
print("to stderr", file=sys.stderr)
`;

const code = process.argv[2] ? readFileSync(process.argv[2], "utf8") : PROGRAM;
const client = new Client({ baseUrl: process.env.STACYVM_URL ?? "http://127.0.0.1:7423", timeout: 30_000 });
const image = process.env.STACYVM_PYTHON_IMAGE ?? "stacyvm/python";

// `await using` destroys the sandbox when the block ends, even on errors.
{
  await using sb = await client.spawn({ image, ttl: "5m", metadata: { example: "code_runner" } });
  await sb.writeFile("/tmp/main.py", code);
  console.log(`running in ${sb.id} (${sb.image})`);
  const stream = sb.execStream("python3", { args: ["/tmp/main.py"], mode: "argv", timeout: "60s" });
  for await (const chunk of stream) {
    if (chunk.stream === "stdout") process.stdout.write(chunk.data);
    else if (chunk.stream === "stderr") process.stderr.write(chunk.data);
  }
  console.log(`exit code ${stream.exitCode}`);
  process.exitCode = stream.exitCode === 0 ? 0 : 1;
}
