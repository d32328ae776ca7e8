"""Arguments a command does not take, and plan FILE... (nimbus-sync(8), COMMANDS).

An operand or option a command does not take is a one-line error with exit status 1, and the
command does not run: `apply big.csv` used to reconcile the whole roster folder. `plan FILE...`
plans as if the roster folder held exactly the given files, and changes nothing.
"""

import pytest

from conftest import api_requests, describe, guid, guids, mutating

OU = guid()

# (argv, what the error names): one operand or option each command does not take.
EXTRA = [
    (["apply", "big.csv"], 'apply: unexpected argument "big.csv"'),
    (["apply", "--json"], "apply does not take --json"),
    (["daemon", "now"], 'daemon: unexpected argument "now"'),
    (["daemon", "--refresh"], "daemon does not take --refresh"),
    (["status", "roster.yaml"], 'status: unexpected argument "roster.yaml"'),
    (["status", "--refresh"], "status does not take --refresh"),
    (["approve-deletes", "0007c123"], 'approve-deletes: unexpected argument "0007c123" (IDs go with --only'),
    (["approve-deletes", "--all"], "approve-deletes does not take --all (usage: nimbus-sync approve-deletes"),
    (["licenses", "extra"], 'licenses: unexpected argument "extra"'),
    (["licenses", "--check"], "licenses does not take --check"),
    (["user", "show", guid(), "more"], 'user: unexpected argument "more"'),
    (["user", "show", guid(), "--refresh"], "user does not take --refresh"),
    (["doctor", guid(), "another"], 'doctor: unexpected argument "another"'),
    (["doctor", "--json"], "doctor does not take --json"),
    (["plan", "--user", guid()], "plan does not take --user"),
    (["plan", "--online"], "plan does not take --online"),
    (["validate", "--json"], "validate does not take --json"),
    (["help", "plan", "apply"], 'help: unexpected argument "apply"'),
]


@pytest.mark.parametrize("argv,message", EXTRA, ids=[m for _, m in EXTRA])
def test_extra_arguments_are_an_error(ns, sim, argv, message):
    ns.write_roster([{"o365_id": i, "ou": OU} for i in guids(3)])

    p = ns.run(*argv)
    assert p.returncode == 1, describe(p)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], describe(p)
    # The line gives the command's usage, but for approve-deletes, whose own check names the options.
    assert "(usage: nimbus-sync " in lines[0] or argv[:2] == ["approve-deletes", "0007c123"]
    assert p.stdout == ""
    # Nothing ran: no call, not even a token; no state store made.
    assert api_requests(sim.state()) == []
    assert not ns.state_db.exists()


def test_the_options_each_command_takes_still_work(ns, sim):
    ns.write_roster([{"o365_id": i, "ou": OU} for i in guids(2)])

    for argv, code in ((["validate"], 0), (["plan", "--json"], 2), (["apply"], 0), (["status", "--json"], 0),
                       (["licenses", "--json"], 0), (["help", "plan"], 0)):
        p = ns.run(*argv)
        assert p.returncode == code, describe(p)


def test_plan_files_as_if_the_folder_held_exactly_them(ns, sim, tmp_path):
    kept, gone = guids(2), guids(2)
    new = guid()
    ns.write_roster([{"o365_id": i, "ou": OU} for i in kept], name="a.yaml")
    ns.write_roster([{"o365_id": i, "ou": OU} for i in gone], name="b.yaml")
    p = ns.run("apply")
    assert p.returncode == 0, describe(p)
    before = len(mutating(sim.state()))

    # The export to check lies outside the folder: a.yaml's users and one more; b.yaml is not in it.
    preview = ns.write_text(tmp_path / "next-export.yaml",
                            "users:\n" + "".join(f"  - {{o365_id: {i}, ou: {OU}}}\n" for i in kept + [new]))
    p = ns.run("plan", preview)
    assert p.returncode == 2, describe(p)
    lines = p.stdout.splitlines()
    assert [line.split()[:3] for line in lines if line.startswith("+")] == [["+", "create", new]]
    assert sorted(line.split()[2] for line in lines if line.startswith("-")) == sorted(gone)

    code, plan = ns.plan_json(preview)
    assert code == 2
    assert plan["changes"] == {"create": 1, "copy": 0, "delete": 2, "held": 0}

    # The folder itself still plans nothing, and nothing was sent.
    p = ns.run("plan")
    assert p.returncode == 0, describe(p)
    assert len(mutating(sim.state())) == before


def test_plan_files_reports_a_broken_file(ns, sim, tmp_path):
    ns.write_roster([{"o365_id": guid(), "ou": OU}])
    bad = ns.write_text(tmp_path / "bad.csv", "o365_id,ou\nnot-a-guid," + OU + "\n")

    p = ns.run("plan", bad)
    assert p.returncode == 1, describe(p)
    assert f"{bad}:2:1: error:" in p.stderr
    p = ns.run("plan", tmp_path / "missing.yaml")
    assert p.returncode == 1 and "missing.yaml" in p.stderr, describe(p)
