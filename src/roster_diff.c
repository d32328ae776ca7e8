/* roster_diff.c: which roster files changed from one load to the next (see roster_diff.h). */
#include "roster_diff.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "util.h"

static int state_cmp(const void *a, const void *b) {
        return strcmp(((const RosterFileState *) a)->file, ((const RosterFileState *) b)->file);
}

void roster_file_set_clear(RosterFileSet *set) {
        if (!set)
                return;
        for (size_t i = 0; i < set->n; i++)
                free(set->files[i].file);
        free(set->files);
        *set = (RosterFileSet) { 0 };
}

static int set_add(RosterFileSet *set, const char *file, uint64_t hash, size_t users) {
        RosterFileState *s = &set->files[set->n];

        *s = (RosterFileState) { .hash = hash, .users = users };
        if (strdup_checked(file, &s->file) < 0)
                return -ENOMEM;
        set->n++;
        return 0;
}

int roster_file_set(const Roster *r, RosterFileSet *ret) {
        RosterFileSet set = { .files = calloc(r->n_files + 1, sizeof(RosterFileState)) };

        if (!set.files)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_files; i++)
                if (set_add(&set, r->files[i], r->file_stats[i].hash, r->file_stats[i].users) < 0) {
                        roster_file_set_clear(&set);
                        return -ENOMEM;
                }
        qsort(set.files, set.n, sizeof(RosterFileState), state_cmp);
        *ret = set;
        return 0;
}

int roster_file_set_to_json(const RosterFileSet *set, char **ret) {
        json_object *arr = json_object_new_array();
        int r = arr ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i < set->n; i++) {
                json_object *o = json_object_new_object();
                char hash[17];

                snprintf(hash, sizeof(hash), "%016" PRIx64, set->files[i].hash);
                if (!o || json_object_array_add(arr, o) < 0) {
                        json_object_put(o);
                        r = -ENOMEM;
                        break;
                }
                json_object_object_add(o, "file", json_object_new_string(set->files[i].file));
                json_object_object_add(o, "hash", json_object_new_string(hash));
                json_object_object_add(o, "users", json_object_new_int64((int64_t) set->files[i].users));
        }
        if (r >= 0)
                r = strdup_checked(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN), ret);
        json_object_put(arr);
        return r;
}

/* One element of the stored list; anything else in it is skipped. */
static int parse_one(json_object *o, RosterFileSet *set) {
        json_object *file, *hash, *users;
        const char *h;

        if (!json_object_object_get_ex(o, "file", &file) || !json_object_is_type(file, json_type_string) ||
            !json_object_object_get_ex(o, "hash", &hash) || !json_object_is_type(hash, json_type_string) ||
            !json_object_object_get_ex(o, "users", &users) || !json_object_is_type(users, json_type_int))
                return 0;
        h = json_object_get_string(hash);
        return set_add(set, json_object_get_string(file), strtoull(h, NULL, 16),
                       (size_t) (json_object_get_int64(users) < 0 ? 0 : json_object_get_int64(users)));
}

int roster_file_set_from_json(const char *json, RosterFileSet *ret) {
        json_object *arr = json ? json_tokener_parse(json) : NULL;
        RosterFileSet set = { 0 };
        size_t n = arr && json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
        int r = 0;

        set.files = calloc(n + 1, sizeof(RosterFileState));
        if (!set.files)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = parse_one(json_object_array_get_idx(arr, i), &set);
        json_object_put(arr);
        if (r < 0) {
                roster_file_set_clear(&set);
                return r;
        }
        qsort(set.files, set.n, sizeof(RosterFileState), state_cmp);
        *ret = set;
        return 0;
}

void roster_diff_clear(RosterDiff *d) {
        if (!d)
                return;
        free(d->files);
        *d = (RosterDiff) { 0 };
}

static void diff_add(RosterDiff *d, const RosterFileState *f, RosterChange c, size_t before) {
        d->files[d->n++] = (RosterFileDiff) { .file = f->file, .change = c, .users = f->users,
                                              .users_before = before };
        d->count[c]++;
}

int roster_diff(const RosterFileSet *old, const RosterFileSet *new, RosterDiff *ret) {
        RosterDiff d = { .files = calloc(old->n + new->n + 1, sizeof(RosterFileDiff)) };
        size_t i = 0, j = 0;

        if (!d.files)
                return -ENOMEM;
        /* Both sets are sorted by file: one merge walk. */
        while (i < old->n || j < new->n) {
                int c = i == old->n ? 1 : j == new->n ? -1 : strcmp(old->files[i].file, new->files[j].file);

                if (c < 0)
                        diff_add(&d, &old->files[i++], ROSTER_FILE_REMOVED, 0);
                else if (c > 0)
                        diff_add(&d, &new->files[j++], ROSTER_FILE_ADDED, 0);
                else {
                        if (old->files[i].hash != new->files[j].hash)
                                diff_add(&d, &new->files[j], ROSTER_FILE_CHANGED, old->files[i].users);
                        i++, j++;
                }
        }
        *ret = d;
        return 0;
}

const char *roster_change_name(RosterChange c) {
        static const char *const names[_ROSTER_FILE_CHANGE_MAX] = {
                [ROSTER_FILE_ADDED] = "added", [ROSTER_FILE_REMOVED] = "removed",
                [ROSTER_FILE_CHANGED] = "changed",
        };

        return (unsigned) c < _ROSTER_FILE_CHANGE_MAX ? names[c] : "?";
}

/* Appends to buf at *len, never past size; what does not fit is cut. */
static void __attribute__((format(printf, 4, 5))) append(char *buf, size_t size, size_t *len, const char *fmt, ...) {
        va_list ap;
        int k;

        if (*len >= size)
                return;
        va_start(ap, fmt);
        k = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (k > 0)
                *len = *len + (size_t) k < size ? *len + (size_t) k : size - 1;
}

static void format_kind(const RosterDiff *d, RosterChange c, const char *dir, char *buf, size_t size, size_t *len) {
        size_t named = 0;

        if (d->count[c] == 0)
                return;
        append(buf, size, len, "%s%s ", *len > 0 ? "; " : "", roster_change_name(c));
        for (size_t i = 0; i < d->n; i++) {
                const RosterFileDiff *f = &d->files[i];

                if (f->change != c || named++ >= ROSTER_DIFF_NAMED)
                        continue;
                append(buf, size, len, "%s%s (%zu users", named > 1 ? ", " : "", audit_relative_path(dir, f->file),
                       f->users);
                if (c == ROSTER_FILE_CHANGED)
                        append(buf, size, len, ", was %zu", f->users_before);
                append(buf, size, len, ")");
        }
        if (d->count[c] > ROSTER_DIFF_NAMED)
                append(buf, size, len, " and %zu more", d->count[c] - ROSTER_DIFF_NAMED);
}

void roster_diff_format(const RosterDiff *d, const char *roster_dir, char *buf, size_t size) {
        size_t len = 0;

        if (size == 0)
                return;
        buf[0] = 0;
        format_kind(d, ROSTER_FILE_ADDED, roster_dir, buf, size, &len);
        format_kind(d, ROSTER_FILE_CHANGED, roster_dir, buf, size, &len);
        format_kind(d, ROSTER_FILE_REMOVED, roster_dir, buf, size, &len);
        if (len == 0)
                snprintf(buf, size, "no file changed");
}
