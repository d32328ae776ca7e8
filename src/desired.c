/* desired.c: roster files ∪ directory sources for the commands that run once (see desired.h). */
#include "desired.h"

#include <stdio.h>
#include <string.h>

#include "source_poll.h"
#include "util.h"

/* The lists recorded by earlier runs: the store given, or a read-only look at the tenant's. */
static int load_known(const Config *c, SourceSet *set, Store *store) {
        Store *ro = NULL;
        int r;

        if (store)
                return source_set_load(set, store);
        r = store_open(c->state_dir, true, &ro);
        if (r == -ENOENT)
                return 0;
        if (r >= 0)
                r = source_set_load(set, ro);
        store_close(ro);
        return r;
}

static size_t count_stale(const SourceSet *set) {
        size_t n = 0;

        for (size_t i = 0; i < set->n; i++)
                n += set->sources[i].error != NULL;
        return n;
}

static int merge(Cli *cli, const SourceSet *set, const Roster *files, Roster **ret) {
        Diag d = DIAG_INIT;
        int r;

        r = source_set_merge(set, files, ret, &d);
        log_diag(&cli->log, &d, r < 0 ? MID_ROSTER_ERROR : NULL);
        if (r < 0)
                fprintf(stderr, "desired state rejected: nothing was changed\n");
        diag_clear(&d);
        return r;
}

int desired_add_sources(Cli *cli, const Config *c, Store *store, Roster **roster, size_t *ret_stale) {
        SourceSet *set = NULL;
        Roster *merged = NULL;
        Diag d = DIAG_INIT;
        int r;

        *ret_stale = 0;
        if (c->n_sources == 0)
                return 0;
        r = source_set_new(c, &set);
        if (r >= 0 && (r = load_known(c, set, store)) < 0)
                fprintf(stderr, "%s: error: cannot read the state store: %s\n", c->state_dir, strerror(-r));
        if (r >= 0) {
                r = source_refresh(set, store, &cli->log, &d);
                log_diag(&cli->log, &d, NULL);
        }
        if (r >= 0)
                r = merge(cli, set, *roster, &merged);
        if (r >= 0)
                *ret_stale = count_stale(set);
        diag_clear(&d);
        source_set_free(set);
        roster_free(*roster);
        *roster = merged;
        return r;
}

int desired_check_online(Cli *cli, const Config *c) {
        SourceSet *set = NULL;
        Diag d = DIAG_INIT;
        char id[GUID_STRING_MAX];
        size_t failed = 0;
        int r;

        r = source_set_new(c, &set);
        if (r >= 0)
                r = source_refresh(set, NULL, &cli->log, &d);
        log_diag(&cli->log, &d, NULL);
        diag_clear(&d);
        for (size_t i = 0; r >= 0 && i < set->n; i++) {
                const Source *s = &set->sources[i];
                char line[1024];

                guid_format(&s->config->group, id);
                if (s->error) {
                        printf("%s: sources[%zu]: entra group %s: error: %s\n", c->path, i + 1, id, s->error);
                        failed++;
                } else {
                        source_describe(s, line, sizeof(line));
                        printf("%s: sources[%zu]: %s\n", c->path, i + 1, line);
                }
        }
        source_set_free(set);
        return r < 0 ? r : failed > 0 ? -EINVAL : 0;
}

/* ---- status: what the store knows, without reading Graph ------------------------------------- */

int desired_from_store(const Config *c, Store *st, Roster **roster, SourceSet **ret_set, Diag *diag) {
        SourceSet *set = NULL;
        Roster *merged = NULL;
        int r;

        *ret_set = NULL;
        if (c->n_sources == 0)
                return 0;
        r = source_set_new(c, &set);
        if (r >= 0)
                r = source_set_load(set, st);
        if (r >= 0)
                r = source_set_merge(set, *roster, &merged, diag);
        roster_free(*roster);
        *roster = merged;
        *ret_set = set;
        return r;
}
