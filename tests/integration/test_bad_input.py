"""Bad input changes nothing in Nimbus and exits 1 with compiler-style diagnostics (nimbus-sync(8),
nimbus-sync.yaml(5), ROSTER FILES)."""

import os
import re

import pytest

from conftest import api_requests, describe, guid, guids, roster_users, sim_ids

OU = guid()


def error_lines(stderr, path):
    """The diagnostics about path: "PATH:LINE[:COL]: error: MESSAGE", one line each."""
    pat = re.compile(re.escape(str(path)) + r":(\d+)(?::(\d+))?: error: (.+)$")
    return [m for m in map(pat.match, stderr.splitlines()) if m]


def assert_nothing_happened(sim, users_before=frozenset()):
    st = sim.state()
    assert api_requests(st) == [], "no API call may be made on bad input"
    assert sim_ids(st) == set(users_before)


@pytest.fixture
def applied(ns, sim):
    """A converged tenant of 6 users, so that a bad roster could do damage by deleting them."""
    ids = guids(6)
    ns.write_roster(roster_users(ids, OU), name="base.yaml")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    sim.reset_log()
    return set(ids)


def check_rejected(ns, sim, before, path, line, col=None):
    for cmd in (("apply",), ("plan",), ("plan", "--json"), ("validate",)):
        p = ns.run(*cmd)
        assert p.returncode == 1, f"{cmd}: " + describe(p)
        errs = error_lines(p.stderr, path)
        assert errs, f"{cmd}: no FILE:LINE: error: line for {path}:\n{p.stderr}"
        assert any(int(m.group(1)) == line for m in errs), p.stderr
        if col is not None:
            assert any(m.group(2) and int(m.group(2)) == col for m in errs), p.stderr
        assert "+ create" not in p.stdout and "roster ok" not in p.stdout
    assert_nothing_happened(sim, before)


def test_broken_yaml_roster(ns, sim, applied):
    path = ns.write_text(ns.roster_dir / "broken.yaml", "users:\n  - o365_id: [\n")
    check_rejected(ns, sim, applied, path, line=3)


def test_yaml_cut_off_mid_file_is_rejected(ns, sim, applied):
    # A half-written export: keys without values at the end.
    text = "users:\n" + "".join(f"  - o365_id: {guid()}\n    ou: {OU}\n" for _ in range(3))
    path = ns.write_text(ns.roster_dir / "half.yaml", text + "  - o365_id: " + guid()[:20] + "\n")
    check_rejected(ns, sim, applied, path, line=8)


def test_csv_without_id_column(ns, sim, applied):
    path = ns.write_text(ns.roster_dir / "export.csv", f"name,ou\nJane,{OU}\n")
    check_rejected(ns, sim, applied, path, line=1)


def test_bad_guid_in_yaml(ns, sim, applied):
    text = (f"users:\n  - o365_id: {guid()}\n    ou: {OU}\n"
            f"  - o365_id: 1f0e6b8a-5c3d-4e2f-9a1b-7c8d9e0f1a2\n    ou: {OU}\n")
    path = ns.write_text(ns.roster_dir / "bad.yaml", text)
    check_rejected(ns, sim, applied, path, line=4, col=14)


def test_bad_guid_in_csv(ns, sim, applied):
    path = ns.write_text(ns.roster_dir / "bad.csv", f"o365_id,ou\n{guid()},{OU}\n{guid()},not-an-ou\n")
    check_rejected(ns, sim, applied, path, line=3)


def test_entry_with_both_ou_and_template(ns, sim, applied):
    path = ns.write_text(ns.roster_dir / "both.csv",
                         f"o365_id,ou,template\n{guid()},{OU},{guid()}\n")
    check_rejected(ns, sim, applied, path, line=2)


def test_same_user_with_two_targets_in_two_files(ns, sim, applied):
    x = guid()
    ns.write_text(ns.roster_dir / "a.yaml", f"users:\n  - o365_id: {x}\n    ou: {OU}\n")
    b = ns.write_text(ns.roster_dir / "b.csv", f"o365_id,ou\n{guid()},{OU}\n{x},{guid()}\n")
    check_rejected(ns, sim, applied, b, line=3)


def test_same_user_same_target_twice_is_a_warning_only(ns, sim):
    x = guid()
    ns.write_text(ns.roster_dir / "a.yaml", f"users:\n  - o365_id: {x}\n    ou: {OU}\n")
    ns.write_text(ns.roster_dir / "b.csv", f"o365_id,ou\n{x.upper()},{OU}\n")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert "warning" in p.stderr
    assert sim_ids(sim.state()) == {x}


def test_broken_roster_keeps_status_error_and_changes_nothing_later(ns, sim, applied):
    # The base roster is replaced by an empty-looking broken one: no deletes may follow.
    ns.clear_roster()
    path = ns.write_text(ns.roster_dir / "base.yaml", "users:\n  - o365_id: {\n")
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert error_lines(p.stderr, path)
    assert_nothing_happened(sim, applied)


# --- files that are no roster text (nimbus-sync.yaml(5), ROSTER FILES) -------------------------

def test_dangling_symlink_is_an_error_not_an_empty_file(ns, sim, tmp_path):
    """A roster on a share that is not mounted: its users must not look gone."""
    share = tmp_path / "mnt"
    share.mkdir()
    target = ns.write_text(share / "export.csv", "o365_id,ou\n" +
                           "".join(f"{i},{OU}\n" for i in guids(4)))
    link = ns.roster_dir / "share.csv"
    link.symlink_to(target)
    ns.write_roster(roster_users(guids(6), OU), name="base.yaml")
    ns.configure(deletes={"max_percent": 100})
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    before = sim_ids(sim.state())
    sim.reset_log()

    target.unlink()                     # the share is gone
    check_rejected(ns, sim, before, link, line=1, col=1)
    p = ns.run("validate")
    assert "dangling symbolic link" in p.stderr and str(target) in p.stderr, p.stderr


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_roster_name_that_is_not_a_regular_file(ns, sim, applied, kind):
    path = ns.roster_dir / ("other.yaml" if kind == "fifo" else "other.csv")
    if kind == "fifo":
        os.mkfifo(path)                 # opening it for reading would block for ever
    else:
        path.mkdir()
    check_rejected(ns, sim, applied, path, line=1, col=1)
    p = ns.run("validate", timeout=20)
    assert "not a regular file" in p.stderr, p.stderr


EMPTY_ROSTERS = {
    "zero_bytes.yaml": ("", 1),
    "blank_lines.yaml": ("\n\n  \n", 1),
    "only_a_comment.yaml": ("# nobody yet\n", 1),
    "tilde.yaml": ("~\n", 1),
    "null_document.yaml": ("--- null\n", 1),
    "document_marker_only.yaml": ("---\n", 2),
    "users_without_value.yaml": ("# export\nusers:\n", 2),
    "users_tilde.yaml": (f"ou: {OU}\nusers: ~\n", 2),
    "no_users_key.yaml": (f"ou: {OU}\n", 1),
    "zero_bytes.csv": ("", 1),
    "bom_and_blank_lines.csv": ("\ufeff\r\n\r\n", 1),
}


@pytest.mark.parametrize("name", sorted(EMPTY_ROSTERS))
def test_empty_roster_file_is_an_error(ns, sim, applied, name):
    text, line = EMPTY_ROSTERS[name]
    path = ns.write_text(ns.roster_dir / name, text)
    check_rejected(ns, sim, applied, path, line=line)
    p = ns.run("validate")
    assert "users: []" in p.stderr if name.endswith(".yaml") else "header row" in p.stderr, p.stderr


@pytest.mark.parametrize("text", ["users: []\n", f"ou: {OU}\nusers: []\n", "o365_id,ou\n"])
def test_an_explicitly_empty_roster_file_is_valid(ns, sim, applied, text):
    ns.write_text(ns.roster_dir / ("empty.csv" if "," in text else "empty.yaml"), text)
    p = ns.run("validate")
    assert p.returncode == 0 and "roster ok: 6 users in 2 files" in p.stdout, describe(p)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == applied


ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize("case", ["yaml_id", "yaml_ou", "yaml_template", "yaml_default_ou",
                                  "csv_id", "csv_ou", "csv_template"])
def test_all_zero_guid_is_an_error(ns, sim, applied, case):
    x = guid()
    texts = {
        "yaml_id": (f"users:\n  - o365_id: {ZERO}\n    ou: {OU}\n", 2, 14),
        "yaml_ou": (f"users:\n  - o365_id: {x}\n    ou: '{{{ZERO}}}'\n", 3, 9),
        "yaml_template": (f"users:\n  - o365_id: {x}\n    template: {ZERO.upper()}\n", 3, 15),
        "yaml_default_ou": (f"ou: {ZERO}\nusers:\n  - o365_id: {x}\n", 1, 5),
        "csv_id": (f"o365_id,ou\n{ZERO},{OU}\n", 2, 1),
        "csv_ou": (f"o365_id,ou\n{x},{ZERO}\n", 2, 2),
        "csv_template": (f"o365_id,template\n{x},{ZERO}\n", 2, 2),
    }
    text, line, col = texts[case]
    path = ns.write_text(ns.roster_dir / ("zero." + case.split("_")[0]), text)
    check_rejected(ns, sim, applied, path, line=line, col=col)
    assert "all-zero GUID" in ns.run("validate").stderr


@pytest.mark.parametrize("case", ["cp1252_csv", "latin1_yaml", "utf16le_bom_csv",
                                  "utf16be_bom_yaml", "utf16le_no_bom_csv"])
def test_text_that_is_not_utf8_names_its_encoding(ns, sim, applied, case):
    x = guid()
    csv_text = f"name,o365_id,ou\nJane,{guid()},{OU}\nM\u00fcller,{x},{OU}\n"
    yaml_text = f"users:\n  - o365_id: {x}\n    ou: {OU}\n    name: J\u00e9r\u00f4me\n"
    cases = {   # bytes, file name, line, column, the encoding the message names
        "cp1252_csv": (csv_text.encode("cp1252"), "export.csv", 3, 2, "Windows-1252"),
        "latin1_yaml": (yaml_text.encode("latin-1"), "team.yaml", 4, 12, "Latin-1"),
        "utf16le_bom_csv": (csv_text.encode("utf-16"), "export.csv", 1, 1, "UTF-16"),
        "utf16be_bom_yaml": (b"\xfe\xff" + yaml_text.encode("utf-16-be"), "team.yaml", 1, 1,
                             "UTF-16"),
        "utf16le_no_bom_csv": (csv_text.encode("utf-16-le"), "export.csv", 1, 2, "UTF-16"),
    }
    data, name, line, col, encoding = cases[case]
    path = ns.write_text(ns.roster_dir / name, data)
    check_rejected(ns, sim, applied, path, line=line, col=col)
    err = ns.run("validate").stderr
    assert encoding in err and "UTF-8" in err, err


# --- config ------------------------------------------------------------------------------------

def config_error(ns, sim, key_text):
    """Run apply with a broken config; return the (line, col, message) of its diagnostic."""
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    errs = error_lines(p.stderr, ns.config_path)
    assert errs, p.stderr
    lines = ns.config_path.read_text().splitlines()
    line = next(k for k, text in enumerate(lines, 1) if key_text in text)
    assert_nothing_happened(sim)
    return line, errs


def test_unknown_config_key(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(delete={"max_per_run": 1})     # a typo of "deletes"
    line, errs = config_error(ns, sim, "delete:")
    assert int(errs[0].group(1)) == line
    assert "unknown key" in errs[0].group(3) and "delete" in errs[0].group(3)
    assert len(errs) == 1


def test_unknown_nested_config_key(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(deletes={"max_per_rum": 1})
    line, errs = config_error(ns, sim, "max_per_rum")
    assert int(errs[0].group(1)) == line and "max_per_rum" in errs[0].group(3)


def test_bad_duration(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(rate_limit={"window": "5 parsecs"})
    line, errs = config_error(ns, sim, "parsecs")
    assert int(errs[0].group(1)) == line and "duration" in errs[0].group(3)


def test_first_config_error_is_the_real_one(ns, sim):
    # A bad retry.base should not also produce an invented complaint about retry.cap.
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(retry={"base": "5 parsecs"})
    line, errs = config_error(ns, sim, "parsecs")
    assert int(errs[0].group(1)) == line
    assert [m.group(3) for m in errs if "cap" in m.group(3)] == [], \
        "config.c reports a follow-on error about retry.cap after a bad retry.base"


def test_plain_http_to_a_remote_host_is_refused(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(api_url="http://admin.example.com")
    line, errs = config_error(ns, sim, "api_url")
    assert int(errs[0].group(1)) == line and "http" in errs[0].group(3)


def test_bad_guid_in_config(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.configure(deletes={"protected": [guid(), "not-a-guid"]})
    line, errs = config_error(ns, sim, "- not-a-guid")
    assert int(errs[0].group(1)) == line


# --- credentials -------------------------------------------------------------------------------

def test_wrong_secret(ns, sim):
    ns.write_roster(roster_users(guids(2), OU))
    wrong = "wrong~" + guid()
    ns.write_secret(wrong)
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert "AADSTS7000215" in p.stderr
    assert wrong not in p.stdout + p.stderr
    st = sim.state()
    assert api_requests(st) == [] and sim_ids(st) == set()
    assert 1 <= len(st["token_requests"]) <= 2, "a refused secret must not be hammered"
    s = ns.status_json()
    assert s["auth"]["state"] == "failed" and "AADSTS7000215" in s["auth"]["error"]


def test_secret_file_readable_by_others_is_refused(ns, sim):
    ns.write_roster(roster_users(guids(1), OU))
    ns.write_secret(sim.secret, mode=0o644)
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert str(ns.secret_file) in p.stderr and "readable by group or others" in p.stderr
    st = sim.state()
    assert api_requests(st) == [] and st["token_requests"] == []


# --- TLS ---------------------------------------------------------------------------------------

@pytest.mark.sim(tls=True)
def test_tls_with_the_sims_ca_works(ns, sim):
    assert sim.url.startswith("https://")
    ids = guids(3)
    ns.write_roster(roster_users(ids, OU))
    ns.configure(ca_file=sim.ca_file)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)


@pytest.mark.sim(tls=True)
@pytest.mark.parametrize("ca", ["none", "other"])
def test_tls_with_an_untrusted_certificate_fails(ns, sim, ca):
    ns.write_roster(roster_users(guids(2), OU))
    if ca == "other":
        ns.configure(ca_file=sim.other_ca_file)
    p = ns.run("apply")
    assert p.returncode == 1, describe(p)
    assert "certificate" in p.stderr.lower()
    # An untrusted certificate needs an admin, not retries: one clear hint, no retry loop.
    assert "ca_file" in p.stderr, describe(p)
    assert "token request failed" not in p.stderr, describe(p)
    st = sim.state()
    assert api_requests(st) == [] and sim_ids(st) == set()
    assert st["tokens_issued"] == 0
