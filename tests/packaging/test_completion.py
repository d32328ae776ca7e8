"""Bash completion: the commands and options it offers are the ones `nimbus-sync --help` lists."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pkgtest import REPO, help_commands, need
from pkgtest import help_text, nimbus_bin  # noqa: F401 (fixtures)

COMPLETION = REPO / "packaging" / "bash-completion" / "nimbus-sync"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def complete(*words):
    """What the completion offers for `nimbus-sync WORDS...` (the last word being completed)."""
    bash = need("bash", "bash")
    if not BASH_COMPLETION.exists():
        pytest.skip(f"{BASH_COMPLETION} is missing (Debian package bash-completion; "
                    "tests/deps.sh installs it)")
    line = "nimbus-sync " + " ".join(words)
    script = f"""
        . {shlex.quote(str(BASH_COMPLETION))}
        . {shlex.quote(str(COMPLETION))}
        COMP_WORDS=(nimbus-sync {" ".join(shlex.quote(w) for w in words)})
        COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
        COMP_LINE={shlex.quote(line)}
        COMP_POINT=${{#COMP_LINE}}
        _nimbus_sync nimbus-sync "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    out = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_commands_are_those_of_the_binary(help_text):
    assert complete("") == set(help_commands(help_text)) | {"help"}


def test_prefix_narrows_the_commands():
    assert complete("ap") == {"apply", "approve-deletes"}


def test_options_of_each_command(help_text):
    global_opts = set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", help_text.split("Options:", 1)[1]))
    assert {"-c", "--config", "-h", "--help", "--version"} <= global_opts
    for name, usage in help_commands(help_text).items():
        offered = complete(name, "-")
        expected = set(re.findall(r"--[a-z-]+", usage)) | global_opts
        assert offered == expected, f"{name}: offered {sorted(offered)}, expected {sorted(expected)}"


def test_command_after_global_option():
    assert complete("-c", "/etc/nimbus-sync/config.yaml", "pl") == {"plan"}


def test_help_and_user_show(help_text):
    assert complete("help", "") == set(help_commands(help_text))
    assert complete("help", "plan", "") == set()
    assert complete("user", "") == {"show"}
    assert complete("user", "show", "") == set()
