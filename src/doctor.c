/* doctor.c: the pure judgements of `doctor` and `--raw` (see doctor.h). Answers are read with
 * json-c, URLs with libcurl's parser; nothing here does I/O. */
#include "doctor.h"

#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define JSON_MAX_DEPTH 32
#define SHAPE_MAX_NAMES 10
#define SHAPE_NAME_MAX 64
#define REDACTED "[redacted]"

/* ---- the other host ---------------------------------------------------------------------- */

static const char *const host_prefixes[2] = { "admin.", "portal." };

/* The host with its first label swapped, or -ENOENT. */
static int alternative_host(const char *host, char **ret) {
        for (size_t i = 0; i < ELEMENTSOF(host_prefixes); i++) {
                size_t n = strlen(host_prefixes[i]);

                if (strncasecmp(host, host_prefixes[i], n) == 0 && host[n] != '\0')
                        return asprintf(ret, "%s%s", host_prefixes[1 - i], host + n) < 0 ? -ENOMEM : 0;
        }
        return -ENOENT;
}

int doctor_alternative_url(const char *url, char **ret) {
        CURLU *u = curl_url();
        char *host = NULL, *out = NULL, *alt = NULL;
        int r;

        if (!u)
                return -ENOMEM;
        r = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK ? 0 : -EINVAL;
        if (r == 0)
                r = alternative_host(host, &alt);
        if (r == 0 && (curl_url_set(u, CURLUPART_HOST, alt, 0) != CURLUE_OK ||
                       curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK))
                r = -ENOMEM;
        if (r == 0)
                r = strdup_checked(out, ret);
        curl_free(host);
        curl_free(out);
        free(alt);
        curl_url_cleanup(u);
        return r;
}

/* ---- is it the API? ---------------------------------------------------------------------- */

/* One JSON object or array filling the body, or NULL. */
static json_object *json_parse_whole(const char *body, size_t len) {
        struct json_tokener *tok;
        json_object *o;

        if (len >= 3 && memcmp(body, "\xef\xbb\xbf", 3) == 0) {
                body += 3;
                len -= 3;
        }
        if (len == 0 || len > NIMBUS_MAX_BODY || !(tok = json_tokener_new_ex(JSON_MAX_DEPTH)))
                return NULL;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, body, (int) len);
        if (o && strspn(body + json_tokener_get_parse_end(tok), " \t\r\n") !=
                         len - json_tokener_get_parse_end(tok))
                o = (json_object_put(o), NULL);
        json_tokener_free(tok);
        if (o && !json_object_is_type(o, json_type_object) && !json_object_is_type(o, json_type_array))
                o = (json_object_put(o), NULL);
        return o;
}

static bool is_json(const char *body, size_t len) {
        json_object *o = json_parse_whole(body, len);

        json_object_put(o);
        return o != NULL;
}

static bool looks_like_html(const char *body, size_t len) {
        size_t skip = strspn(body, " \t\r\n");

        return skip < len && body[skip] == '<';
}

ApiVerdict doctor_api_verdict(long status, int error, const char *body, size_t len) {
        if (status == 0 && (error == -EKEYREJECTED || error == -ENOKEY))
                return API_UNTRUSTED;
        if (status == 0)
                return error == -EHOSTUNREACH || error == -ECONNREFUSED ? API_ABSENT : API_UNAVAILABLE;
        if (status == 408 || status == 429 || status >= 500)
                return API_UNAVAILABLE;
        if ((status >= 300 && status < 400) || status == 404)
                return API_ABSENT;
        if (status >= 200 && status < 300)
                return is_json(body, len) ? API_ANSWERS : API_ABSENT;
        /* A refusal may come as JSON, as text, or empty with WWW-Authenticate; a login or proxy
         * page is HTML. */
        return looks_like_html(body, len) ? API_ABSENT : API_REFUSES;
}

void doctor_answer_summary(const NimbusResult *res, char *buf, size_t size) {
        long st = res->http_status;

        if (st == 0)
                snprintf(buf, size, "no answer: %s", res->message);
        else if (st >= 300 && st < 400)
                snprintf(buf, size, "a redirect, HTTP %ld; doctor --raw shows where to", st);
        else if (looks_like_html(res->body, res->body_len))
                snprintf(buf, size, "HTTP %ld, an HTML page: a web server or a proxy, not the API", st);
        else if (st >= 200 && st < 300)
                snprintf(buf, size, "HTTP %ld, but not the API's JSON", st);
        else
                snprintf(buf, size, "HTTP %ld: %s", st, res->message);
}

const char *doctor_transport_hint(int error) {
        switch (error) {
        case -EHOSTUNREACH:
                return "the name does not resolve: check DNS, or set https_proxy for the service "
                       "(systemctl edit nimbus-sync)";
        case -ECONNREFUSED:
                return "nothing accepts connections there: check the host name, the firewall and the proxy";
        case -ETIMEDOUT:
                return "no answer in time: check the firewall and the proxy";
        case -EKEYREJECTED:
                return "certificate not trusted: if a proxy inspects TLS, set ca_file to its CA certificate";
        case -ENOKEY:
                return "fix ca_file: a readable PEM file with the CA certificate";
        case -EPROTO:
                return "the TLS handshake failed: check that the URL is right and what the proxy does";
        default:
                return "check the network path to the host";
        }
}

typedef struct Hint {
        const char *match;      /* in the message, case-insensitive */
        const char *hint;
} Hint;

static const char *hint_find(const Hint *hints, size_t n, const char *message, const char *fallback) {
        for (size_t i = 0; i < n; i++)
                if (message && strcasestr(message, hints[i].match))
                        return hints[i].hint;
        return fallback;
}

const char *doctor_token_hint(const char *message) {
        static const Hint hints[] = {
                { "AADSTS7000215", "the client secret is wrong: create a new one in the app registration "
                                   "(Certificates & secrets) and write its value to the secret file" },
                { "AADSTS7000222", "the client secret has expired: create a new one in the app registration "
                                   "(Certificates & secrets) and write its value to the secret file" },
                { "AADSTS700016", "no such application in this tenant: check client_id and tenant_id" },
                { "AADSTS90002", "no such tenant: check tenant_id (Entra ID, Overview, Tenant ID)" },
                { "AADSTS500011", "the scope names no API this tenant knows: check cluster (or scope), and "
                                  "that Luware Nimbus Login has admin consent" },
                { "AADSTS70011", "the scope is not valid: it must be the API's URL followed by /.default" },
                { "AADSTS700027", "the certificate is not the app's: upload client_certificate_file's "
                                  "certificate to the app registration (Certificates & secrets)" },
                { "ca_file", "fix ca_file: a readable PEM file with the CA certificate" },
                { "certificate", "if a proxy inspects TLS, set ca_file to its CA certificate" },
        };

        return hint_find(hints, ELEMENTSOF(hints), message, "check tenant_id, client_id and the client "
                         "secret or certificate in the app registration");
}

const char *doctor_refusal_hint(long status, const char *message) {
        static const Hint hints[] = {
                { "Provisioning Api disabled", "a Luware administrator must enable the Public API in the "
                                               "Provisioning Tenant Settings" },
                { "No app permission found", "add client_id in the Nimbus Admin Portal: Tenant "
                                             "Administration, Provisioning Tenant Settings, Application "
                                             "Permissions" },
                { "role", "grant the app registration the application permissions Provisioning.User.Create, "
                          ".Delete, .Read and Provisioning.Tenant.Read of Luware Nimbus Login, with admin "
                          "consent" },
                { "tenant", "check tenant_id" },
        };

        return hint_find(hints, ELEMENTSOF(hints), message, status == 401 ?
                         "check the app's Provisioning.* permissions (with admin consent) and its Application "
                         "Permissions in the Nimbus Admin Portal; a token for another audience: check scope" :
                         "check the app's Application Permissions in the Nimbus Admin Portal");
}

/* ---- answer shapes ----------------------------------------------------------------------- */

typedef struct NameList {
        char names[SHAPE_MAX_NAMES][SHAPE_NAME_MAX + 1];
        size_t n;
        bool more;
} NameList;

/* Once each, case-insensitively. */
static void names_add(NameList *l, const char *prefix, const char *name) {
        char clean[SHAPE_NAME_MAX + 1];

        snprintf(clean, sizeof clean, "%s%s", prefix, name);
        for (size_t k = 0; k < l->n; k++)
                if (strcasecmp(l->names[k], clean) == 0)
                        return;
        if (l->n == SHAPE_MAX_NAMES) {
                l->more = true;
                return;
        }
        strcpy(l->names[l->n++], clean);
}

static int names_join(const NameList *l, char **ret) {
        char buf[SHAPE_MAX_NAMES * (SHAPE_NAME_MAX + 2) + 8] = "";

        *ret = NULL;
        if (l->n == 0)
                return 0;
        for (size_t k = 0; k < l->n; k++) {
                if (k > 0)
                        strcat(buf, ", ");
                strcat(buf, l->names[k]);
        }
        if (l->more)
                strcat(buf, ", ...");
        return strdup_checked(buf, ret);
}

static bool has_key(json_object *o, const char *key) {
        json_object_object_foreach(o, k, v) {
                (void) v;
                if (nimbus_key_matches(k, key))
                        return true;
        }
        return false;
}

/* A name from the server, cut and made printable for a terminal. */
static const char *printable(const char *name, char buf[SHAPE_NAME_MAX + 1]) {
        size_t i;

        for (i = 0; name[i] && i < SHAPE_NAME_MAX; i++)
                buf[i] = name[i] > 0x20 && name[i] < 0x7f ? name[i] : '?';
        buf[i] = '\0';
        return buf;
}

static void object_shape(json_object *o, const char *const *expected, size_t n, const char *prefix,
                         NameList *unexpected, NameList *missing) {
        char buf[SHAPE_NAME_MAX + 1];

        json_object_object_foreach(o, k, v) {
                size_t i = 0;

                (void) v;
                while (i < n && !nimbus_key_matches(k, expected[i]))
                        i++;
                if (i == n)
                        names_add(unexpected, prefix, printable(k, buf));
        }
        for (size_t i = 0; i < n; i++)
                if (!has_key(o, expected[i]))
                        names_add(missing, prefix, expected[i]);
}

static int shape_finish(const NameList *unexpected, const NameList *missing, ShapeReport *ret) {
        ShapeReport r = { 0 };

        if (names_join(unexpected, &r.unexpected) < 0 || names_join(missing, &r.missing) < 0) {
                shape_report_clear(&r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int doctor_user_shape(const char *body, size_t len, ShapeReport *ret) {
        static const char *const expected[] = { "o365Id", "organizationUnitId", "userAssignmentType", "licenses" };
        json_object *o = json_parse_whole(body, len);
        NameList unexpected = { 0 }, missing = { 0 };

        if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        object_shape(o, expected, ELEMENTSOF(expected), "", &unexpected, &missing);
        json_object_put(o);
        return shape_finish(&unexpected, &missing, ret);
}

static void license_entries_shape(json_object *arr, const char *prefix, NameList *unexpected,
                                  NameList *missing) {
        static const char *const expected[] = { "name", "total", "used", "available" };
        size_t n = json_object_array_length(arr);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(arr, i);

                if (json_object_is_type(e, json_type_object))
                        object_shape(e, expected, ELEMENTSOF(expected), prefix, unexpected, missing);
                else
                        names_add(unexpected, prefix, "(an entry that is not an object)");
        }
}

int doctor_license_shape(const char *body, size_t len, ShapeReport *ret) {
        static const char *const top[] = { "licenses" };
        json_object *o = json_parse_whole(body, len), *arr = NULL;
        NameList unexpected = { 0 }, missing = { 0 };

        if (!o)
                return -EBADMSG;
        if (json_object_is_type(o, json_type_array))
                license_entries_shape(o, "[].", &unexpected, &missing);
        else {
                object_shape(o, top, ELEMENTSOF(top), "", &unexpected, &missing);
                json_object_object_foreach(o, k, v)
                        if (nimbus_key_matches(k, "licenses"))
                                arr = v;
                if (arr && json_object_is_type(arr, json_type_array))
                        license_entries_shape(arr, "licenses[].", &unexpected, &missing);
                else if (arr)
                        names_add(&unexpected, "", "licenses (not a list)");
        }
        json_object_put(o);
        return shape_finish(&unexpected, &missing, ret);
}

void shape_report_clear(ShapeReport *r) {
        if (!r)
                return;
        free(r->unexpected);
        free(r->missing);
        *r = (ShapeReport) { 0 };
}

/* ---- raw answers ------------------------------------------------------------------------- */

/* access_token, refresh_token, id_token, client_secret, Set-Cookie...; not token_type. */
static bool secret_name(const char *name, size_t len) {
        static const char *const words[] = { "secret", "password", "assertion", "authorization", "cookie" };
        char buf[128];

        if (len >= 5 && strncasecmp(name + len - 5, "token", 5) == 0)
                return true;
        snprintf(buf, sizeof buf, "%.*s", (int) (len < sizeof buf ? len : sizeof buf - 1), name);
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strcasestr(buf, words[i]))
                        return true;
        return false;
}

/* Text from a server, made safe for a terminal: control characters other than tab (and
 * newline where allowed) as \xNN; a CR before LF is dropped. */
static void put_escaped(FILE *f, const char *s, size_t len, bool newlines) {
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\r' && i + 1 < len && s[i + 1] == '\n')
                        continue;
                if ((c < 0x20 && c != '\t' && !(c == '\n' && newlines)) || c == 0x7f)
                        fprintf(f, "\\x%02x", c);
                else
                        fputc(c, f);
        }
}

static void put_header_line(FILE *f, const char *line, size_t len) {
        const char *colon = memchr(line, ':', len);

        fputs("< ", f);
        if (colon && strncmp(line, "HTTP/", 5) != 0 && secret_name(line, (size_t) (colon - line))) {
                put_escaped(f, line, (size_t) (colon - line), false);
                fputs(": " REDACTED, f);
        } else
                put_escaped(f, line, len, false);
        fputc('\n', f);
}

static void put_headers(FILE *f, const NimbusRaw *raw) {
        const char *p = raw->headers, *end = raw->headers + raw->headers_len;

        if (raw->headers_len == 0)
                fprintf(f, "< HTTP %ld\n", raw->status);
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t) (end - p));
                size_t len = (size_t) ((nl ? nl : end) - p);

                while (len > 0 && p[len - 1] == '\r')
                        len--;
                if (len > 0)
                        put_header_line(f, p, len);
                p = nl ? nl + 1 : end;
        }
        fputs("<\n", f);
}

/* Replace the values of secret-named keys, at any depth; returns how many were replaced. */
static unsigned redact_json(json_object *o) {
        unsigned n = 0;

        if (json_object_is_type(o, json_type_array))
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        n += redact_json(json_object_array_get_idx(o, i));
        if (!json_object_is_type(o, json_type_object))
                return n;
        json_object_object_foreach(o, k, v) {
                if (secret_name(k, strlen(k))) {
                        json_object_object_add(o, k, json_object_new_string(REDACTED));
                        n++;
                } else
                        n += redact_json(v);
        }
        return n;
}

static void put_body(FILE *f, const char *body, size_t len) {
        json_object *o = json_parse_whole(body, len);
        const char *text;

        if (o && redact_json(o) > 0) {
                text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
                put_escaped(f, text, strlen(text), true);
                fputc('\n', f);
        } else if (len > 0) {
                put_escaped(f, body, len, true);
                if (body[len - 1] != '\n')
                        fputc('\n', f);
        }
        json_object_put(o);
}

int doctor_format_raw(const NimbusRaw *raw, char **ret) {
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fprintf(f, "> %s ", raw->method);
        put_escaped(f, raw->url, strlen(raw->url), false);
        fputc('\n', f);
        if (raw->status == 0) {
                fputs("< no answer: ", f);
                put_escaped(f, raw->error_text, strlen(raw->error_text), false);
                fputc('\n', f);
        } else {
                put_headers(f, raw);
                put_body(f, raw->body, raw->body_len);
        }
        if (fclose(f) != 0) {
                free(buf);
                return -ENOMEM;
        }
        *ret = buf;
        return 0;
}
