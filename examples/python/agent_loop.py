"""Agent loop: feed "model-written" code to a sandbox, show the model the
result, and let it try again until the task passes.

A real agent would call an LLM in `model()`. To stay runnable offline, this
example's model is a fixed script of answers: a first attempt with a bug,
then a fix after it sees the traceback. Everything else is what a real agent
does: one sandbox per task, files written, code run with a timeout, output
and exit code fed back, the sandbox destroyed at the end.

    STACYVM_URL=http://127.0.0.1:7423 python3 agent_loop.py
"""

import os
import sys
from typing import List, Optional

from stacyvm import Client, ExecResult, Timeout

TASK = "Write solution.py defining fib(n) (fib(0)=0, fib(1)=1); tests.py must pass."

TESTS = """\
from solution import fib
assert [fib(n) for n in range(10)] == [0, 1, 1, 2, 3, 5, 8, 13, 21, 34], [fib(n) for n in range(10)]
print("all tests passed")
"""

# What the "model" answers, turn by turn.
ANSWERS = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 3)\n",  # a bug
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
]


def model(task: str, history: List[str]) -> str:
    """Stand-in for an LLM call: returns the next answer of the script."""
    return ANSWERS[min(len(history), len(ANSWERS) - 1)]


def run(sb, code: str) -> ExecResult:
    sb.write_file("/work/solution.py", code)
    try:
        return sb.exec("python3 tests.py", workdir="/work", timeout="20s")
    except Timeout:
        return ExecResult(exit_code=124, stdout="", stderr="timed out after 20s")


def main() -> int:
    client = Client(os.environ.get("STACYVM_URL", "http://127.0.0.1:7423"), timeout=30)
    image = os.environ.get("STACYVM_PYTHON_IMAGE", "stacyvm/python")
    history: List[str] = []
    result: Optional[ExecResult] = None
    with client.spawn(image, ttl="10m", metadata={"example": "agent_loop"}) as sb:
        sb.write_file("/work/tests.py", TESTS)
        for turn in range(1, 4):
            code = model(TASK, history)
            result = run(sb, code)
            print(f"turn {turn}: exit {result.exit_code}")
            print("  " + (result.stdout + result.stderr).strip().replace("\n", "\n  "))
            if result.ok:
                break
            history.append(f"code:\n{code}\nresult:\n{result.stderr[-2000:]}")
    ok = result is not None and result.ok
    print(f"agent finished after {turn} turn(s): {'success' if ok else 'gave up'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
