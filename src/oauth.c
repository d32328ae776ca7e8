/* oauth.c: the Entra ID token endpoint as data, and Retry-After (see oauth.h).
 *
 * Everything that holds a credential (a client assertion, the encoded secret) is wiped before
 * it is freed. The token answer is read as tolerantly as the Nimbus answers in nimbus_api.c: a
 * missing or odd expires_in means the usual hour, and nothing in the answer can make us allocate
 * without bound. libcurl does the URL encoding and the HTTP-date parsing. */
#include "oauth.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#include "config.h"
#include "json_cleanup.h"
#include "util.h"

#define JSON_MAX_DEPTH 32                   /* the token answer is one level deep */
#define TOKEN_ANSWER_MAX (1024 * 1024)
#define TOKEN_MAX (16 * 1024)               /* an Entra access token is a few KiB */
#define EXPIRES_DEFAULT_SEC 3600
#define EXPIRES_MAX_SEC 86400
#define SCOPE_MAX 4096
#define ASSERTION_MAX (16 * 1024)           /* a client assertion is under 2 KiB */
#define RETRY_AFTER_MAX_SEC 3600
#define RETRY_AFTER_TEXT_MAX 128
#define ASSERTION_TYPE_JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

static inline void curl_freep(char **p) { curl_free(*p); }
#define _cleanup_curl_free_ __attribute__((cleanup(curl_freep)))

/* ---- the token answer ------------------------------------------------------------------------ */

/* A JSON object filling exactly BODY, strictly parsed and of bounded depth, or NULL. */
static struct json_object *json_object_parse(const char *body, size_t len) {
        struct json_tokener *tok;
        struct json_object *o;

        /* Some Windows servers start UTF-8 with a byte order mark; JSON does not allow one. */
        if (body && len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
                body += 3;
                len -= 3;
        }
        if (!body || len == 0 || len > TOKEN_ANSWER_MAX || !(tok = json_tokener_new_ex(JSON_MAX_DEPTH)))
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, body, (int) len);
        if (o && (json_tokener_get_error(tok) != json_tokener_success ||
                  json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object))) {
                json_object_put(o);
                o = NULL;
        }
        json_tokener_free(tok);
        return o;
}

/* A member by name, exact or else in any case. */
static struct json_object *member(struct json_object *o, const char *key) {
        struct json_object *v = NULL;

        if (json_object_object_get_ex(o, key, &v))
                return v;
        json_object_object_foreach(o, k, val)
                if (strcasecmp(k, key) == 0)
                        return val;
        return NULL;
}

/* expires_in as a JSON integer, an integral number or a decimal string; else the usual hour.
 * Clamped so a bad answer neither makes us fetch a token for every request nor keep one for
 * longer than a day. */
static int64_t expires_seconds(struct json_object *v) {
        int64_t sec = EXPIRES_DEFAULT_SEC;
        const char *s = json_object_get_string(v);
        char *end = NULL;
        double d;

        if (json_object_is_type(v, json_type_int))
                sec = json_object_get_int64(v);
        else if (json_object_is_type(v, json_type_double) && (d = json_object_get_double(v)) >= -9.0e18 &&
                 d <= 9.0e18 && d == (double) (int64_t) d)
                sec = (int64_t) d;
        else if (json_object_is_type(v, json_type_string) && s[0] >= '0' && s[0] <= '9' &&
                 strlen(s) <= 18 && (size_t) json_object_get_string_len(v) == strlen(s)) {
                long long n = strtoll(s, &end, 10);
                if (*end == '\0')
                        sec = n;
        }
        return sec < 1 ? 1 : sec > EXPIRES_MAX_SEC ? EXPIRES_MAX_SEC : sec;
}

/* The token goes into an Authorization header: only visible ASCII (RFC 6750 b64token is a
 * subset) can be sent there without risk of header injection. */
static bool token_valid(const char *s, size_t len) {
        if (len == 0 || len > TOKEN_MAX)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
                        return false;
        return true;
}

int oauth_parse_token(const char *body, size_t len, char **ret_token, uint64_t *ret_expires_usec) {
        _cleanup_json_ struct json_object *j = json_object_parse(body, len);
        struct json_object *t = j ? member(j, "access_token") : NULL;
        size_t tlen;
        char *token;

        if (!json_object_is_type(t, json_type_string))
                return -EBADMSG;
        tlen = (size_t) json_object_get_string_len(t);
        if (!token_valid(json_object_get_string(t), tlen))
                return -EBADMSG;
        token = strndup(json_object_get_string(t), tlen);
        if (!token)
                return -ENOMEM;
        *ret_token = token;
        *ret_expires_usec = (uint64_t) expires_seconds(member(j, "expires_in")) * USEC_PER_SEC;
        return 0;
}

/* ---- request bodies and credentials ------------------------------------------------------------ */

/* A credential's escaped copy is wiped, not just freed. */
static void escape_free(char *s) {
        erase_string(s);
        curl_free(s);
}

/* curl_easy_escape() keeps exactly RFC 3986's unreserved characters and encodes every other
 * byte as %XX, which every form decoder reads back unchanged. Only for strings whose length was
 * checked. */
static char *form_escape(const char *s) {
        return curl_easy_escape(NULL, s, (int) strlen(s));
}

static bool form_value_ok(const char *s, size_t max) {
        return s && *s && strlen(s) <= max;
}

int oauth_request_body(const char *scope, char **ret) {
        char *body = NULL;

        if (!form_value_ok(scope, SCOPE_MAX))
                return -EINVAL;
        _cleanup_curl_free_ char *escaped = form_escape(scope);
        if (!escaped)
                return -ENOMEM;
        if (asprintf(&body, "grant_type=client_credentials&scope=%s", escaped) < 0)
                return -ENOMEM;
        *ret = body;
        return 0;
}

int oauth_assertion_request_body(const char *scope, const char *client_id, const char *assertion,
                                 char **ret) {
        char *e_scope, *e_client, *e_type, *e_assertion, *body = NULL;
        int r = -ENOMEM;

        if (!form_value_ok(scope, SCOPE_MAX) || !form_value_ok(client_id, SCOPE_MAX) ||
            !form_value_ok(assertion, ASSERTION_MAX))
                return -EINVAL;
        e_scope = form_escape(scope);
        e_client = form_escape(client_id);
        e_type = form_escape(ASSERTION_TYPE_JWT_BEARER);
        e_assertion = form_escape(assertion);
        if (e_scope && e_client && e_type && e_assertion &&
            asprintf(&body, "grant_type=client_credentials&client_id=%s&scope=%s"
                     "&client_assertion_type=%s&client_assertion=%s",
                     e_client, e_scope, e_type, e_assertion) >= 0)
                r = 0;
        curl_free(e_scope);
        curl_free(e_client);
        curl_free(e_type);
        escape_free(e_assertion);
        if (r == 0)
                *ret = body;
        return r;
}

int oauth_basic_credential(const char *value, char **ret) {
        char *escaped, *copy;

        if (!form_value_ok(value, SECRET_MAX_SIZE))
                return -EINVAL;
        escaped = form_escape(value);
        if (!escaped)
                return -ENOMEM;
        /* Our own copy, so the caller frees (and wipes) it like any other string. */
        copy = strdup(escaped);
        escape_free(escaped);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* ---- Retry-After ------------------------------------------------------------------------------- */

/* Delta-seconds: digits only; huge values are capped rather than rejected. */
static bool retry_after_seconds(const char *s, uint64_t *ret_sec) {
        uint64_t v = 0;

        if (*s == '\0')
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                if (v <= RETRY_AFTER_MAX_SEC)
                        v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret_sec = v < RETRY_AFTER_MAX_SEC ? v : RETRY_AFTER_MAX_SEC;
        return true;
}

int parse_retry_after(const char *value, uint64_t now_usec, uint64_t *ret_delay_usec) {
        const uint64_t max_usec = RETRY_AFTER_MAX_SEC * USEC_PER_SEC;
        char buf[RETRY_AFTER_TEXT_MAX];
        uint64_t sec;

        if (!value)
                return -EINVAL;
        /* Header values may carry optional whitespace around them. */
        value += strspn(value, " \t");
        size_t n = strlen(value);
        while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
                n--;
        if (n == 0 || n >= sizeof buf)
                return -EINVAL;
        memcpy(buf, value, n);
        buf[n] = '\0';

        if (retry_after_seconds(buf, &sec)) {
                *ret_delay_usec = sec * USEC_PER_SEC;
                return 0;
        }

        time_t when = curl_getdate(buf, NULL);
        if (when == -1)
                return -EINVAL;
        /* Dates before the epoch are in the past as surely as any other. */
        uint64_t when_usec = when < 0 ? 0 :
                (uint64_t) when > UINT64_MAX / USEC_PER_SEC ? UINT64_MAX : (uint64_t) when * USEC_PER_SEC;
        uint64_t delay = when_usec > now_usec ? when_usec - now_usec : 0;
        *ret_delay_usec = delay < max_usec ? delay : max_usec;
        return 0;
}
