"""Code runner: run a Python program in a fresh sandbox and print its output.

    STACYVM_URL=http://127.0.0.1:7423 python3 code_runner.py [file.py]

Without a file it runs a small built-in program, in the stacyvm/python image
(STACYVM_PYTHON_IMAGE overrides it). Output is streamed as it is produced.
"""

import os
import sys

from stacyvm import Client, NotFound, StacyVMError

PROGRAM = """\
import platform, sys
squares = [n * n for n in range(10)]
print("python", platform.python_version(), "sum of squares:", sum(squares))
print("to stderr", file=sys.stderr)
"""


def main() -> int:
    code = open(sys.argv[1]).read() if len(sys.argv) > 1 else PROGRAM
    client = Client(os.environ.get("STACYVM_URL", "http://127.0.0.1:7423"), timeout=30)
    image = os.environ.get("STACYVM_PYTHON_IMAGE", "stacyvm/python")
    try:
        sb = client.spawn(image, ttl="5m", metadata={"example": "code_runner"})
    except (NotFound, StacyVMError) as e:
        print(f"cannot spawn {image}: {e}", file=sys.stderr)
        return 1
    with sb:
        sb.write_file("/tmp/main.py", code)
        print(f"running in {sb.id} ({sb.image})")
        stream = sb.exec_stream("python3", ["/tmp/main.py"], mode="argv", timeout="60s")
        for chunk in stream:
            if chunk.stream == "stdout":
                sys.stdout.write(chunk.data)
            elif chunk.stream == "stderr":
                sys.stderr.write(chunk.data)
        sys.stdout.flush()
        print(f"exit code {stream.exit_code}")
        return 0 if stream.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
