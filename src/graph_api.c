/* graph_api.c: Graph requests and answers as data (see the header). json-c parses, libcurl's URL
 * API compares hosts; nothing here does I/O or keeps state between calls. */
#include "graph_api.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json_cleanup.h"
#include "nimbus_api.h"
#include "util.h"

#define JSON_MAX_DEPTH 32
#define CODE_MAX 80

/* ---- the member list --------------------------------------------------------------------- */

int graph_listing_new(size_t max_members, GraphListing **ret) {
        GraphListing *l = calloc(1, sizeof(*l));

        if (!l || !(l->pool = malloc(4096))) {
                free(l);
                return -ENOMEM;
        }
        l->pool[0] = '\0';
        l->pool_len = 1;
        l->pool_cap = 4096;
        l->max_members = max_members;
        *ret = l;
        return 0;
}

GraphListing *graph_listing_free(GraphListing *l) {
        if (!l)
                return NULL;
        free(l->group_name);
        free(l->members);
        free(l->pool);
        free(l);
        return NULL;
}

/* Offset of the cleaned name in the pool, 0 for none. */
static int pool_add(GraphListing *l, const char *s, size_t len, uint32_t *ret) {
        char *dst;
        int r;

        *ret = 0;
        len = s ? utf8_prefix(s, len, GRAPH_MAX_NAME) : 0;
        if (len == 0)
                return 0;
        if (l->pool_len + len + 1 > UINT32_MAX)
                return -E2BIG;
        r = array_grow((void **) &l->pool, &l->pool_cap, l->pool_len + len + 1, 1, 256);
        if (r < 0)
                return r;
        dst = l->pool + l->pool_len;
        for (size_t i = 0; i < len; i++)
                dst[i] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        dst[len] = '\0';
        *ret = (uint32_t) l->pool_len;
        l->pool_len += len + 1;
        return 0;
}

int graph_listing_add(GraphListing *l, const Guid *id, const char *name, size_t name_len, const char *upn,
                      size_t upn_len, bool enabled) {
        GraphMember m = { .id = *id, .enabled = enabled };
        int r;

        if (l->n >= l->max_members)
                return -E2BIG;
        r = array_grow((void **) &l->members, &l->cap, l->n + 1, sizeof(GraphMember), 256);
        if (r >= 0)
                r = pool_add(l, name, name_len, &m.name);
        if (r >= 0)
                r = pool_add(l, upn, upn_len, &m.upn);
        if (r < 0)
                return r;
        l->members[l->n++] = m;
        return 0;
}

static int member_cmp(const void *a, const void *b) {
        return guid_cmp(&((const GraphMember *) a)->id, &((const GraphMember *) b)->id);
}

int graph_listing_finish(GraphListing *l) {
        size_t k = 0;

        if (l->n > 1)
                qsort(l->members, l->n, sizeof(GraphMember), member_cmp);
        for (size_t i = 1; i < l->n; i++)
                if (!guid_eq(&l->members[k].id, &l->members[i].id))
                        l->members[++k] = l->members[i];
        if (l->n > 0)
                l->n = k + 1;
        return 0;
}

uint64_t graph_listing_hash(const GraphListing *l) {
        uint64_t h = FNV1A_INIT;
        const char *g = l->group_name ? l->group_name : "";

        fnv1a_bytes(&h, g, strlen(g) + 1);
        for (size_t i = 0; i < l->n; i++) {
                const GraphMember *m = &l->members[i];

                fnv1a_bytes(&h, m->id.b, sizeof(m->id.b));
                fnv1a_bytes(&h, graph_member_name(l, m), strlen(graph_member_name(l, m)) + 1);
                fnv1a_bytes(&h, graph_member_upn(l, m), strlen(graph_member_upn(l, m)) + 1);
                fnv1a_bytes(&h, &m->enabled, sizeof(m->enabled));
        }
        return h;
}

size_t graph_listing_count(const GraphListing *l, bool include_disabled) {
        size_t n = 0;

        for (size_t i = 0; i < l->n; i++)
                n += include_disabled || l->members[i].enabled;
        return n;
}

/* ---- requests ---------------------------------------------------------------------------- */

int graph_group_url(const char *graph_url, const Guid *group, char **ret) {
        char id[GUID_STRING_MAX];

        if (asprintf(ret, "%s/v1.0/groups/%s?$select=id,displayName", graph_url, guid_format(group, id)) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* transitiveMembers: nested groups expanded; the cast leaves out devices, contacts and the
 * groups themselves. */
int graph_members_url(const char *graph_url, const Guid *group, char **ret) {
        char id[GUID_STRING_MAX];

        if (asprintf(ret, "%s/v1.0/groups/%s/transitiveMembers/microsoft.graph.user"
                     "?$select=id,displayName,userPrincipalName,accountEnabled&$top=%d",
                     graph_url, guid_format(group, id), GRAPH_PAGE_SIZE) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* Exactly one JSON value filling the body; -EBADMSG for anything else. */
static int json_parse(const char *body, size_t len, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;
        bool ok;

        if (!body || len == 0 || len > GRAPH_MAX_BODY)
                return -EBADMSG;
        tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, body, (int) len);
        ok = o && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) == len;
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

/* A string member, or NULL (missing, null, or another type). */
static const char *json_text(struct json_object *o, const char *key, size_t *ret_len) {
        struct json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        *ret_len = (size_t) json_object_get_string_len(v);
        return json_object_get_string(v);
}

int graph_parse_group(const char *body, size_t len, char **ret_name) {
        _cleanup_json_ struct json_object *j = NULL;
        const char *name;
        size_t n = 0;
        int r;

        r = json_parse(body, len, &j);
        if (r < 0)
                return r;
        if (!json_object_is_type(j, json_type_object))
                return -EBADMSG;
        name = json_text(j, "displayName", &n);
        n = name ? utf8_prefix(name, n, GRAPH_MAX_NAME) : 0;
        *ret_name = NULL;
        if (n > 0 && !(*ret_name = strndup(name, n)))
                return -ENOMEM;
        for (char *p = *ret_name; p && *p; p++)
                if ((unsigned char) *p < 0x20 || *p == 0x7f)
                        *p = ' ';
        return 0;
}

/* One element of value[]. Objects of another type than user are skipped (the cast should leave
 * none); a user we cannot identify makes the page unusable. */
static int member_parse(struct json_object *v, GraphListing *l) {
        const char *type, *id, *name, *upn;
        size_t type_len = 0, id_len = 0, name_len = 0, upn_len = 0;
        struct json_object *enabled;
        Guid g;

        if (!json_object_is_type(v, json_type_object))
                return -EBADMSG;
        type = json_text(v, "@odata.type", &type_len);
        if (type && strcasecmp(type, "#microsoft.graph.user") != 0)
                return 0;
        id = json_text(v, "id", &id_len);
        if (!id || guid_parse(id, id_len, &g) < 0)
                return -EBADMSG;
        name = json_text(v, "displayName", &name_len);
        upn = json_text(v, "userPrincipalName", &upn_len);
        bool on = !json_object_object_get_ex(v, "accountEnabled", &enabled) ||
                  !json_object_is_type(enabled, json_type_boolean) || json_object_get_boolean(enabled);
        return graph_listing_add(l, &g, name, name_len, upn, upn_len, on);
}

static int next_link(struct json_object *j, const char *graph_url, char **ret) {
        const char *link;
        size_t len = 0;

        *ret = NULL;
        link = json_text(j, "@odata.nextLink", &len);
        if (!link)
                return 0;
        if (len != strlen(link) || !graph_link_allowed(graph_url, link))
                return -EXDEV;
        *ret = strdup(link);
        return *ret ? 0 : -ENOMEM;
}

int graph_parse_members(const char *body, size_t len, const char *graph_url, GraphListing *l,
                        char **ret_next) {
        _cleanup_json_ struct json_object *j = NULL;
        struct json_object *value;
        size_t n;
        int r;

        r = json_parse(body, len, &j);
        if (r < 0)
                return r;
        if (!json_object_is_type(j, json_type_object) || !json_object_object_get_ex(j, "value", &value) ||
            !json_object_is_type(value, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(value);
        for (size_t i = 0; i < n; i++) {
                r = member_parse(json_object_array_get_idx(value, i), l);
                if (r < 0)
                        return r;
        }
        return next_link(j, graph_url, ret_next);
}

static char *url_part(CURLU *u, CURLUPart part, unsigned flags) {
        char *s = NULL;

        if (curl_url_get(u, part, &s, flags) != CURLUE_OK)
                return NULL;
        return s;
}

/* Scheme, host and port (the default one when not written), or NULL if not an absolute URL. */
static int origin_of(const char *url, char *parts[3]) {
        CURLU *u = curl_url();
        int r = -EINVAL;

        if (!u)
                return -ENOMEM;
        if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
                parts[0] = url_part(u, CURLUPART_SCHEME, 0);
                parts[1] = url_part(u, CURLUPART_HOST, 0);
                parts[2] = url_part(u, CURLUPART_PORT, CURLU_DEFAULT_PORT);
                r = parts[0] && parts[1] && parts[2] ? 0 : -EINVAL;
        }
        curl_url_cleanup(u);
        return r;
}

bool graph_link_allowed(const char *graph_url, const char *link) {
        char *a[3] = { 0 }, *b[3] = { 0 };
        bool same;

        if (strlen(link) > GRAPH_MAX_LINK || origin_of(graph_url, a) < 0 || origin_of(link, b) < 0)
                same = false;
        else
                same = strcasecmp(a[0], b[0]) == 0 && strcasecmp(a[1], b[1]) == 0 && streq(a[2], b[2]);
        for (size_t i = 0; i < 3; i++) {
                curl_free(a[i]);
                curl_free(b[i]);
        }
        return same;
}

GraphOutcome graph_classify(long http_status, int transport_error) {
        if (http_status == 0)
                /* An untrusted certificate, or a ca_file that cannot be loaded, needs an admin. */
                return transport_error == -EKEYREJECTED || transport_error == -ENOKEY ? GRAPH_FAILED
                                                                                       : GRAPH_RETRY;
        if (http_status >= 200 && http_status < 300)
                return GRAPH_OK;
        switch (http_status) {
        case 401: return GRAPH_AUTH;
        case 403: return GRAPH_DENIED;
        case 404: return GRAPH_NOT_FOUND;
        case 408: case 429: case 500: case 502: case 503: case 504: return GRAPH_RETRY;
        default:  return GRAPH_FAILED;
        }
}

/* Graph's error code, when it is a plain identifier ("Authorization_RequestDenied"). */
static void error_code(const char *body, size_t len, char buf[CODE_MAX]) {
        _cleanup_json_ struct json_object *j = NULL;
        struct json_object *e = NULL;
        const char *code;
        size_t n = 0;

        buf[0] = '\0';
        if (json_parse(body, len, &j) < 0 || !json_object_object_get_ex(j, "error", &e) ||
            !json_object_is_type(e, json_type_object) || !(code = json_text(e, "code", &n)))
                return;
        if (n == 0 || n >= CODE_MAX || strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789_.-") != n)
                return;
        memcpy(buf, code, n + 1);
}

int graph_error_message(long http_status, const char *body, size_t len, char **ret) {
        _cleanup_free_ char *msg = NULL;
        char code[CODE_MAX];
        size_t keep;
        int r;

        r = nimbus_error_message(http_status, body, len, &msg);
        if (r < 0)
                return r;
        error_code(body, len, code);
        if (streq(code, msg))
                code[0] = '\0';
        /* code is shorter than CODE_MAX, so the cut leaves room for the message. */
        keep = utf8_prefix(msg, strlen(msg), GRAPH_MAX_MESSAGE - (code[0] ? strlen(code) + 2 : 0));
        r = asprintf(ret, "%s%s%.*s", code, code[0] ? ": " : "", (int) keep, msg);
        if (r < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}
