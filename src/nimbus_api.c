/* nimbus_api.c: the Nimbus Public API as data (nimbus-sync.yaml(5), ENDPOINTS and RETRIES); the
 * Entra token endpoint is in oauth.c. Builds request URLs and bodies, and reads answers tolerantly:
 * the API documents no response bodies, so every field is optional, wrong types count as missing,
 * and anything an answer holds (garbage bytes, deep nesting, huge strings) ends in "unknown", never
 * in a crash or unbounded allocation. JSON is read and written only through json-c. No I/O happens
 * here. */
#include "nimbus_api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <strings.h>

#include "encoding.h"
#include "json_cleanup.h"
#include "util.h"

#define JSON_MAX_DEPTH 32                   /* answers are two or three levels deep */
#define LICENSES_MAX 1000
#define LICENSE_NAME_MAX 128

const char *nimbus_call_name(NimbusCall call) {
        switch (call) {
        case CALL_CREATE:   return "create";
        case CALL_COPY:     return "copy";
        case CALL_DELETE:   return "delete";
        case CALL_GET_USER: return "verify";
        case CALL_LICENSES: return "licenses";
        }
        return "unknown";
}

const char *outcome_name(Outcome o) {
        switch (o) {
        case OUTCOME_OK:          return "ok";
        case OUTCOME_EXISTS:      return "exists";
        case OUTCOME_GONE:        return "gone";
        case OUTCOME_TRANSIENT:   return "transient";
        case OUTCOME_AUTH:        return "auth";
        case OUTCOME_NO_LICENSES: return "no-licenses";
        case OUTCOME_FORBIDDEN:   return "forbidden";
        case OUTCOME_NOT_API:     return "not-api";
        case OUTCOME_REDIRECT:    return "redirect";
        case OUTCOME_PERMANENT:   return "permanent";
        }
        return "unknown";
}

/* ---- JSON helpers ---------------------------------------------------------------------------- */

/* Parse exactly one JSON value filling body[0..len) (surrounding whitespace allowed).
 * -ENOMEM if the parser cannot be set up, -EBADMSG for anything that is not such a value. */
static int json_parse_body(const char *body, size_t len, struct json_object **ret) {
        if (!body || len > NIMBUS_MAX_BODY)
                return -EBADMSG;
        /* Some Windows servers start UTF-8 with a byte order mark; JSON does not allow one. */
        if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
                body += 3;
                len -= 3;
        }
        if (len == 0)
                return -EBADMSG;

        struct json_tokener *tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        /* Strict, so plain text is not mistaken for JSON; no UTF-8 validation, so one bad byte in a
         * field we ignore does not cost us the whole answer (every string we use is checked). */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

        struct json_object *o = json_tokener_parse_ex(tok, body, (int) len);
        size_t end = json_tokener_get_parse_end(tok);
        /* A bare number or literal only ends at a delimiter; a NUL byte supplies one. */
        if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
                o = json_tokener_parse_ex(tok, "", 1);
                end = len;
        }
        bool ok = o && json_tokener_get_error(tok) == json_tokener_success && end == len;
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

bool nimbus_key_matches(const char *k, const char *key) {
        for (;; k++, key++) {
                while (*k == '_')
                        k++;
                while (*key == '_')
                        key++;
                if (tolower((unsigned char) *k) != tolower((unsigned char) *key))
                        return false;
                if (*k == '\0')
                        return true;
        }
}

/* The member `key` of an object, matched exactly or else loosely (nimbus_key_matches): the docs show no
 * answer bodies, so a .NET server's "O365Id" or a "o365_id" must read the same. NULL if o is
 * not an object or has no such member. */
static struct json_object *obj_get(struct json_object *o, const char *key) {
        struct json_object *v = NULL;
        if (!json_object_is_type(o, json_type_object))
                return NULL;
        if (json_object_object_get_ex(o, key, &v))
                return v;
        json_object_object_foreach(o, k, val)
                if (nimbus_key_matches(k, key))
                        return val;
        return NULL;
}

/* A string value with its length (it may hold NUL bytes); false for any other type. */
static bool json_string(struct json_object *v, const char **ret_s, size_t *ret_len) {
        if (!json_object_is_type(v, json_type_string))
                return false;
        *ret_s = json_object_get_string(v);
        *ret_len = (size_t) json_object_get_string_len(v);
        return true;
}

/* A decimal integer string ("42", "-1") with nothing else in it. */
static bool parse_int64_text(const char *s, size_t len, int64_t *ret) {
        if (len == 0 || len > 20 || strlen(s) != len)
                return false;
        if (!(s[0] >= '0' && s[0] <= '9') && !(s[0] == '-' && s[1] >= '0' && s[1] <= '9'))
                return false;
        char *end = NULL;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return false;
        *ret = v;
        return true;
}

/* An integer given as a JSON integer, an integral double, or a numeric string. */
static bool json_int64(struct json_object *v, int64_t *ret) {
        const char *s;
        size_t len;

        switch (json_object_get_type(v)) {
        case json_type_int:
                *ret = json_object_get_int64(v);
                return true;
        case json_type_double: {
                double d = json_object_get_double(v);
                if (!(d >= -9.0e18 && d <= 9.0e18) || d != (double) (int64_t) d)
                        return false;
                *ret = (int64_t) d;
                return true;
        }
        case json_type_string:
                return json_string(v, &s, &len) && parse_int64_text(s, len, ret);
        default:
                return false;
        }
}

/* A GUID member; the null GUID when missing, of the wrong type or malformed. */
static Guid json_guid(struct json_object *o, const char *key) {
        Guid g = {};
        const char *s;
        size_t len;
        if (!json_string(obj_get(o, key), &s, &len) || guid_parse(s, len, &g) < 0)
                return (Guid) {};
        return g;
}

/* ---- Text cleaning ----------------------------------------------------------------------------- */

/* True for whitespace and control characters: C0, DEL, and C1 (U+0080..U+009F). */
static bool is_blank_sequence(const unsigned char *s, size_t n) {
        if (n == 1)
                return s[0] <= 0x20 || s[0] == 0x7f;
        return n == 2 && s[0] == 0xc2 && s[1] <= 0x9f;
}

/* Turn arbitrary bytes into one line of valid UTF-8 of at most size-1 bytes: runs of whitespace
 * and control characters become one space, the ends are trimmed, invalid bytes become U+FFFD, and
 * the cut never splits a character. Returns the length written. */
static size_t text_clean(const char *in, size_t len, char *out, size_t size) {
        static const char replacement[] = "\xef\xbf\xbd";
        const unsigned char *s = (const unsigned char *) in;
        size_t o = 0;
        bool space = false;

        for (size_t i = 0; i < len;) {
                size_t n = utf8_sequence(s + i, len - i);
                const char *piece = in + i;
                size_t plen = n;

                if (n == 0) {
                        piece = replacement;
                        plen = sizeof replacement - 1;
                        n = 1;
                }
                i += n;
                if (plen == n && is_blank_sequence((const unsigned char *) piece, n)) {
                        space = o > 0;
                        continue;
                }
                if (o + space + plen > size - 1)
                        break;
                if (space)
                        out[o++] = ' ';
                memcpy(out + o, piece, plen);
                o += plen;
                space = false;
        }
        out[o] = '\0';
        return o;
}

/* ---- Error messages and classification --------------------------------------------------------- */

/* The first non-empty text among the fields servers use for a human-readable error. */
static bool json_message_field(struct json_object *o, char *buf, size_t size) {
        static const char *const keys[] = { "message", "error_description", "error", "title", "detail" };
        const char *s;
        size_t len;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                struct json_object *v = obj_get(o, keys[i]);
                /* OData and Microsoft Graph nest it: {"error": {"code": .., "message": ..}}. */
                if (json_object_is_type(v, json_type_object))
                        v = obj_get(v, "message");
                if (json_string(v, &s, &len) && text_clean(s, len, buf, size) > 0)
                        return true;
        }
        return false;
}

/* The admin-facing message of an answer, cleaned, into buf; "" if the answer has none. Never
 * fails: if the body cannot be read as JSON (even for lack of memory) it is used as text. */
static void message_extract(const char *body, size_t len, char *buf, size_t size) {
        _cleanup_json_ struct json_object *j = NULL;
        const char *s;
        size_t slen;

        buf[0] = '\0';
        if (!body || len == 0)
                return;
        if (json_parse_body(body, len, &j) >= 0) {
                if (json_string(j, &s, &slen)) {
                        text_clean(s, slen, buf, size);
                        return;
                }
                if (json_message_field(j, buf, size))
                        return;
        }
        text_clean(body, len, buf, size);
}

int nimbus_error_message(long http_status, const char *body, size_t len, char **ret) {
        char buf[NIMBUS_MAX_MESSAGE + 1];
        char *m = NULL;

        message_extract(body, len, buf, sizeof buf);
        if (buf[0] == '\0') {
                if (asprintf(&m, "HTTP %ld", http_status) < 0)
                        return -ENOMEM;
        } else if (!(m = strdup(buf)))
                return -ENOMEM;
        *ret = m;
        return 0;
}

/* 403 means three different things; only the server's words tell them apart, and for create and
 * copy "Organization Unit not allowed" may still mean "no licenses" (the docs say so). */
static Outcome classify_403(NimbusCall call, const char *body, size_t len) {
        char buf[NIMBUS_MAX_MESSAGE + 1];

        message_extract(body, len, buf, sizeof buf);
        if (strcasestr(buf, "licen"))
                return OUTCOME_NO_LICENSES;
        if (strcasestr(buf, "no authenticated user"))
                return OUTCOME_AUTH;
        return call == CALL_CREATE || call == CALL_COPY ? OUTCOME_FORBIDDEN : OUTCOME_PERMANENT;
}

bool nimbus_says_duplicate(const char *body, size_t len) {
        char buf[NIMBUS_MAX_MESSAGE + 1];

        message_extract(body, len, buf, sizeof buf);
        return strcasestr(buf, "exist") || strcasestr(buf, "duplicat");
}

static bool only_whitespace(const char *body, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r\n", body[i]) || body[i] == '\0')
                        return false;
        return true;
}

static Outcome classify_4xx(NimbusCall call, long http_status, const char *body, size_t len);

/* What an answer wrapped in a result object says of itself: 1 success, 0 failure, -1 when it
 * carries no such flag ("isSuccess" or "success"; a boolean or "true"/"false"). Not
 * "succeeded": a long-running operation's status says false while it is still under way. */
static int success_flag(struct json_object *j) {
        static const char *const flags[] = { "isSuccess", "success" };
        int flag = -1;

        for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
                struct json_object *v = obj_get(j, flags[i]);
                const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";

                if (json_object_is_type(v, json_type_boolean))
                        flag = flag == 0 ? 0 : json_object_get_boolean(v);
                else if (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0)
                        flag = flag == 0 ? 0 : strcasecmp(s, "true") == 0;
        }
        return flag;
}

/* The answer itself inside such a wrapper ({"isSuccess": true, "data": {...}}; also "result",
 * "value" or "payload"); an answer without a success flag is its own payload. */
static struct json_object *payload(struct json_object *j) {
        static const char *const keys[] = { "data", "result", "value", "payload" };

        if (success_flag(j) != 1)
                return j;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                struct json_object *v = obj_get(j, keys[i]);
                if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
                        return v;
        }
        return j;
}

/* Some APIs answer 200 and put the verdict in the body: {"isSuccess": false, "statusCode": 409,
 * "message": "User already exists"}. The docs show no bodies, so a 2xx object whose success flag
 * is false is read as the status it names (400 if none): 0 when it does not say it failed. */
static long failure_in_body(struct json_object *j) {
        static const char *const codes[] = { "statusCode", "status", "httpStatus", "code" };
        int64_t code;

        if (success_flag(j) != 0)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(codes); i++)
                if (json_int64(obj_get(j, codes[i]), &code) && code >= 400 && code <= 599)
                        return (long) code;
        return 400;
}

/* A 2xx is a Nimbus answer only if it carries what the call promises: a user object for GET
 * user, license data for license usage, and JSON or nothing for a mutation (the docs show no
 * bodies). A login or proxy page with 200 is no proof that anything happened, nor is a body
 * that says the call failed. */
static Outcome classify_success(NimbusCall call, const char *body, size_t len) {
        _cleanup_json_ struct json_object *j = NULL;
        long failed;

        if (call != CALL_GET_USER && call != CALL_LICENSES && (!body || only_whitespace(body, len)))
                return OUTCOME_OK;
        if (json_parse_body(body, len, &j) < 0)
                return OUTCOME_NOT_API;
        failed = failure_in_body(j);
        if (failed >= 500)
                return OUTCOME_TRANSIENT;
        if (failed > 0)
                return classify_4xx(call, failed, body, len);
        if (call == CALL_GET_USER && !json_object_is_type(j, json_type_object))
                return OUTCOME_NOT_API;
        if (call == CALL_LICENSES && !json_object_is_type(j, json_type_object) &&
            !json_object_is_type(j, json_type_array))
                return OUTCOME_NOT_API;
        return OUTCOME_OK;
}

bool nimbus_body_is_html(const char *body, size_t len) {
        size_t i = len >= 3 && memcmp(body, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;    /* a UTF-8 BOM */

        while (i < len && body[i] && strchr(" \t\r\n", body[i]))
                i++;
        return i < len && body[i] == '<';
}

static Outcome classify_4xx(NimbusCall call, long http_status, const char *body, size_t len) {
        bool creates = call == CALL_CREATE || call == CALL_COPY;

        /* "Gone" and "already exists" are facts about a user that only the API can state. A web
         * server's own page (api_url at the wrong host, a proxy in the way) says nothing of it. */
        if ((http_status == 400 || http_status == 404 || http_status == 409) &&
            nimbus_body_is_html(body, len))
                return OUTCOME_NOT_API;
        switch (http_status) {
        case 400:
                /* "Also relates to user duplication error": a GET confirms before it counts. */
                return creates && nimbus_says_duplicate(body, len) ? OUTCOME_EXISTS : OUTCOME_PERMANENT;
        case 401:
                return OUTCOME_AUTH;
        case 403:
                return classify_403(call, body, len);
        case 404:
                /* For create and copy the missing thing is the template or OU, not the user. */
                return call == CALL_DELETE || call == CALL_GET_USER ? OUTCOME_GONE : OUTCOME_PERMANENT;
        case 408:
        case 429:
                return OUTCOME_TRANSIENT;
        case 409:
                return creates ? OUTCOME_EXISTS : OUTCOME_PERMANENT;
        default:
                return OUTCOME_PERMANENT;
        }
}

Outcome nimbus_classify(NimbusCall call, long http_status, int transport_error,
                        const char *body, size_t len) {
        /* No answer, an informational one, or nonsense: the request may not have been seen. */
        if (http_status < 200 || http_status > 599)
                return OUTCOME_TRANSIENT;
        if (http_status < 300)
                return classify_success(call, body, len);
        /* We never follow redirects: a 3xx means api_url points at the wrong host. */
        if (http_status < 400)
                return OUTCOME_REDIRECT;
        if (http_status >= 500)
                return OUTCOME_TRANSIENT;
        return classify_4xx(call, http_status, body, len);
}

/* ---- Requests ---------------------------------------------------------------------------------- */

static int json_add_guid(struct json_object *o, const char *key, const Guid *g) {
        char buf[GUID_STRING_MAX];
        struct json_object *v = json_object_new_string(guid_format(g, buf));

        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

/* A JSON object of two (or one, if key2 is NULL) GUID members, in this order. */
static int json_guid_body(const char *key1, const Guid *g1, const char *key2, const Guid *g2,
                          char **ret) {
        _cleanup_json_ struct json_object *o = json_object_new_object();

        if (!o || json_add_guid(o, key1, g1) < 0 || (key2 && json_add_guid(o, key2, g2) < 0))
                return -ENOMEM;

        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!s)
                return -ENOMEM;
        char *copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

static bool guid_given(const Guid *g) {
        return g && !guid_is_null(g);
}

static int request_check(NimbusCall call, const char *api_base, const Guid *id, const Guid *target) {
        size_t n = api_base ? strlen(api_base) : 0;

        if (n == 0 || api_base[n - 1] != '/')
                return -EINVAL;
        switch (call) {
        case CALL_CREATE:
        case CALL_COPY:
                return guid_given(id) && guid_given(target) ? 0 : -EINVAL;
        case CALL_DELETE:
        case CALL_GET_USER:
                return guid_given(id) ? 0 : -EINVAL;
        case CALL_LICENSES:
                return 0;
        }
        return -EINVAL;
}

static int request_body(NimbusCall call, const Guid *id, const Guid *target, char **ret) {
        switch (call) {
        case CALL_CREATE:
                return json_guid_body("o365Id", id, "organizationUnitId", target, ret);
        case CALL_COPY:
                return json_guid_body("newO365Id", id, "sourceO365Id", target, ret);
        case CALL_DELETE:
                return json_guid_body("o365Id", id, NULL, NULL, ret);
        default:
                *ret = NULL;
                return 0;
        }
}

int nimbus_request_build(NimbusCall call, const char *api_base, const Guid *id, const Guid *target,
                         char **ret_url, const char **ret_method, char **ret_body) {
        static const char *const methods[] = {
                [CALL_CREATE] = "POST", [CALL_COPY] = "POST", [CALL_DELETE] = "DELETE",
                [CALL_GET_USER] = "GET", [CALL_LICENSES] = "GET",
        };
        _cleanup_free_ char *url = NULL, *body = NULL;
        char idbuf[GUID_STRING_MAX];
        int r;

        r = request_check(call, api_base, id, target);
        if (r < 0)
                return r;

        if (call == CALL_CREATE)
                r = asprintf(&url, "%suser", api_base);
        else if (call == CALL_COPY)
                r = asprintf(&url, "%suser/copy", api_base);
        else if (call == CALL_LICENSES)
                r = asprintf(&url, "%suser/license-usage", api_base);
        else
                r = asprintf(&url, "%suser/%s", api_base, guid_format(id, idbuf));
        if (r < 0) {
                url = NULL;   /* asprintf leaves it undefined on failure */
                return -ENOMEM;
        }

        r = request_body(call, id, target, &body);
        if (r < 0)
                return r;

        *ret_url = TAKE_PTR(url);
        *ret_method = methods[call];
        *ret_body = TAKE_PTR(body);
        return 0;
}

/* ---- Answers ----------------------------------------------------------------------------------- */

/* One license name from a string or an object's "name", cleaned; "" if there is none. */
static void license_name(struct json_object *v, char buf[LICENSE_NAME_MAX]) {
        const char *s;
        size_t len;

        buf[0] = '\0';
        if (json_object_is_type(v, json_type_object))
                v = obj_get(v, "name");
        if (json_string(v, &s, &len))
                text_clean(s, len, buf, LICENSE_NAME_MAX);
}

/* The names of a user's "licenses" array joined with commas (commas in names become spaces so
 * the list stays unambiguous). NULL in *ret when the array is missing. */
static int user_licenses(struct json_object *arr, char **ret) {
        if (!json_object_is_type(arr, json_type_array)) {
                *ret = NULL;
                return 0;
        }

        size_t n = json_object_array_length(arr), kept = 0;
        if (n > LICENSES_MAX)
                n = LICENSES_MAX;
        char *list = malloc(n * LICENSE_NAME_MAX + 1);
        if (!list)
                return -ENOMEM;

        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                char name[LICENSE_NAME_MAX];
                license_name(json_object_array_get_idx(arr, i), name);
                if (name[0] == '\0')
                        continue;
                for (char *c = name; (c = strchr(c, ',')); c++)
                        *c = ' ';
                o += (size_t) sprintf(list + o, "%s%s", kept++ > 0 ? "," : "", name);
        }
        list[o] = '\0';
        *ret = list;
        return 0;
}

/* An enum name such as "SkillBased": letters, digits, '_', '-' and '.' only. */
static bool is_identifier(const char *s, size_t len) {
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                    c != '_' && c != '-' && c != '.')
                        return false;
        }
        return true;
}

int nimbus_parse_user(const char *body, size_t len, NimbusUser *ret) {
        _cleanup_json_ struct json_object *j = NULL;
        NimbusUser u = {};
        const char *s;
        size_t slen;
        int r;

        r = json_parse_body(body, len, &j);
        if (r < 0)
                return r;
        struct json_object *o = payload(j);
        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;

        u.o365_id = json_guid(o, "o365Id");
        u.ou = json_guid(o, "organizationUnitId");
        if (json_string(obj_get(o, "userAssignmentType"), &s, &slen) && slen < sizeof u.assignment_type &&
            is_identifier(s, slen))
                memcpy(u.assignment_type, s, slen + 1);

        r = user_licenses(obj_get(o, "licenses"), &u.licenses);
        if (r < 0)
                return r;
        *ret = u;
        return 0;
}

bool nimbus_user_is_another(const Guid *asked, const char *body, size_t len) {
        NimbusUser u = { 0 };
        bool another;

        if (nimbus_parse_user(body, len, &u) < 0)
                return false;
        another = !guid_is_null(&u.o365_id) && !guid_eq(&u.o365_id, asked);
        nimbus_user_clear(&u);
        return another;
}

void nimbus_user_clear(NimbusUser *u) {
        if (!u)
                return;
        free(u->licenses);
        *u = (NimbusUser) {};
}

/* A license count; -1 when missing, not a number, or negative. */
static int64_t license_count(struct json_object *entry, const char *key) {
        int64_t v;
        if (!json_int64(obj_get(entry, key), &v) || v < 0)
                return -1;
        return v;
}

static int license_entry(struct json_object *v, NimbusLicense *ret) {
        char name[LICENSE_NAME_MAX];

        license_name(v, name);
        char *copy = strdup(name);
        if (!copy)
                return -ENOMEM;
        *ret = (NimbusLicense) {
                .name = copy,
                .total = license_count(v, "total"),
                .used = license_count(v, "used"),
                .available = license_count(v, "available"),
        };
        return 0;
}

/* Entries that are neither objects nor strings carry nothing and are skipped. */
static int licenses_from_array(struct json_object *arr, NimbusLicense **ret, size_t *ret_n) {
        size_t n = json_object_array_length(arr), kept = 0;
        NimbusLicense *l = NULL;

        if (n > 0 && !(l = calloc(n < LICENSES_MAX ? n : LICENSES_MAX, sizeof *l)))
                return -ENOMEM;
        for (size_t i = 0; i < n && kept < LICENSES_MAX; i++) {
                struct json_object *v = json_object_array_get_idx(arr, i);
                if (!json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_string))
                        continue;
                if (license_entry(v, &l[kept]) < 0) {
                        nimbus_licenses_free(l, kept);
                        return -ENOMEM;
                }
                kept++;
        }
        if (kept == 0) {
                free(l);
                l = NULL;
        }
        *ret = l;
        *ret_n = kept;
        return 0;
}

int nimbus_parse_licenses(const char *body, size_t len, NimbusLicense **ret, size_t *ret_n) {
        _cleanup_json_ struct json_object *j = NULL;
        int r;

        r = json_parse_body(body, len, &j);
        if (r < 0)
                return r;

        struct json_object *o = payload(j);
        struct json_object *arr = json_object_is_type(o, json_type_array) ? o : obj_get(o, "licenses");
        if (!json_object_is_type(arr, json_type_array))
                return -EBADMSG;
        return licenses_from_array(arr, ret, ret_n);
}

const char *nimbus_licenses_exhausted(const NimbusLicense *l, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool none = l[i].available == 0 ||
                            (l[i].available < 0 && l[i].total >= 0 && l[i].used >= l[i].total);
                if (none)
                        return l[i].name[0] ? l[i].name : "(unnamed)";
        }
        return NULL;
}

void nimbus_licenses_free(NimbusLicense *l, size_t n) {
        if (!l)
                return;
        for (size_t i = 0; i < n; i++)
                free(l[i].name);
        free(l);
}
