/* rosterview.c: the daemon's roster verdict and the files it read, to and from the JSON the state
 * store keeps. */
#include "rosterview.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "json_record.h"
#include "util.h"

static void files_free(RosterViewFile *f, size_t n) {
        for (size_t i = 0; f && i < n; i++)
                free(f[i].name);
        free(f);
}

void roster_view_clear(RosterView *v) {
        if (!v)
                return;
        free(v->error);
        files_free(v->files, v->n_files);
        *v = (RosterView) { 0 };
}

/* path inside dir: the part after "dir/"; otherwise path as it is. */
static const char *relative_to(const char *path, const char *dir) {
        size_t n = dir ? strlen(dir) : 0;

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (n > 0 && strncmp(path, dir, n) == 0 && path[n] == '/' && path[n + 1])
                return path + n + 1;
        return path;
}

static int files_of(const Roster *r, const char *roster_dir, RosterViewFile **ret) {
        RosterViewFile *f = calloc(r->n_files + 1, sizeof(*f));

        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < r->n_files; i++)
                if (!(f[i].name = strdup(relative_to(r->files[i], roster_dir)))) {
                        files_free(f, r->n_files);
                        return -ENOMEM;
                }
        for (size_t i = 0; i < r->n; i++)
                if (r->entries[i].file < r->n_files)
                        f[r->entries[i].file].users++;
        *ret = f;
        return 0;
}

int roster_view_accept(RosterView *v, const Roster *r, const Roster *files, const char *roster_dir,
                       uint64_t now) {
        RosterViewFile *f = NULL;
        int k = files_of(files, roster_dir, &f);

        if (k < 0)
                return k;
        files_free(v->files, v->n_files);
        v->files = f;
        v->n_files = files->n_files;
        v->users = r->n;
        v->newest_usec = files->newest_usec;
        v->read_usec = v->accepted_usec = now;
        free(v->error);
        v->error = NULL;
        return 0;
}

int roster_view_reject(RosterView *v, const char *error, uint64_t now) {
        char *e = strdup(error ? error : "rejected");

        if (!e)
                return -ENOMEM;
        free(v->error);
        v->error = e;
        v->read_usec = now;
        return 0;
}

int roster_view_format(const RosterView *v, char **ret) {
        json_object *o = json_object_new_object(), *files = json_object_new_array();

        if (!o || !files) {
                json_object_put(o);
                json_object_put(files);
                return -ENOMEM;
        }
        json_record_put_u64(o, "read", v->read_usec);
        json_object_object_add(o, "error", v->error ? json_object_new_string(v->error) : NULL);
        json_record_put_u64(o, "accepted", v->accepted_usec);
        json_record_put_u64(o, "users", v->users);
        json_record_put_u64(o, "newest", v->newest_usec);
        for (size_t i = 0; i < v->n_files; i++) {
                json_object *f = json_object_new_object();

                json_object_object_add(f, "name", json_object_new_string(v->files[i].name));
                json_record_put_u64(f, "users", v->files[i].users);
                json_object_array_add(files, f);
        }
        json_object_object_add(o, "files", files);
        return json_record_finish(o, ret);
}

static int parse_file(json_object *o, RosterViewFile *ret) {
        json_object *name;
        uint64_t users;

        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "name", &name) ||
            !json_object_is_type(name, json_type_string) || json_record_get_u64(o, "users", &users) < 0)
                return -EINVAL;
        ret->users = (size_t) users;
        return (ret->name = strdup(json_object_get_string(name))) ? 0 : -ENOMEM;
}

static int parse_files(json_object *a, RosterView *v) {
        size_t n = json_object_array_length(a);
        int r = 0;

        if (n > ROSTER_MAX_FILES)
                return -EINVAL;
        v->files = calloc(n + 1, sizeof(*v->files));
        if (!v->files)
                return -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = parse_file(json_object_array_get_idx(a, i), &v->files[i]);
                v->n_files += r >= 0;
        }
        return r;
}

static int parse_object(json_object *o, RosterView *v) {
        json_object *error = NULL, *files;
        uint64_t users = 0;
        int r;

        if (!json_object_object_get_ex(o, "error", &error) ||
            !(error == NULL || json_object_is_type(error, json_type_string)) ||
            !json_object_object_get_ex(o, "files", &files) || !json_object_is_type(files, json_type_array))
                return -EINVAL;
        if ((r = json_record_get_u64(o, "read", &v->read_usec)) < 0 || (r = json_record_get_u64(o, "accepted", &v->accepted_usec)) < 0 ||
            (r = json_record_get_u64(o, "users", &users)) < 0 || (r = json_record_get_u64(o, "newest", &v->newest_usec)) < 0)
                return r;
        v->users = (size_t) users;
        if (error && !(v->error = strdup(json_object_get_string(error))))
                return -ENOMEM;
        return parse_files(files, v);
}

int roster_view_parse(const char *text, RosterView *ret) {
        json_object *o = text ? json_tokener_parse(text) : NULL;
        RosterView v = { 0 };
        int r = -EINVAL;

        if (o && json_object_is_type(o, json_type_object))
                r = parse_object(o, &v);
        json_object_put(o);
        if (r < 0) {
                roster_view_clear(&v);
                return r;
        }
        *ret = v;
        return 0;
}
