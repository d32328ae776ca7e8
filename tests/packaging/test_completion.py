"""Bash and zsh completion: each offers every command and option `nimbus-sync --help` lists, the
two offer the same, and both complete files where the commands take them.

The completions may run ahead of the binary: options another part of the project is adding are
offered before this build has them. Such extras make a test xfail, naming them, instead of pass;
once the binary has them they are checked like the rest."""

import os
import pty
import re
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from pkgtest import REPO, help_commands, need
from pkgtest import help_text, nimbus_bin  # noqa: F401 (fixtures)

BASH_SCRIPT = REPO / "packaging" / "bash-completion" / "nimbus-sync"
ZSH_DIR = REPO / "packaging" / "zsh-completion"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
SHELLS = ("bash", "zsh")
ZSH_TIMEOUT = 20


def bash_complete(words, cwd):
    """What the bash completion offers for `nimbus-sync WORDS...` (the last word is completed)."""
    bash = need("bash", "bash")
    if not BASH_COMPLETION.exists():
        pytest.skip(f"{BASH_COMPLETION} is missing (Debian package bash-completion; "
                    "tests/deps.sh installs it)")
    line = "nimbus-sync " + " ".join(words)
    script = f"""
        . {shlex.quote(str(BASH_COMPLETION))}
        . {shlex.quote(str(BASH_SCRIPT))}
        COMP_WORDS=(nimbus-sync {" ".join(shlex.quote(w) for w in words)})
        COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
        COMP_LINE={shlex.quote(line)}
        COMP_POINT=${{#COMP_LINE}}
        _nimbus_sync nimbus-sync "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    out = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True, timeout=30,
                         cwd=cwd)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


# zsh completes only inside its line editor, so an interactive zsh runs on a pseudo-terminal, a
# TAB is typed, and a wrapper around the compadd builtin prints every match the completion adds
# (after zsh's own matching against what was typed), between markers; then zsh exits.
ZSH_SETUP = r"""
PS1= PROMPT= RPROMPT=
fpath=(%(dir)s $fpath)
autoload -Uz compinit
compinit -u -D
bindkey '^I' complete-word
zstyle ':completion:*' insert-tab false
compadd() {
  # Calls that only compute matches (-O, -A, -D) add nothing: pass them on.
  if (( ${@[(I)-[OAD]]} )); then builtin compadd "$@"; return; fi
  local -a added
  builtin compadd -A added "$@"
  local m
  for m in $added; do print -r -- "<<match>>$m"; done
  builtin compadd "$@"
}
_nimbus_sync_test_done() { print -r -- "<<done>>"; exit }
comppostfuncs=(_nimbus_sync_test_done)
print -r -- "<<ready>>"
"""


def read_until(fd, marker, deadline):
    out = b""
    while marker not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:   # the other side closed
                break
            if not chunk:
                break
            out += chunk
    assert marker in out, f"zsh did not print {marker!r}:\n{out.decode(errors='replace')}"
    return out


def zsh_complete(words, cwd):
    """What the zsh completion offers for `nimbus-sync WORDS...` (the last word is completed)."""
    zsh = need("zsh", "zsh")
    setup = Path(cwd) / ".zsh-setup"
    setup.write_text(ZSH_SETUP % {"dir": shlex.quote(str(ZSH_DIR))})
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="dumb", HOME=str(cwd))
    proc = subprocess.Popen([zsh, "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            env=env, start_new_session=True)
    os.close(slave)
    try:
        deadline = time.monotonic() + ZSH_TIMEOUT
        os.write(master, f"source {shlex.quote(str(setup))}\n".encode())
        read_until(master, b"<<ready>>\r\n", deadline)
        os.write(master, ("nimbus-sync " + " ".join(words) + "\t").encode())
        out = read_until(master, b"<<done>>", deadline).decode(errors="replace")
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        setup.unlink()
    return {line.split("<<match>>", 1)[1].strip() for line in out.replace("\r", "").split("\n")
            if "<<match>>" in line}


@pytest.fixture
def complete(request, tmp_path):
    """complete(*words): what the shell of the test's parameter offers, in an empty folder."""
    fn = bash_complete if request.param == "bash" else zsh_complete
    return lambda *words: fn(words, tmp_path)


def shells(test):
    return pytest.mark.parametrize("complete", SHELLS, indirect=True)(test)


def global_options(help_text):
    block = help_text.split("Options:", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", block))


def compare(offered, expected, what, ahead):
    """Everything expected must be offered; what is offered beyond it is noted in ahead."""
    missing = expected - offered
    assert not missing, f"{what}: not completed: {sorted(missing)}"
    ahead.update(f"{what} {extra}" if what else extra for extra in offered - expected)


def xfail_if_ahead(ahead):
    if ahead:
        pytest.xfail(f"offered, but not (yet) in this build's --help: {sorted(ahead)}")


@shells
def test_commands_are_those_of_the_binary(complete, help_text):
    ahead = set()
    compare(complete(""), set(help_commands(help_text)) | {"help"}, "", ahead)
    xfail_if_ahead(ahead)


@shells
def test_prefix_narrows_the_commands(complete):
    assert complete("ap") == {"apply", "approve-deletes"}
    assert complete("st") == {"status"}


@shells
def test_options_of_each_command(complete, help_text):
    global_opts = global_options(help_text)
    assert {"-c", "--config", "-h", "--help", "--version"} <= global_opts
    ahead = set()
    for name, usage in help_commands(help_text).items():
        expected = set(re.findall(r"--[a-z-]+", usage)) | global_opts
        compare(complete(name, "-"), expected, name, ahead)
    xfail_if_ahead(ahead)


@shells
def test_status_options(complete):
    assert {"--json", "--all", "--check"} <= complete("status", "--")
    assert complete("status", "--c") == {"--check", "--config"}


@shells
def test_command_after_global_option(complete):
    assert complete("-c", "/etc/nimbus-sync/config.yaml", "pl") == {"plan"}
    assert complete("--config", "/etc/nimbus-sync/config.yaml", "status", "--a") == {"--all"}


@shells
def test_help_and_user_show(complete, help_text):
    ahead = set()
    compare(complete("help", ""), set(help_commands(help_text)), "help", ahead)
    assert complete("help", "plan", "") == set()
    assert complete("user", "") == {"show"}
    assert complete("user", "show", "") == set()
    xfail_if_ahead(ahead)


@shells
def test_files_where_the_commands_take_them(complete, tmp_path):
    for name in ("a.yaml", "b.yml", "c.csv", "notes.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    rosters = complete("validate", "")
    assert {"a.yaml", "b.yml", "c.csv"} <= rosters and "notes.txt" not in rosters
    assert {"a.yaml", "b.yml", "c.csv"} <= complete("plan", "")
    configs = complete("-c", "")
    assert {"a.yaml", "b.yml"} <= configs and not {"c.csv", "notes.txt"} & configs


def test_bash_and_zsh_offer_the_same(tmp_path):
    commands = bash_complete([""], tmp_path)
    assert commands == zsh_complete([""], tmp_path)
    for name in sorted(commands - {"help"}):
        bash, zsh = bash_complete([name, "-"], tmp_path), zsh_complete([name, "-"], tmp_path)
        assert bash == zsh, f"{name}: bash offers {sorted(bash)}, zsh {sorted(zsh)}"


@shells
def test_approve_deletes_options(complete, help_text):
    """approve-deletes --dry-run, --only and --except are the binary's own now: offered, and
    checked strictly (no xfail for being ahead of the build)."""
    wanted = {"--dry-run", "--only", "--except"}
    usage = help_commands(help_text)["approve-deletes"]
    assert wanted <= set(re.findall(r"--[a-z-]+", usage)), usage
    assert wanted <= complete("approve-deletes", "--")
    assert complete("approve-deletes", "--d") == {"--dry-run"}
