"""What the daemon remembers for the audit trail (nimbus-sync(8), LOGS AND AUDIT): a user that
moves from one roster file to another and then leaves is named, when its delete is held, by the
file that last listed it, not by the one it was created from. `apply` alone could not know."""

from .conftest import guid, guids, wait_users, write_atomic, roster_text

OU = guid()


def test_a_held_delete_names_the_file_that_last_listed_it(daemon, sim):
    ids = guids(4)
    users = [{"o365_id": i, "ou": OU, "name": f"Mover {n}"} for n, i in enumerate(ids)]
    daemon.configure(deletes={"max_per_run": 1, "max_percent": 100})
    daemon.write_roster(users, name="old.yaml")
    daemon.start()
    wait_users(sim, ids, 15, daemon)

    # They move to new.yaml: in sync, nothing is sent; the daemon sees them leave old.yaml.
    mark = daemon.mark()
    write_atomic(daemon.roster_dir / "new.yaml", roster_text(users))
    (daemon.roster_dir / "old.yaml").unlink()
    daemon.wait_log(r"roster loaded: 4 users in 1 files; added new\.yaml \(4 users\); removed "
                    r"old\.yaml \(4 users\)", 10, mark)

    mark = daemon.mark()
    write_atomic(daemon.roster_dir / "new.yaml", roster_text(users[:1]))
    for uid in ids[1:]:
        daemon.wait_log(rf"delete held: {uid} \(Mover \d\) in OU {OU}, last listed by new\.yaml: "
                        r"more than deletes\.max_per_run", 10, mark)
    p = daemon.run("plan")
    held = [line for line in p.stdout.splitlines() if line.startswith("! held")]
    assert len(held) == 3 and all("[last listed by new.yaml]" in line for line in held), p.stdout
    daemon.stop_clean()
