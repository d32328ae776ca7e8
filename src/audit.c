/* audit.c: who a user is, for the audit trail (see audit.h). */
#include "audit.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static void copy_text(char *dst, size_t size, const char *src) {
        snprintf(dst, size, "%s", src ? src : "");
}

/* The directory's last names for a user that left every group (graph: directory_names). */
static void describe_from_directory(Store *s, AuditUser *u) {
        _cleanup_free_ char *name = NULL, *upn = NULL, *group = NULL;

        if (store_directory_name(s, &u->id, &name, &upn, &group) < 0)
                return;
        if (!*u->name)
                copy_text(u->name, sizeof(u->name), name);
        if (!*u->upn)
                copy_text(u->upn, sizeof(u->upn), upn);
        if (!*u->source && group && *group) {
                snprintf(u->source, sizeof(u->source), "entra group \"%s\"", group);
                u->directory = true;
        }
}

static void describe_from_store(Store *s, AuditUser *u) {
        StoreUserInfo info = { 0 };

        if (!s)
                return;
        if (store_get_user_info(s, &u->id, &info) >= 0) {
                copy_text(u->name, sizeof(u->name), info.name);
                copy_text(u->upn, sizeof(u->upn), info.upn);
                copy_text(u->source, sizeof(u->source), info.source);
                u->directory = info.directory;
                store_user_info_clear(&info);
        }
        if (!*u->name || !*u->source)
                describe_from_directory(s, u);
}

void audit_user_describe(Store *s, const Roster *r, const RosterEntry *e, const Guid *id, const Guid *ou,
                         AuditUser *ret) {
        *ret = (AuditUser) { .id = *id };
        if (ou)
                ret->ou = *ou;
        if (!r || !e) {
                describe_from_store(s, ret);
                return;
        }
        copy_text(ret->name, sizeof(ret->name), roster_entry_given_name(r, e));
        copy_text(ret->upn, sizeof(ret->upn), roster_entry_upn(r, e));
        copy_text(ret->source, sizeof(ret->source), roster_entry_file(r, e));
        /* Files give every entry a line; a directory source gives none. */
        ret->directory = e->line == 0;
        if (!ou && e->kind == TARGET_OU)
                ret->ou = e->target;
}

int audit_user_record(Store *s, const Roster *r, const RosterEntry *e) {
        const char *name = roster_entry_given_name(r, e), *upn = roster_entry_upn(r, e);
        StoreUserInfo info = {
                .name = *name ? (char *) name : NULL,
                .upn = *upn ? (char *) upn : NULL,
                .source = (char *) roster_entry_file(r, e),
                .directory = e->line == 0,
        };

        return store_put_user_info(s, &e->id, &info);
}

const char *audit_user_label(const AuditUser *u, char *buf, size_t size) {
        if (*u->name && *u->upn && !streq(u->name, u->upn))
                snprintf(buf, size, "%s (%s)", u->name, u->upn);
        else
                snprintf(buf, size, "%s", *u->name ? u->name : u->upn);
        return buf;
}

void audit_user_event(const AuditUser *u, LogEvent *ev) {
        ev->o365_id = &u->id;
        ev->user_name = *u->name ? u->name : NULL;
        ev->user_upn = *u->upn ? u->upn : NULL;
        if (!ev->ou && !guid_is_null(&u->ou))
                ev->ou = &u->ou;
        if (*u->source && u->directory)
                ev->source = u->source;
        else if (*u->source)
                ev->roster_file = u->source;
}

const char *audit_relative_path(const char *dir, const char *path) {
        size_t n = dir ? strlen(dir) : 0;

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (n == 0 || strncmp(path, dir, n) != 0 || path[n] != '/')
                return path;
        path += n;
        while (*path == '/')
                path++;
        return *path ? path : path - 1;
}

const char *audit_user_source(const AuditUser *u, const char *roster_dir) {
        if (!*u->source)
                return "an unknown source";
        return u->directory ? u->source : audit_relative_path(roster_dir, u->source);
}

const char *audit_ou_text(const Config *c, const Guid *ou, char *buf, size_t size) {
        char id[GUID_STRING_MAX];

        if (guid_is_null(ou)) {
                snprintf(buf, size, "an unknown OU");
                return buf;
        }
        guid_format(ou, id);
        for (size_t i = 0; c && i < c->n_ous; i++)
                if (guid_eq(&c->ous[i].id, ou)) {
                        snprintf(buf, size, "%s (%s)", c->ous[i].name, id);
                        return buf;
                }
        snprintf(buf, size, "%s", id);
        return buf;
}
