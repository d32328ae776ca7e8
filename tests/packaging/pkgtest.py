"""Helpers and fixtures of the packaging tests, which check the files under systemd/ and
packaging/ with the tools that consume them (systemd-analyze, journalctl, systemd-sysusers and
-tmpfiles, scdoc and man, bash-completion).

Not a conftest.py: pytest would register it as the module `conftest`, in place of the integration
suite's, which that suite imports by name when both run in one pytest session. Test modules
import what they use from here, fixtures included.

A test that needs a tool which is not installed is skipped and says which Debian package has it
(tests/deps.sh installs them all). The binary comes from $NIMBUS_SYNC_BIN, as in the integration
suite; without it the tests that need it fail, saying so.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "common"))

from nstest import nimbus_binary  # noqa: E402  (needs the path above)


def need(tool, package):
    """The path of tool, or skip the test: tool is missing, from the Debian package `package`."""
    path = shutil.which(tool)
    if not path:
        pytest.skip(f"{tool} is not installed (Debian package {package}; tests/deps.sh installs it)")
    return path


def c_string_define(path, name):
    """The string value of `#define NAME "value"` in a C file of the repository."""
    m = re.search(rf'^#define {name}\s+"([^"]*)"', (REPO / path).read_text(), re.M)
    assert m, f"{path} has no #define {name}"
    return m.group(1)


def message_ids():
    """MID_* name -> MESSAGE_ID, from include/log.h."""
    text = (REPO / "include" / "log.h").read_text()
    ids = dict(re.findall(r'^#define (MID_\w+)\s+"([0-9a-f]{32})"', text, re.M))
    assert ids, "include/log.h defines no MID_*"
    return ids


def help_commands(help_text):
    """command name -> its usage, from the Commands: block of `nimbus-sync --help`."""
    block = help_text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    commands = {}
    for line in block.splitlines():
        usage = re.split(r"\s{2,}", line.strip())[0]
        if usage:
            commands[usage.split()[0]] = usage
    assert commands, "no commands in nimbus-sync --help"
    return commands


@pytest.fixture(scope="session")
def nimbus_bin():
    return nimbus_binary()


@pytest.fixture(scope="session")
def help_text(nimbus_bin):
    out = subprocess.run([nimbus_bin, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout
