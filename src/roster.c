/* roster.c: builds the desired state (nimbus-sync.yaml(5), ROSTER FILES) from the entries the
 * format readers find.
 *
 * The format readers (roster_yaml.c, roster_csv.c) hand each entry's fields to the RosterBuilder
 * here, which checks them and appends 48-byte entries to one array; names go into one string pool.
 * At the end the union of all files is sorted by O365 ID and duplicates are reported. Nothing is
 * allocated per entry, so a million users cost about 50 MB and a second or two, mostly in libyaml.
 * A roster with any error is rejected whole, but reading goes on to show every problem. */
#include "roster.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

#include "roster_internal.h"
#include "util.h"

#define QUOTE_MAX 80 /* at most this much of a bad value is quoted back */

/* A million users in 48 MB is part of the performance contract (README, Performance). */
_Static_assert(sizeof(RosterEntry) == 48, "RosterEntry grew");

/* ---- diagnostics ------------------------------------------------------------------------- */

static const char *current_file(const RosterBuilder *b) {
        return b->n_files > 0 ? b->files[b->n_files - 1] : NULL;
}

int roster_error(RosterBuilder *b, unsigned line, unsigned col, const char *fmt, ...) {
        va_list ap;
        int r;

        b->errors++;
        va_start(ap, fmt);
        r = diag_addv(b->diag, DIAG_ERROR, current_file(b), line, col, fmt, ap);
        va_end(ap);
        return r;
}

static int qlen(size_t len) {
        return (int) (len < QUOTE_MAX ? len : QUOTE_MAX);
}

/* ---- the builder ------------------------------------------------------------------------- */

int roster_builder_init(RosterBuilder *b, const Config *c, const RosterLimits *limits, Diag *diag) {
        *b = (RosterBuilder) {
                .config = c,
                .diag = diag,
                .limits = limits ? *limits : ROSTER_LIMITS_DEFAULT,
                .hash = FNV1A_INIT,
        };
        b->names = malloc(4096);
        if (!b->names)
                return -ENOMEM;
        b->names[0] = '\0';
        b->names_len = 1;
        b->names_cap = 4096;
        return 0;
}

void roster_builder_done(RosterBuilder *b) {
        for (size_t i = 0; i < b->n_files; i++)
                free(b->files[i]);
        free(b->files);
        free(b->file_stats);
        free(b->entries);
        free(b->names);
        *b = (RosterBuilder) { 0 };
}

/* The name, a NUL, the length, then the content's hash: no two different file sets hash alike
 * by shifting bytes between name and content. */
void roster_builder_hash(RosterBuilder *b, const char *name, const char *buf, size_t len) {
        uint64_t n = len, h = FNV1A_INIT;

        /* The content is hashed once, for the file; the roster's hash takes the file's. */
        fnv1a_bytes(&h, buf, len);
        if (b->n_files > 0)
                b->file_stats[b->n_files - 1].hash = h;
        fnv1a_bytes(&b->hash, name, strlen(name) + 1);
        fnv1a_bytes(&b->hash, &n, sizeof n);
        fnv1a_bytes(&b->hash, &h, sizeof h);
}

int roster_builder_begin_file(RosterBuilder *b, const char *path) {
        int r;

        r = array_grow((void **) &b->files, &b->cap_files, b->n_files + 1, sizeof(char *), 64);
        if (r < 0)
                return r;
        r = array_grow((void **) &b->file_stats, &b->cap_stats, b->n_files + 1, sizeof(RosterFile), 64);
        if (r < 0)
                return r;
        r = strdup_checked(path, &b->files[b->n_files]);
        if (r < 0)
                return r;
        b->file_stats[b->n_files] = (RosterFile) { 0 };
        b->n_files++;
        b->file_default = config_roster_default(b->config, path);
        return 0;
}

/* ---- entries ----------------------------------------------------------------------------- */

void roster_item_begin(RosterItem *it, unsigned line, unsigned col) {
        *it = (RosterItem) { .line = line, .col = col };
}

/* An O365 ID field (o365_id, template); hint follows the message about a value that is none. */
static int parse_user_id(RosterBuilder *b, const char *key, const char *hint, const char *s, size_t len,
                         unsigned line, unsigned col, Guid *ret) {
        if (guid_parse(s, len, ret) < 0)
                return roster_error(b, line, col, "invalid %s \"%.*s\"%s", key, qlen(len), s, hint);
        /* Unfinished exports and templates fill in zeros; nobody has that ID. */
        if (guid_is_null(ret))
                return roster_error(b, line, col, "%s is the all-zero GUID: a placeholder, not a user", key);
        return 0;
}

void roster_item_id(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line,
                    unsigned col) {
        it->has_id = true;
        if (parse_user_id(b, "o365_id", "", s, len, line, col, &it->id) < 0)
                it->bad = true;
}

int roster_resolve_ou(RosterBuilder *b, const char *s, size_t len, unsigned line, unsigned col, Guid *ret) {
        if (config_resolve_ou(b->config, s, len, ret) < 0)
                return roster_error(b, line, col, "unknown organization unit \"%.*s\" (neither a GUID nor a "
                                    "name from organization_units)", qlen(len), s);
        if (guid_is_null(ret))
                return roster_error(b, line, col, "ou is the all-zero GUID: a placeholder, not an "
                                    "organization unit");
        return 0;
}

void roster_item_ou(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line,
                    unsigned col) {
        it->has_ou = true;
        if (roster_resolve_ou(b, s, len, line, col, &it->ou) < 0)
                it->bad = true;
}

void roster_item_template(RosterBuilder *b, RosterItem *it, const char *s, size_t len, unsigned line,
                          unsigned col) {
        it->has_template = true;
        if (parse_user_id(b, "template", " (must be an O365 ID)", s, len, line, col, &it->template_id) < 0)
                it->bad = true;
}

/* While an item's fields arrive, its name and UPN wait in the pool past names_len, as
 * "NAME\0UPN\0" (either may be empty): the layout roster_item_commit() keeps. Setting one moves
 * the other if need be. */
static int item_text(RosterBuilder *b, RosterItem *it, bool upn, const char *s, size_t len) {
        size_t old = upn ? it->upn_len : it->name_len, other = upn ? it->name_len : it->upn_len;
        char *base, *dst;
        int r;

        len = utf8_prefix(s, len, ROSTER_MAX_NAME);
        /* Offsets are 32 bits; the entry limit keeps us far below, but never wrap. */
        if (b->names_len + len + other + 2 > UINT32_MAX)
                return 0;
        r = array_grow((void **) &b->names, &b->names_cap, b->names_len + len + other + 2, 1, 64);
        if (r < 0)
                return r;
        base = b->names + b->names_len;
        if (!upn && it->upn_len > 0)    /* the UPN after the name moves with its length */
                memmove(base + len + 1, base + old + 1, it->upn_len);
        dst = upn ? base + it->name_len + 1 : base;
        /* Names only inform (plan output, logs): control characters would garble both. */
        for (size_t i = 0; i < len; i++)
                dst[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        if (upn)
                it->upn_len = len;
        else
                it->name_len = len;
        base[it->name_len] = '\0';
        base[it->name_len + 1 + it->upn_len] = '\0';
        return 0;
}

int roster_item_name(RosterBuilder *b, RosterItem *it, const char *s, size_t len) {
        return len == 0 ? 0 : item_text(b, it, false, s, len);
}

int roster_item_upn(RosterBuilder *b, RosterItem *it, const char *s, size_t len) {
        return len == 0 ? 0 : item_text(b, it, true, s, len);
}

static void item_check(RosterBuilder *b, RosterItem *it, bool needs_default) {
        if (!it->has_id) {
                roster_error(b, it->line, it->col, "entry has no o365_id");
                it->bad = true;
        }
        if (it->has_ou && it->has_template) {
                roster_error(b, it->line, it->col, "entry has both ou and template");
                it->bad = true;
        } else if (!it->has_ou && !it->has_template && !needs_default) {
                roster_error(b, it->line, it->col, "entry needs ou or template");
                it->bad = true;
        }
        if (!it->bad && it->has_template && guid_eq(&it->id, &it->template_id)) {
                roster_error(b, it->line, it->col, "template is the entry's own o365_id");
                it->bad = true;
        }
}

int roster_item_commit(RosterBuilder *b, RosterItem *it, bool needs_default) {
        RosterEntry *e;
        int r;

        item_check(b, it, needs_default);
        if (it->bad)
                return 0;
        if (b->n >= b->limits.max_entries) {
                if (!b->full)
                        roster_error(b, it->line, it->col, "more than %zu entries in all roster files",
                                     b->limits.max_entries);
                b->full = true;
                return 0;
        }
        r = array_grow((void **) &b->entries, &b->cap, b->n + 1, sizeof(RosterEntry), 64);
        if (r < 0)
                return r;

        e = &b->entries[b->n++];
        *e = (RosterEntry) {
                .id = it->id,
                .target = it->has_template ? it->template_id : it->ou,
                .kind = it->has_template ? TARGET_TEMPLATE : it->has_ou ? TARGET_OU : 0,
                .file = (uint32_t) (b->n_files - 1),
                .line = it->line,
        };
        b->file_stats[b->n_files - 1].users++;
        if (it->name_len + it->upn_len > 0) {
                e->name = (uint32_t) b->names_len;
                b->names_len += it->name_len + it->upn_len + 2;
        }
        return 0;
}

void roster_builder_default_ou(RosterBuilder *b, size_t first, const Guid *ou) {
        const ConfigTarget *d = b->file_default ? &b->file_default->target : NULL;

        for (size_t i = first; i < b->n; i++) {
                RosterEntry *e = &b->entries[i];

                if (e->kind != 0)
                        continue;
                if (ou) {
                        e->kind = TARGET_OU;
                        e->target = *ou;
                } else if (d && d->is_template && guid_eq(&d->id, &e->id))
                        roster_error(b, e->line, 0, "the roster_defaults template is the entry's own o365_id");
                else if (d) {
                        e->kind = d->is_template ? TARGET_TEMPLATE : TARGET_OU;
                        e->target = d->id;
                } else
                        roster_error(b, e->line, 0, "entry needs ou or template (and the file sets no "
                                     "default ou)");
        }
}

/* ---- the union of all files -------------------------------------------------------------- */

/* By id, then in reading order, so the first listing of an id is the one kept. */
static int entry_cmp(const void *a, const void *b) {
        const RosterEntry *x = a, *y = b;
        int r = guid_cmp(&x->id, &y->id);

        if (r != 0)
                return r;
        if (x->file != y->file)
                return x->file < y->file ? -1 : 1;
        return x->line < y->line ? -1 : x->line > y->line;
}

static void insertion_sort(RosterEntry *e, size_t n) {
        for (size_t i = 1; i < n; i++) {
                RosterEntry x = e[i];
                size_t j = i;

                for (; j > 0 && entry_cmp(&e[j - 1], &x) > 0; j--)
                        e[j] = e[j - 1];
                e[j] = x;
        }
}

/* Sort by entry_cmp. Entra object ids are random, so one counting pass on their first two bytes
 * leaves 65536 small buckets that insertion sort finishes quickly: several times faster than
 * qsort() for a million entries. A large bucket (ids sharing a prefix) gets qsort(), so no input
 * is quadratic. The scatter needs a second array, as glibc's qsort() would too. */
#define SORT_BUCKETS 65536

static int sort_entries(RosterBuilder *b) {
        RosterEntry *e = b->entries, *out;
        size_t n = b->n, *start;

        if (n < SORT_BUCKETS) {
                if (n > 1)
                        qsort(e, n, sizeof(RosterEntry), entry_cmp);
                return 0;
        }
        start = calloc(SORT_BUCKETS + 1, sizeof(size_t));
        out = malloc(n * sizeof(RosterEntry));
        if (!start || !out) {
                free(start);
                free(out);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                start[(e[i].id.b[0] << 8 | e[i].id.b[1]) + 1]++;
        for (size_t k = 1; k <= SORT_BUCKETS; k++)
                start[k] += start[k - 1];
        for (size_t i = 0; i < n; i++)
                out[start[e[i].id.b[0] << 8 | e[i].id.b[1]]++] = e[i]; /* stable: reading order kept */

        /* Each start[k] now holds the end of bucket k. */
        for (size_t k = 0, from = 0; k < SORT_BUCKETS; from = start[k++]) {
                size_t m = start[k] - from;

                if (m > 32)
                        qsort(out + from, m, sizeof(RosterEntry), entry_cmp);
                else
                        insertion_sort(out + from, m);
        }
        free(start);
        free(e);
        b->entries = out;
        b->cap = n;
        return 0;
}

/* "FILE:LINE", or the label alone for a directory source (line 0). */
static void entry_place(const RosterBuilder *b, const RosterEntry *e, char *buf, size_t size) {
        if (e->line > 0)
                snprintf(buf, size, "%s:%u", b->files[e->file], e->line);
        else
                snprintf(buf, size, "%s", b->files[e->file]);
}

static void report_duplicate(RosterBuilder *b, const RosterEntry *first, const RosterEntry *again) {
        char id[GUID_STRING_MAX], at[PATH_MAX + 16];
        bool same = first->kind == again->kind && guid_eq(&first->target, &again->target);

        guid_format(&again->id, id);
        entry_place(b, first, at, sizeof(at));
        if (same)
                diag_add(b->diag, DIAG_WARNING, b->files[again->file], again->line, 0,
                         "o365_id %s listed twice (also at %s)", id, at);
        else {
                b->errors++;
                diag_add(b->diag, DIAG_ERROR, b->files[again->file], again->line, 0,
                         "o365_id %s listed with a different %s than at %s", id,
                         again->kind == first->kind && again->kind == TARGET_OU ? "ou" :
                         again->kind == first->kind ? "template" : "target", at);
        }
}

/* Keep the first entry of every id; report the others. */
static void dedupe(RosterBuilder *b) {
        size_t k = 0;

        for (size_t i = 1; i < b->n; i++) {
                if (guid_eq(&b->entries[k].id, &b->entries[i].id))
                        report_duplicate(b, &b->entries[k], &b->entries[i]);
                else
                        b->entries[++k] = b->entries[i];
        }
        if (b->n > 0)
                b->n = k + 1;
}

int roster_builder_finish(RosterBuilder *b, Roster **ret) {
        Roster *r;
        int k;

        k = sort_entries(b);
        if (k < 0)
                return k;
        dedupe(b);
        if (b->errors > 0)
                return -EINVAL;

        r = calloc(1, sizeof(Roster));
        if (!r)
                return -ENOMEM;
        if (b->n > 0 && b->n < b->cap) {
                RosterEntry *shrunk = realloc(b->entries, b->n * sizeof(RosterEntry));

                if (shrunk)
                        b->entries = shrunk;
        }
        *r = (Roster) {
                .entries = TAKE_PTR(b->entries), .n = b->n,
                .files = TAKE_PTR(b->files), .n_files = b->n_files,
                .file_stats = TAKE_PTR(b->file_stats),
                .names = TAKE_PTR(b->names), .names_len = b->names_len,
                .hash = b->hash,
        };
        b->n = b->n_files = 0;
        *ret = r;
        return 0;
}

/* ---- the result -------------------------------------------------------------------------- */

static int find_cmp(const void *key, const void *elem) {
        return guid_cmp(key, &((const RosterEntry *) elem)->id);
}

const RosterEntry *roster_find(const Roster *r, const Guid *id) {
        if (!r || r->n == 0)
                return NULL;
        return bsearch(id, r->entries, r->n, sizeof(RosterEntry), find_cmp);
}

const char *roster_entry_label(const Roster *r, const RosterEntry *e, char *buf, size_t size) {
        const char *name = roster_entry_given_name(r, e), *upn = roster_entry_upn(r, e);

        if (*name && *upn && !streq(name, upn))
                snprintf(buf, size, "%s (%s)", name, upn);
        else
                snprintf(buf, size, "%s", *name ? name : upn);
        return buf;
}

Roster *roster_free(Roster *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_files; i++)
                free(r->files[i]);
        free(r->files);
        free(r->file_stats);
        free(r->entries);
        free(r->names);
        free(r);
        return NULL;
}

/* ---- the desired state beyond files (see roster_internal.h) -------------------------------- */

static int add_names(RosterBuilder *b, const Roster *r, uint32_t *ret_base) {
        size_t extra = r->names_len > 0 ? r->names_len - 1 : 0;   /* without the "" at offset 0 */
        int k;

        if (b->names_len + extra > UINT32_MAX)
                return -E2BIG;
        k = array_grow((void **) &b->names, &b->names_cap, b->names_len + extra, 1, 64);
        if (k < 0)
                return k;
        if (extra > 0)
                memcpy(b->names + b->names_len, r->names + 1, extra);
        *ret_base = (uint32_t) b->names_len - 1;
        b->names_len += extra;
        return 0;
}

int roster_builder_add_roster(RosterBuilder *b, const Roster *r) {
        uint32_t file_base = (uint32_t) b->n_files, name_base;
        int k;

        if (b->n + r->n > b->limits.max_entries) {
                b->full = true;
                roster_error(b, 0, 0, "more than %zu entries in all roster files", b->limits.max_entries);
                return 0;
        }
        for (size_t i = 0; i < r->n_files; i++) {
                if ((k = roster_builder_begin_file(b, r->files[i])) < 0)
                        return k;
                b->file_stats[b->n_files - 1] = r->file_stats[i];
        }
        k = add_names(b, r, &name_base);
        if (k < 0)
                return k;
        k = array_grow((void **) &b->entries, &b->cap, b->n + r->n, sizeof(RosterEntry), 64);
        if (k < 0)
                return k;
        for (size_t i = 0; i < r->n; i++) {
                RosterEntry *e = &b->entries[b->n++];

                *e = r->entries[i];
                e->file += file_base;
                e->name = e->name ? e->name + name_base : 0;
        }
        fnv1a_bytes(&b->hash, &r->hash, sizeof(r->hash));
        return 0;
}

int roster_builder_begin_source(RosterBuilder *b, const char *label, uint64_t content_hash) {
        int k = roster_builder_begin_file(b, label);

        if (k < 0)
                return k;
        b->file_default = NULL;   /* a pattern like "*" must not apply to a group */
        b->file_stats[b->n_files - 1].hash = content_hash;
        fnv1a_bytes(&b->hash, label, strlen(label) + 1);
        fnv1a_bytes(&b->hash, &content_hash, sizeof(content_hash));
        return 0;
}
