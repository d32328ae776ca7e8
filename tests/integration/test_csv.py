"""CSV rosters as exports produce them (nimbus-sync.yaml(5), CSV rosters): each variant converges
to the same users."""

import csv

import pytest

from conftest import describe, guid, guids, sim_ids

OU_A = guid()
OU_B = guid()


def variant_rows(creates, template, copies):
    """(o365_id, ou, template) rows: creates in two OUs, copies of a template in the file."""
    rows = [(c, OU_A if k % 2 else OU_B, "") for k, c in enumerate(creates)]
    rows.append((template, OU_A, ""))
    rows += [(c, "", template) for c in copies]
    return rows


VARIANTS = {
    "semicolon": dict(delimiter=";"),
    "tab": dict(delimiter="\t"),
    "bom": dict(bom=True),
    "crlf": dict(crlf=True),
    "bom_crlf_semicolon": dict(bom=True, crlf=True, delimiter=";"),
    "quoted": dict(quoting=csv.QUOTE_ALL),
    "alias_headers": dict(header=("ObjectId", "OrganizationUnitId", "SourceO365Id")),
    "alias_headers_mixed_case": dict(header=("Object ID", "organization_unit_id", "Template_O365_Id")),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_csv_variant_converges(ns, sim, variant):
    creates, template, copies = guids(4), guid(), guids(2)
    rows = variant_rows(creates, template, copies)
    ns.write_csv(rows, **VARIANTS[variant])

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    st = sim.state()
    assert sim_ids(st) == {*creates, template, *copies}
    for o365, ou, _ in rows:
        assert st["users"][o365]["organizationUnitId"] == (ou or OU_A)
    assert ns.run("plan").returncode == 0


def test_csv_extra_columns_and_quoted_names(ns, sim):
    ids = guids(3)
    header = ("DisplayName", "UserPrincipalName", "id", "Department", "ou", "Comment")
    rows = [(f'Doe, "J{k}"', f"u{k}@example.test", i, "Sales; Support", OU_A, "line\nbreak")
            for k, i in enumerate(ids)]
    ns.write_csv(rows, header=header, quoting=csv.QUOTE_MINIMAL)

    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)


def test_csv_braces_and_upper_case_guids_match_the_same_users(ns, sim):
    ids = guids(2)
    ns.write_csv([("{" + ids[0].upper() + "}", OU_A.upper(), ""), (ids[1], OU_A, "")])
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)
    # The same users written the other way round are no change at all.
    ns.write_csv([(ids[0], OU_A, ""), (ids[1].upper(), "{" + OU_A + "}", "")])
    p = ns.run("plan")
    assert p.returncode == 0, describe(p)


def test_yaml_and_csv_files_form_one_union(ns, sim):
    a, b = guids(2), guids(2)
    ns.write_roster([{"o365_id": i, "ou": OU_A} for i in a], name="a.yaml")
    ns.write_csv([(i, OU_B, "") for i in b], name="b.csv")
    # Names the product ignores: swap files, temporaries, backups, dot-files.
    for ignored in ("c.csv~", ".d.csv", "e.tmp", "f.csv.swp"):
        ns.write_text(ns.roster_dir / ignored, f"o365_id,ou\n{guid()},{OU_A}\n")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == {*a, *b}


@pytest.mark.parametrize("sep", [";", ",", "\t"])
def test_excel_sep_line_sets_the_delimiter(ns, sim, sep):
    """Excel writes `sep=;` as the first line when asked to keep the delimiter; the header follows."""
    ids = guids(3)
    other = "," if sep != "," else ";"     # a header that would suggest another delimiter
    dept = f"Dept{other} team{other} region{other} floor"     # more of `other` than of sep
    lines = [f"sep={sep}", sep.join([dept, "o365_id", "ou"])]
    lines += [sep.join([f"Sales{other} EMEA", i, OU_A]) for i in ids]
    ns.write_text(ns.roster_dir / "excel.csv", "\ufeff" + "\r\n".join(lines) + "\r\n")

    p = ns.run("validate")
    assert p.returncode == 0 and "roster ok: 3 users" in p.stdout, describe(p)
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    assert sim_ids(sim.state()) == set(ids)


def test_sep_line_keeps_line_numbers(ns, sim):
    path = ns.write_text(ns.roster_dir / "excel.csv", f"sep=;\no365_id;ou\n{guid()};{OU_A}\nnope;{OU_A}\n")
    p = ns.run("validate")
    assert p.returncode == 1, describe(p)
    assert f"{path}:4:1: error: invalid o365_id \"nope\"" in p.stderr, p.stderr
