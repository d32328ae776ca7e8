/* source.c: the state of each directory source and the desired state they make with the roster
 * files (see source.h). Members join through the same RosterBuilder as file entries, so the rules
 * of a roster file (an id twice with different targets is an error, the size limit) hold for
 * them unchanged. */
#include "source.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "roster_internal.h"
#include "util.h"

static int label_set(Source *s, const char *group_name) {
        char id[GUID_STRING_MAX];
        char *label = NULL;
        int r;

        if (group_name)
                r = asprintf(&label, "entra group \"%s\"", group_name);
        else
                r = asprintf(&label, "entra group %s", guid_format(&s->config->group, id));
        if (r < 0)
                return -ENOMEM;
        free(s->label);
        s->label = label;
        return 0;
}

int source_set_new(const Config *c, SourceSet **ret) {
        SourceSet *set = calloc(1, sizeof(*set));
        int r = 0;

        if (!set || !(set->sources = calloc(c->n_sources + 1, sizeof(Source)))) {
                free(set);
                return -ENOMEM;
        }
        set->config = c;
        set->n = c->n_sources;
        for (size_t i = 0; r >= 0 && i < set->n; i++) {
                set->sources[i].config = &c->sources[i];
                r = label_set(&set->sources[i], NULL);
        }
        if (r < 0) {
                source_set_free(set);
                return r;
        }
        *ret = set;
        return 0;
}

SourceSet *source_set_free(SourceSet *set) {
        if (!set)
                return NULL;
        for (size_t i = 0; i < set->n; i++) {
                graph_listing_free(set->sources[i].list);
                free(set->sources[i].label);
                free(set->sources[i].error);
        }
        free(set->sources);
        free(set);
        return NULL;
}

/* ---- the store ------------------------------------------------------------------------------ */

static int member_loaded(void *userdata, const StoreSourceMember *m) {
        return graph_listing_add(userdata, &m->id, m->name, m->name ? strlen(m->name) : 0, m->upn,
                                 m->upn ? strlen(m->upn) : 0, m->enabled);
}

static int source_load(Source *s, Store *store) {
        StoreSource known = { 0 };
        GraphListing *l = NULL;
        int r;

        r = graph_listing_new(GRAPH_MAX_MEMBERS, &l);
        if (r >= 0)
                r = store_source_load(store, &s->config->group, &known, member_loaded, l);
        if (r >= 0 && known.read_usec > 0) {
                l->group_name = TAKE_PTR(known.name);
                (void) graph_listing_finish(l);
                s->hash = graph_listing_hash(l);
                s->read_usec = known.read_usec;
                r = label_set(s, l->group_name);
                s->list = TAKE_PTR(l);
        }
        if (r >= 0) {
                s->error = TAKE_PTR(known.error);
                s->error_usec = known.error_usec;
        }
        store_source_clear(&known);
        graph_listing_free(l);
        return r == -ENOENT ? 0 : r;
}

int source_set_load(SourceSet *set, Store *store) {
        for (size_t i = 0; i < set->n; i++) {
                int r = source_load(&set->sources[i], store);

                if (r < 0)
                        return r;
        }
        return 0;
}

static int list_save(Store *store, const Source *s) {
        const GraphListing *l = s->list;
        _cleanup_free_ StoreSourceMember *m = calloc(l->n + 1, sizeof(StoreSourceMember));

        if (!m)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                m[i] = (StoreSourceMember) {
                        .id = l->members[i].id, .enabled = l->members[i].enabled,
                        .name = l->members[i].name ? graph_member_name(l, &l->members[i]) : NULL,
                        .upn = l->members[i].upn ? graph_member_upn(l, &l->members[i]) : NULL,
                };
        return store_source_save(store, &s->config->group, l->group_name, m, l->n, s->read_usec);
}

/* ---- results of reads ------------------------------------------------------------------------ */

static void log_failure(const Source *s, const Logger *log, const char *why) {
        LogEvent ev = { .message_id = MID_ROSTER_ERROR, .action = "roster", .result = "failed",
                        .roster_file = s->label };
        char id[GUID_STRING_MAX];

        guid_format(&s->config->group, id);
        if (s->list)
                log_event(log, LOG_ERR, &ev, "%s (%s) cannot be read: %s; its last complete list (%zu "
                          "users) stays in force", s->label, id, why,
                          graph_listing_count(s->list, s->config->include_disabled));
        else
                log_event(log, LOG_ERR, &ev, "%s (%s) cannot be read: %s; it has no complete member list "
                          "yet, so nothing is planned until it has", s->label, id, why);
}

static int result_failed(Source *s, const char *why, Store *store, const Logger *log) {
        bool again = s->error && streq(s->error, why);
        char *e = strdup(why);

        if (!e)
                return -ENOMEM;
        free(s->error);
        s->error = e;
        s->error_usec = now_usec();
        if (!again)   /* the same reason at every poll is said once */
                log_failure(s, log, why);
        return store ? store_source_failed(store, &s->config->group, why, now_usec()) : 0;
}

static int result_listing(Source *s, GraphListing *list, Store *store, const Logger *log, bool *changed) {
        LogEvent ev = { .message_id = MID_ROSTER_LOADED, .action = "roster", .result = "ok" };
        uint64_t hash = graph_listing_hash(list);
        size_t joined = graph_listing_count(list, s->config->include_disabled);
        int r;

        *changed = !s->list || hash != s->hash;
        graph_listing_free(s->list);
        s->list = list;
        s->hash = hash;
        s->read_usec = now_usec();
        s->error = (free(s->error), NULL);
        r = label_set(s, list->group_name);
        if (r >= 0 && store)
                r = list_save(store, s);
        ev.roster_file = s->label;
        if (*changed)
                log_event(log, LOG_INFO, &ev, "%s read: %zu users; disabled accounts %s: %zu", s->label,
                          joined, s->config->include_disabled ? "included" : "left out",
                          list->n - graph_listing_count(list, false));
        return r;
}

int source_set_result(SourceSet *set, size_t i, GraphListing *list, const GraphFailure *failure, Store *store,
                      const Logger *log) {
        Source *s = &set->sources[i];
        bool changed = false;
        int r;

        if (!list)
                return result_failed(s, failure->message, store, log);
        /* An empty group is taken for an empty roster file: never a reason to delete everyone. */
        if (graph_listing_count(list, s->config->include_disabled) == 0 && !set->config->deletes.allow_empty) {
                graph_listing_free(list);
                return result_failed(s, "the group has no user members to sync (an empty group is refused "
                                     "unless deletes.allow_empty is true)", store, log);
        }
        r = result_listing(s, list, store, log, &changed);
        return r < 0 ? r : changed;
}

void source_describe(const Source *s, char *buf, size_t size) {
        char id[GUID_STRING_MAX];

        guid_format(&s->config->group, id);
        if (!s->list)
                snprintf(buf, size, "entra group %s: no complete member list", id);
        else
                snprintf(buf, size, "%s (%s): %zu users; disabled accounts %s: %zu", s->label, id,
                         graph_listing_count(s->list, s->config->include_disabled),
                         s->config->include_disabled ? "included" : "left out",
                         s->list->n - graph_listing_count(s->list, false));
}

bool source_set_current(const SourceSet *set) {
        for (size_t i = 0; i < set->n; i++)
                if (!set->sources[i].list || set->sources[i].error)
                        return false;
        return true;
}

/* ---- the desired state ----------------------------------------------------------------------- */

static int merge_source(RosterBuilder *b, const Source *s) {
        const ConfigTarget *t = &s->config->target;
        const GraphListing *l = s->list;
        const char *name, *upn;
        int r;

        r = roster_builder_begin_source(b, s->label, s->hash ^ (uint64_t) s->config->include_disabled);
        if (r < 0)
                return r;
        if (!l) {
                roster_error(b, 0, 0, "no complete member list yet (%s)", s->error ? s->error : "not read");
                return 0;
        }
        for (size_t i = 0; i < l->n && !b->full; i++) {
                const GraphMember *m = &l->members[i];
                RosterItem it;

                if (!m->enabled && !s->config->include_disabled)
                        continue;
                roster_item_begin(&it, 0, 0);
                it.has_id = true;
                it.id = m->id;
                it.has_ou = !t->is_template;
                it.has_template = t->is_template;
                if (t->is_template)
                        it.template_id = t->id;
                else
                        it.ou = t->id;
                name = graph_member_name(l, m);
                upn = graph_member_upn(l, m);
                if ((name && (r = roster_item_name(b, &it, name, strlen(name))) < 0) ||
                    (upn && (r = roster_item_upn(b, &it, upn, strlen(upn))) < 0) ||
                    (r = roster_item_commit(b, &it, false)) < 0)
                        return r;
        }
        return 0;
}

int source_set_merge(const SourceSet *set, const Roster *files, Roster **ret, Diag *diag) {
        RosterBuilder b;
        int r;

        r = roster_builder_init(&b, set->config, NULL, diag);
        if (r >= 0)
                r = roster_builder_add_roster(&b, files);
        for (size_t i = 0; r >= 0 && i < set->n; i++)
                r = merge_source(&b, &set->sources[i]);
        if (r >= 0)
                r = roster_builder_finish(&b, ret);
        if (r >= 0)
                (*ret)->newest_usec = files->newest_usec;   /* groups have no files */
        roster_builder_done(&b);
        return r;
}
