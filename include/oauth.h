/* oauth.h: the Entra ID token endpoint as data, and Retry-After. Builds the client-credentials
 * grant's form bodies (RFC 6749 §4.4, with a client assertion per RFC 7523 §2.2), encodes the
 * client id and secret for the HTTP Basic header (RFC 6749 §2.3.1), reads the token answer
 * tolerantly, and reads the Retry-After header of any answer (RFC 9110 §10.2.3).
 * No I/O here; nimbus_client.c moves the bytes. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Entra token answer: access_token and expires_in (seconds, number or string). -EBADMSG if not. */
int oauth_parse_token(const char *body, size_t len, char **ret_token, uint64_t *ret_expires_usec);
/* Form body for the client-credentials grant, with the scope URL-encoded. */
int oauth_request_body(const char *scope, char **ret);
/* The same grant authenticated by a signed client assertion (RFC 7523 §2.2) instead of a secret:
 * client_id, scope, client_assertion_type (jwt-bearer) and client_assertion, all URL-encoded. */
int oauth_assertion_request_body(const char *scope, const char *client_id, const char *assertion,
                                 char **ret);
/* A client id or secret form-encoded (application/x-www-form-urlencoded, every byte but the
 * unreserved A-Z a-z 0-9 - . _ ~ as %XX) for the Basic header, which carries "id:secret" after
 * this encoding (RFC 6749 §2.3.1): Entra decodes both, so a raw '+', '%' or ':' would change the
 * secret. -EINVAL if empty or longer than 64 KiB. The result is a credential: wipe it. */
int oauth_basic_credential(const char *value, char **ret);

/* Retry-After: delta-seconds or an HTTP-date, relative to now. -EINVAL if unparsable. Values are
 * capped at 1 hour. */
int parse_retry_after(const char *value, uint64_t now_usec, uint64_t *ret_delay_usec);
