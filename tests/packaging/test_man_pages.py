"""The man pages nimbus-sync(8) and nimbus-sync.yaml(5): they build with scdoc, render without
groff warnings at 80 columns, and document every command, option, exit status, config key and
roster column the code knows (and no key it does not)."""

import os
import re
import subprocess

import pytest

from pkgtest import REPO, help_commands, need
from pkgtest import help_text, nimbus_bin  # noqa: F401 (fixtures)

MAN = REPO / "packaging" / "man"
PAGES = {"nimbus-sync.8": "nimbus-sync.8.scd", "nimbus-sync.yaml.5": "nimbus-sync.yaml.5.scd"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    scdoc = need("scdoc", "scdoc")
    out_dir = tmp_path_factory.mktemp("man")
    pages = {}
    for page, source in PAGES.items():
        pages[page] = out_dir / page
        run = subprocess.run(["sh", str(MAN / "scdoc-man.sh"), scdoc, str(MAN / source),
                              str(pages[page])], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    return pages


def render(path):
    man = need("man", "man-db")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    out = subprocess.run([man, "--warnings", "-l", str(path)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out


def source(page):
    return (MAN / PAGES[page]).read_text()


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_warnings(built, page):
    out = render(built[page])
    assert out.stderr == "", out.stderr
    text = re.sub(r".\x08", "", out.stdout)   # overstrike bold and underline
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), f"{page}: no {section} section"
    assert not re.search(r"\w‐$", text, re.M), f"{page}: hyphenated words"


def test_every_command_and_option_is_documented(help_text):
    text = source("nimbus-sync.8")
    commands = help_commands(help_text)
    for name, usage in commands.items():
        assert re.search(rf"^\*{re.escape(name)}[* ]", text, re.M), f"command {name} is not in COMMANDS"
        for option in re.findall(r"--[a-z-]+", usage):
            assert f"*{option}*" in text, f"option {option} of {name} is not documented"
    for option in re.findall(r"--[a-z-]+", help_text.split("Options:", 1)[1]):
        assert f"*{option}*" in text, f"global option {option} is not documented"
    assert "*help* [_command_]" in text


def test_exit_statuses_and_signals_are_documented():
    text = source("nimbus-sync.8")
    table = text.split("# EXIT STATUS", 1)[1].split("\n# ", 1)[0]
    statuses = re.findall(r"EXIT_\w+ = (\d+)", (REPO / "include" / "cli.h").read_text())
    assert statuses
    for status in statuses:
        assert re.search(rf"^\|\s+{status}$", table, re.M), f"exit status {status} is not in the table"
    for signal in ("SIGHUP", "SIGTERM"):
        assert f"*{signal}*" in text


INLINE_SECTIONS = ("rate_limit", "verify", "log")   # their keys are described in one paragraph


def config_keys():
    """Every key of config.c's tables, as `key` or `section.key`."""
    text = (REPO / "src" / "config.c").read_text()
    keys = set(re.findall(r'^\s*(?:FIELD|SECTION)\("(\w+)"', text, re.M))
    keys |= {f"{p}.{k}" for p, k in re.findall(r'^\s*SUBFIELD\("(\w+)", "(\w+)"', text, re.M)}
    assert "tenant_id" in keys and "deletes.max_per_run" in keys
    return keys


def documented_keys():
    """The keys nimbus-sync.yaml(5) defines: `*key* (_type_...` items, nested under a section."""
    keys, section = set(), None
    for line in source("nimbus-sync.yaml.5").splitlines():
        top = re.match(r"^\*(\w+)\*( \(|$)", line)
        nested = re.match(r"^\t\*(\w+)\* \(", line)
        if top:
            section = top.group(1)
            keys.add(section)
        elif nested and section:
            keys.add(f"{section}.{nested.group(1)}")
        elif line.startswith("#"):
            section = None
    return keys


def test_every_config_key_is_documented():
    keys = {k for k in config_keys() if "." not in k or k.split(".")[0] not in INLINE_SECTIONS}
    missing = keys - documented_keys()
    assert not missing, f"config keys missing from nimbus-sync.yaml(5): {sorted(missing)}"


def test_no_documented_key_is_unknown_to_the_code():
    stale = documented_keys() - config_keys()
    assert not stale, f"nimbus-sync.yaml(5) documents keys config.c does not know: {sorted(stale)}"


def test_nested_keys_written_inline_are_documented():
    text = source("nimbus-sync.yaml.5")
    inline = {k for k in config_keys() if "." in k and k.split(".")[0] in INLINE_SECTIONS}
    assert inline
    for key in inline:
        section, name = key.split(".")
        block = text.split(f"\n*{section}*\n", 1)[1].split("\n\n*", 1)[0]
        assert f"*{name}*" in block, f"{key} is not documented under *{section}*"


def test_roster_columns_and_keys_are_documented():
    text = source("nimbus-sync.yaml.5")
    csv_c = (REPO / "src" / "roster_csv.c").read_text()
    columns = re.findall(r'\{ "([^"]+)", ROLE_\w+ \}', csv_c)
    assert "objectid" in columns
    for column in columns:
        assert f"*{column}*" in text, f"CSV column name {column!r} is not documented"
    yaml_c = (REPO / "src" / "roster_yaml.c").read_text()
    keys = re.findall(r'\[KEY_\w+\] = "(\w+)"', yaml_c)
    assert "o365_id" in keys
    for key in keys:
        assert f"*{key}*" in text, f"roster key {key!r} is not documented"
