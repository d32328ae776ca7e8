/* http.h: HTTP requests on libcurl's multi interface, driven by the libuv loop (the pattern of
 * curl's docs/examples/multi-uv.c, with its error checks added). Nothing here blocks the loop:
 * sockets are watched with uv_poll, curl's timeout with one uv_timer. Answers are collected into a
 * bounded buffer and handed to a completion callback. This module knows nothing of Nimbus. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct HttpEngine HttpEngine;

typedef struct HttpRequest {
        const char *method;       /* "GET", "POST", "DELETE" */
        const char *url;
        const char *body;         /* NULL for none; copied */
        const char *content_type; /* for the body */
        const char *bearer;       /* Authorization: Bearer ...; copied into a header, never logged */
        const char *basic_user;   /* HTTP Basic credentials, or NULL */
        const char *basic_pass;
        uint64_t timeout_usec;    /* whole transfer; 0 = 30 s */
        size_t max_body;          /* answers longer than this fail with -EFBIG */
        bool connect_only;        /* resolve, connect and verify TLS, then stop: nothing is sent
                                   * (status 0 and error 0 mean the host is reachable) */
} HttpRequest;

typedef struct HttpResponse {
        long status;              /* 0 when the transfer failed */
        int error;                /* 0, or negative errno for a transport failure; -EKEYREJECTED
                                   * when the server's certificate is not trusted, -ENOKEY when
                                   * ca_file cannot be loaded */
        const char *error_text;   /* curl's description of the failure (naming ca_file for
                                   * -ENOKEY), or "" */
        const char *body;         /* NUL-terminated, may contain NULs */
        size_t body_len;
        const char *headers;      /* status line and headers as received (CRLF), NUL-terminated,
                                   * at most 16 KiB; "" when there was no answer */
        size_t headers_len;
        const char *retry_after;  /* the Retry-After header value, or NULL */
        const char *location;     /* where a 3xx points (never followed), or NULL */
} HttpResponse;

/* Called once per submitted request, from the loop; resp is valid only during the call. */
typedef void (*HttpDoneFn)(void *userdata, const HttpResponse *resp);

/* ca_file: an extra trust anchor besides the system store, or NULL. */
int http_engine_new(uv_loop_t *loop, const char *ca_file, HttpEngine **ret);
/* Cancels every transfer (their callbacks run with -ECANCELED), then closes the engine's handles;
 * the memory is released from the close callbacks, so run the loop afterwards. Accepts NULL. */
void http_engine_close(HttpEngine *e);
int http_submit(HttpEngine *e, const HttpRequest *req, HttpDoneFn done, void *userdata);
