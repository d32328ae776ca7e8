/* doctor.h: the judgements of `nimbus-sync doctor` and of `--raw`, as pure functions: which other
 * host the tenant may answer at, whether an answer came from the Nimbus API at all, which fields
 * of an answer the product did not expect, and how an answer is shown with its secrets redacted.
 * cmd_doctor.c does the I/O. See nimbus-sync(8), doctor. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "nimbus_client.h"

/* The same URL at the other host the API may answer at: "admin.X" <-> "portal.X" (the first
 * label of the host, case-insensitive; scheme, port and path kept). -ENOENT when the host starts
 * with neither, -EINVAL when url does not parse. Used for api_url and for scope. */
int doctor_alternative_url(const char *url, char **ret);

typedef enum ApiVerdict {
        API_ANSWERS,    /* a 2xx JSON answer: the API is here and lets us in */
        API_REFUSES,    /* the API is here, but said no (401, 403, other 4xx not HTML) */
        API_ABSENT,     /* not the API: 404, 3xx, an HTML page, no such host, connection refused */
        API_UNTRUSTED,  /* TLS: the certificate is not trusted, or ca_file cannot be loaded */
        API_UNAVAILABLE,/* 408, 429, 5xx, a timeout: try again later */
} ApiVerdict;

/* What an answer to GET user/license-usage says about the host it was sent to. status 0 means
 * no answer, error the transport's negative errno. */
ApiVerdict doctor_api_verdict(long status, int error, const char *body, size_t len);

/* What an answer was, in a few words, for a ✗ line: "no answer: ...", "HTTP 404, an HTML page",
 * "HTTP 401: <the server's message>"... */
void doctor_answer_summary(const NimbusResult *res, char *buf, size_t size);

/* What to do about a transport error (negative errno as HttpResponse gives it), one phrase. */
const char *doctor_transport_hint(int error);

/* What to do about a refused token request, from Entra's message (its AADSTS code). */
const char *doctor_token_hint(const char *message);
/* What to do about the API's refusal (401, 403, another 4xx), from its status and message. */
const char *doctor_refusal_hint(long status, const char *message);

/* Fields of an answer other than those the product reads, and those it reads that are missing,
 * as comma-separated lists (NULL when there are none). Names are compared as the product reads
 * them (nimbus_key_matches()); at most 10 are listed, each cut to 64 printable characters. */
typedef struct ShapeReport {
        char *unexpected;
        char *missing;
} ShapeReport;

/* user details: o365Id, organizationUnitId, userAssignmentType, licenses. -EBADMSG if the
 * answer is not a JSON object. */
int doctor_user_shape(const char *body, size_t len, ShapeReport *ret);
/* license usage: {"licenses": [...]} or a bare array of {name, total, used, available}; a name
 * missing in any entry is listed once. -EBADMSG if the answer is neither. */
int doctor_license_shape(const char *body, size_t len, ShapeReport *ret);
void shape_report_clear(ShapeReport *r);

/* The answer as text for --raw: "> METHOD URL", then "< " and each header line (Authorization,
 * cookies and anything named like a token redacted), then the body, in which the values of JSON
 * keys naming a token, secret, password or assertion are redacted. Control characters are
 * escaped (\xNN), so a server cannot drive the terminal. */
int doctor_format_raw(const NimbusRaw *raw, char **ret);
