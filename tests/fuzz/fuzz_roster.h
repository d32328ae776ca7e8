/* fuzz_roster.h: the body of the two roster targets, which differ only in the file name that
 * selects the format. The input is one roster file, read with a config that names one
 * organization unit, so both GUIDs and names reach config_resolve_ou(). */
#pragma once

#include <errno.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "roster.h"

#define FUZZ_OU_NAME "support"
#define FUZZ_OU_ID "3f2a7c4e-0c1d-4a8b-9e61-2d5f8b7a9c10"

/* roster.h's promises about an accepted roster. */
static inline void fuzz_check_roster(const Roster *r, const char *path) {
        FUZZ_CHECK(r->n_files == 1 && strcmp(r->files[0], path) == 0);
        FUZZ_CHECK(r->names_len >= 1 && r->names[0] == '\0');
        for (size_t i = 0; i < r->n; i++) {
                const RosterEntry *e = &r->entries[i];
                const char *name;

                FUZZ_CHECK(i == 0 || guid_cmp(&r->entries[i - 1].id, &e->id) < 0); /* sorted, unique */
                FUZZ_CHECK(e->kind == TARGET_OU || e->kind == TARGET_TEMPLATE);
                FUZZ_CHECK(e->kind != TARGET_TEMPLATE || !guid_eq(&e->id, &e->target));
                FUZZ_CHECK(e->file == 0 && e->line >= 1);
                FUZZ_CHECK(e->name < r->names_len);
                name = roster_entry_name(r, e);
                FUZZ_CHECK(e->name + strlen(name) < r->names_len);
                FUZZ_CHECK(strlen(name) <= ROSTER_MAX_NAME);
                for (const unsigned char *p = (const unsigned char *) name; *p; p++)
                        FUZZ_CHECK(*p >= 0x20 && *p != 0x7f);
                FUZZ_CHECK(roster_find(r, &e->id) == e);
        }
}

static inline int fuzz_roster(const char *path, const uint8_t *data, size_t size) {
        OuAlias ou = { .name = (char[]) { FUZZ_OU_NAME } };
        Config c = { .ous = &ou, .n_ous = 1 };
        Roster *r = NULL;
        Diag d = DIAG_INIT;
        char *buf;
        int k;

        FUZZ_CHECK(guid_parse(FUZZ_OU_ID, strlen(FUZZ_OU_ID), &ou.id) == 0);
        buf = fuzz_dup(data, size, 0);
        k = roster_parse_buffer(path, buf, size, &c, &r, &d);
        if (k == 0) {
                FUZZ_CHECK(r && d.n_errors == 0);
                fuzz_check_roster(r, path);
        } else {
                /* Bad input is -EINVAL with at least one error said; nothing else is expected here. */
                FUZZ_CHECK(!r);
                FUZZ_CHECK(k == -ENOMEM || (k == -EINVAL && d.n_errors > 0));
        }
        fuzz_check_diag(&d);
        roster_free(r);
        diag_clear(&d);
        free(buf);
        return 0;
}
