"""Shared setup of the live tests: the server under test comes from STACYVM_URL.

Without STACYVM_URL the live tests skip, except under CI=true, where they fail.
"""

import os
import unittest

URL = os.environ.get("STACYVM_URL", "")
IMAGE = os.environ.get("STACYVM_TEST_IMAGE", "stacyvm/busybox")
LABEL = {"sdk-test": "python"}


def require_server() -> str:
    if URL:
        return URL
    if os.environ.get("CI") == "true":
        raise RuntimeError("STACYVM_URL is not set (test/sdk starts the server and sets it)")
    raise unittest.SkipTest("STACYVM_URL not set: start `stacyvm serve` and export STACYVM_URL")
