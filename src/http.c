/* http.c: libcurl multi on libuv. curl tells us which sockets to watch (socket callback) and
 * when to call it back (timer callback); libuv tells curl when a socket is ready. Every libuv and
 * libcurl return code is checked: a failure fails the transfer it belongs to, never the process. */
#include "http.h"

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

#define DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CONNECT_TIMEOUT_MS 10000L
#define MAX_HEADER_VALUE 256
#define MAX_HEADERS (16 * 1024)   /* the header block kept for --raw; the rest is cut */

struct HttpEngine {
        uv_loop_t *loop;
        CURLM *multi;
        uv_timer_t timer;
        char *ca_file;
        size_t open_handles;     /* uv handles not yet closed: the engine is freed at 0 */
        struct Transfer *transfers; /* every transfer in flight, to cancel them on close */
        struct SocketWatch *watches;/* every socket watched, to close them on close */
        bool dispatching;        /* inside check_done(): closing must wait until it returns */
        bool close_requested;
        bool closed;
};

typedef struct Transfer {
        HttpEngine *engine;
        struct Transfer *prev, *next;
        CURL *easy;
        struct curl_slist *headers;
        char *req_body;
        char *body;
        size_t body_len, body_cap, max_body;
        char *answer_headers;    /* the answer's status line and headers, as they came */
        size_t headers_len, headers_cap;
        char retry_after[MAX_HEADER_VALUE];
        bool has_retry_after;
        bool too_large;
        char errbuf[CURL_ERROR_SIZE];
        char ca_error[CURL_ERROR_SIZE]; /* why ca_file could not be loaded */
        HttpDoneFn done;
        void *userdata;
} Transfer;

/* One per socket curl asks us to watch; poll.data points back here. */
typedef struct SocketWatch {
        uv_poll_t poll;
        HttpEngine *engine;
        struct SocketWatch *prev, *next;
} SocketWatch;

/* Intrusive doubly linked lists: O(1) removal without a search. */
#define LIST_PREPEND(head, item)                        \
        do {                                            \
                (item)->prev = NULL;                    \
                (item)->next = (head);                  \
                if (head)                               \
                        (head)->prev = (item);          \
                (head) = (item);                        \
        } while (0)
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                if ((item)->prev)                               \
                        (item)->prev->next = (item)->next;      \
                else                                            \
                        (head) = (item)->next;                  \
                if ((item)->next)                               \
                        (item)->next->prev = (item)->prev;      \
                (item)->prev = (item)->next = NULL;             \
        } while (0)

static void check_done(HttpEngine *e);
static void engine_close_now(HttpEngine *e);

static void engine_maybe_free(HttpEngine *e) {
        if (!e->closed || e->open_handles > 0)
                return;
        free(e->ca_file);
        free(e);
}

static void poll_closed(uv_handle_t *h) {
        SocketWatch *w = h->data;
        HttpEngine *e = w->engine;

        LIST_REMOVE(e->watches, w);
        free(w);
        e->open_handles--;
        engine_maybe_free(e);
}

static void timer_closed(uv_handle_t *h) {
        HttpEngine *e = h->data;

        e->open_handles--;
        engine_maybe_free(e);
}

static int curl_to_errno(CURLcode c) {
        switch (c) {
        case CURLE_OK:                   return 0;
        case CURLE_ABORTED_BY_CALLBACK:  return -ECANCELED;
        case CURLE_OPERATION_TIMEDOUT:   return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:      return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY: return -EHOSTUNREACH;
        case CURLE_OUT_OF_MEMORY:        return -ENOMEM;
        case CURLE_WRITE_ERROR:
        case CURLE_FILESIZE_EXCEEDED:    return -EFBIG;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:         return -ECONNRESET;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:   return -EKEYREJECTED;  /* not trusted: needs an admin */
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:      return -EPROTO;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:        return -EINVAL;
        default:                         return -EIO;
        }
}

static void transfer_free(Transfer *t) {
        if (!t)
                return;
        if (t->easy)
                curl_easy_cleanup(t->easy);
        /* The Authorization header holds a token, a token request's body a client assertion. */
        for (struct curl_slist *h = t->headers; h; h = h->next)
                erase_string(h->data);
        curl_slist_free_all(t->headers);
        erase_and_free(t->req_body);
        free(t->body);
        free(t->answer_headers);
        free(t);
}

/* Hand the result to the owner, then forget the transfer. */
static void transfer_finish(Transfer *t, CURLcode code) {
        HttpResponse r = { .error_text = "" };
        long status = 0;

        if (code == CURLE_OK)
                (void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        r.status = status;
        r.error = code == CURLE_OK ? 0 : t->too_large ? -EFBIG : t->ca_error[0] ? -ENOKEY : curl_to_errno(code);
        if (code != CURLE_OK)
                r.error_text = t->too_large ? "answer too large" : t->ca_error[0] ? t->ca_error :
                               t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
        r.body = t->body ? t->body : "";
        r.body_len = t->body_len;
        r.headers = t->answer_headers ? t->answer_headers : "";
        r.headers_len = t->headers_len;
        r.retry_after = t->has_retry_after ? t->retry_after : NULL;
        if (status >= 300 && status < 400)
                (void) curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &r.location);
        LIST_REMOVE(t->engine->transfers, t);
        t->done(t->userdata, &r);
        transfer_free(t);
}

static void check_done(HttpEngine *e) {
        CURLMsg *msg;
        int pending;

        e->dispatching = true;
        while (!e->close_requested && (msg = curl_multi_info_read(e->multi, &pending))) {
                Transfer *t = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
                CURLcode code = msg->data.result;
                (void) curl_multi_remove_handle(e->multi, t->easy);
                transfer_finish(t, code);
        }
        e->dispatching = false;
        if (e->close_requested)
                engine_close_now(e);
}

/* A socket action that fails leaves curl's transfers to time out on their own timers; there is
 * nothing better to do here, and nothing worse than a retry will come of it. */
static void socket_action(HttpEngine *e, curl_socket_t fd, int flags) {
        int running;

        (void) curl_multi_socket_action(e->multi, fd, flags, &running);
        check_done(e);
}

static void on_poll(uv_poll_t *p, int status, int events) {
        SocketWatch *w = p->data;
        int flags = 0;
        uv_os_fd_t fd;

        if (status < 0)
                flags = CURL_CSELECT_ERR;
        if (events & UV_READABLE)
                flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
                flags |= CURL_CSELECT_OUT;
        if (uv_fileno((uv_handle_t *) p, &fd) < 0)
                return;
        socket_action(w->engine, (curl_socket_t) fd, flags);
}

static void on_timer(uv_timer_t *t) {
        socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        HttpEngine *e = userp;

        if (timeout_ms < 0)
                return uv_timer_stop(&e->timer) < 0 ? -1 : 0;
        /* 0 means "as soon as possible": the next loop iteration, not from inside curl. */
        return uv_timer_start(&e->timer, on_timer, (uint64_t) timeout_ms, 0) < 0 ? -1 : 0;
}

static int watch_new(HttpEngine *e, curl_socket_t fd, SocketWatch **ret) {
        SocketWatch *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        if (uv_poll_init_socket(e->loop, &w->poll, fd) < 0) {
                free(w);
                return -EIO;
        }
        w->engine = e;
        w->poll.data = w;
        e->open_handles++;
        LIST_PREPEND(e->watches, w);
        if (curl_multi_assign(e->multi, fd, w) != CURLM_OK) {
                uv_close((uv_handle_t *) &w->poll, poll_closed);
                return -EIO;
        }
        *ret = w;
        return 0;
}

static int curl_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpEngine *e = userp;
        SocketWatch *w = socketp;
        int events = 0;

        if (what == CURL_POLL_REMOVE) {
                if (w && !uv_is_closing((uv_handle_t *) &w->poll)) {
                        (void) uv_poll_stop(&w->poll);
                        uv_close((uv_handle_t *) &w->poll, poll_closed);
                }
                return 0;
        }
        if (!w && watch_new(e, fd, &w) < 0)
                return -1;   /* curl fails the transfers on this socket */
        if (what & CURL_POLL_IN)
                events |= UV_READABLE;
        if (what & CURL_POLL_OUT)
                events |= UV_WRITABLE;
        return uv_poll_start(&w->poll, events, on_poll) < 0 ? -1 : 0;
}

int http_engine_new(uv_loop_t *loop, const char *ca_file, HttpEngine **ret) {
        HttpEngine *e = calloc(1, sizeof(*e));

        if (!e)
                return -ENOMEM;
        e->loop = loop;
        if (ca_file && !(e->ca_file = strdup(ca_file)))
                goto fail;
        e->multi = curl_multi_init();
        if (!e->multi)
                goto fail;
        if (uv_timer_init(loop, &e->timer) < 0)
                goto fail;
        e->timer.data = e;
        e->open_handles = 1;
        if (curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb) != CURLM_OK ||
            curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e) != CURLM_OK) {
                http_engine_close(e);
                return -EIO;
        }
        *ret = e;
        return 0;
fail:
        if (e->multi)
                curl_multi_cleanup(e->multi);
        free(e->ca_file);
        free(e);
        return -ENOMEM;
}

static void engine_close_now(HttpEngine *e) {
        /* Cancel what is still running; each owner hears -ECANCELED once. */
        while (e->transfers) {
                Transfer *t = e->transfers;

                (void) curl_multi_remove_handle(e->multi, t->easy);
                t->too_large = false;
                transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
        }
        curl_multi_cleanup(e->multi);
        e->multi = NULL;
        e->closed = true;
        /* curl may not report every socket of its connection cache as removed: close the rest. */
        for (SocketWatch *w = e->watches; w; w = w->next)
                if (!uv_is_closing((uv_handle_t *) &w->poll)) {
                        (void) uv_poll_stop(&w->poll);
                        uv_close((uv_handle_t *) &w->poll, poll_closed);
                }
        (void) uv_timer_stop(&e->timer);
        uv_close((uv_handle_t *) &e->timer, timer_closed);
}

void http_engine_close(HttpEngine *e) {
        if (!e || e->close_requested || e->closed)
                return;
        e->close_requested = true;
        if (!e->dispatching)
                engine_close_now(e);
}

static size_t on_write(char *data, size_t size, size_t n, void *userp) {
        Transfer *t = userp;
        size_t len = size * n;

        if (len > t->max_body - t->body_len) {
                t->too_large = true;
                return 0;   /* curl fails the transfer with CURLE_WRITE_ERROR */
        }
        if (t->body_len + len + 1 > t->body_cap) {
                size_t cap = t->body_cap ? t->body_cap : 4096;
                char *b;

                while (cap < t->body_len + len + 1)
                        cap *= 2;
                b = realloc(t->body, cap);
                if (!b)
                        return 0;
                t->body = b;
                t->body_cap = cap;
        }
        memcpy(t->body + t->body_len, data, len);
        t->body_len += len;
        t->body[t->body_len] = 0;
        return len;
}

/* The whole block, for --raw. A status line starts the block of a new answer: what a proxy said
 * to CONNECT, or a 100 Continue, is not the answer. */
static void keep_header(Transfer *t, const char *data, size_t len) {
        size_t cap;
        char *b;

        if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
                t->headers_len = 0;
        if (len > MAX_HEADERS - t->headers_len)
                return;
        if (t->headers_len + len + 1 > t->headers_cap) {
                cap = t->headers_len + len + 1 < 1024 ? 1024 : MAX_HEADERS + 1;
                b = realloc(t->answer_headers, cap);
                if (!b)
                        return;   /* --raw shows fewer headers; the transfer goes on */
                t->answer_headers = b;
                t->headers_cap = cap;
        }
        memcpy(t->answer_headers + t->headers_len, data, len);
        t->headers_len += len;
        t->answer_headers[t->headers_len] = '\0';
}

/* Keep the block, and the one header we act on: Retry-After. */
static size_t on_header(char *data, size_t size, size_t n, void *userp) {
        static const char name[] = "retry-after:";
        Transfer *t = userp;
        size_t len = size * n, k;

        keep_header(t, data, len);
        if (len <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) != 0)
                return len;
        data += sizeof(name) - 1;
        len -= sizeof(name) - 1;
        while (len > 0 && (*data == ' ' || *data == '\t'))
                data++, len--;
        while (len > 0 && (data[len - 1] == '\r' || data[len - 1] == '\n' || data[len - 1] == ' '))
                len--;
        k = len < sizeof(t->retry_after) - 1 ? len : sizeof(t->retry_after) - 1;
        memcpy(t->retry_after, data, k);
        t->retry_after[k] = 0;
        t->has_retry_after = true;
        return size * n;
}

/* The errno of the first system error in OpenSSL's queue (0 if none), emptying the queue. */
static int openssl_errno(void) {
        unsigned long e;
        int r = 0;

        while ((e = ERR_get_error()) != 0)
                if (r == 0 && ERR_GET_LIB(e) == ERR_LIB_SYS)
                        r = ERR_GET_REASON(e);
        return r;
}

/* The configured CA is added to the system's trust store, not put in its place. A file that
 * cannot be loaded is named: curl would only say that the callback failed. */
static CURLcode add_trust_anchor(CURL *easy, void *ssl_ctx, void *userp) {
        Transfer *t = userp;
        X509_STORE *store = SSL_CTX_get_cert_store(ssl_ctx);
        int r;

        if (X509_STORE_load_file(store, t->engine->ca_file) == 1)
                return CURLE_OK;
        r = openssl_errno();
        snprintf(t->ca_error, sizeof t->ca_error, "cannot load ca_file %s: %s", t->engine->ca_file,
                 r ? strerror(r) : "no PEM certificate in it");
        return CURLE_SSL_CACERT_BADFILE;
}

/* Append "name: value"; value NULL gives "name:", which tells curl to drop that header. */
static int add_header(struct curl_slist **list, const char *name, const char *value) {
        _cleanup_free_ char *h = NULL;
        struct curl_slist *l;

        if (asprintf(&h, "%s:%s%s", name, value ? " " : "", value ? value : "") < 0)
                return -ENOMEM;
        l = curl_slist_append(*list, h);
        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

static int transfer_headers(Transfer *t, const HttpRequest *req) {
        _cleanup_erase_ char *auth = NULL;   /* "Bearer <token>" */
        int r = 0;

        r = r ?: add_header(&t->headers, "Accept", "application/json");
        r = r ?: add_header(&t->headers, "Expect", NULL);
        if (req->body)
                r = r ?: add_header(&t->headers, "Content-Type",
                                    req->content_type ? req->content_type : "application/json");
        if (req->bearer) {
                if (asprintf(&auth, "Bearer %s", req->bearer) < 0)
                        return -ENOMEM;
                r = r ?: add_header(&t->headers, "Authorization", auth);
        }
        return r;
}

static int transfer_setup(Transfer *t, const HttpRequest *req) {
        HttpEngine *e = t->engine;
        uint64_t timeout = req->timeout_usec ? req->timeout_usec : DEFAULT_TIMEOUT_USEC;
        CURLcode c = CURLE_OK;
        CURL *h = t->easy;

#define SET(opt, val) do { if (c == CURLE_OK) c = curl_easy_setopt(h, opt, val); } while (0)
        SET(CURLOPT_URL, req->url);
        SET(CURLOPT_PRIVATE, t);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_TIMEOUT_MS, (long) (timeout / USEC_PER_MSEC));
        SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        SET(CURLOPT_USERAGENT, "nimbus-sync/" NIMBUS_SYNC_VERSION);
        SET(CURLOPT_ERRORBUFFER, t->errbuf);
        SET(CURLOPT_WRITEFUNCTION, on_write);
        SET(CURLOPT_WRITEDATA, t);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, t);
        SET(CURLOPT_HTTPHEADER, t->headers);
        if (e->ca_file) {
                SET(CURLOPT_SSL_CTX_FUNCTION, add_trust_anchor);
                SET(CURLOPT_SSL_CTX_DATA, t);
        }
        if (req->basic_user) {
                SET(CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                SET(CURLOPT_USERNAME, req->basic_user);
                SET(CURLOPT_PASSWORD, req->basic_pass ? req->basic_pass : "");
        }
        if (req->connect_only)
                SET(CURLOPT_CONNECT_ONLY, 1L);
        if (!streq(req->method, "GET") && !streq(req->method, "POST"))
                SET(CURLOPT_CUSTOMREQUEST, req->method);
        /* curl silently re-sends a request whose reused connection closes without an answer.
         * A create the server already carried out would then come back 409 and be taken for a
         * user we never made; on a connection of its own a lost answer is reported to us. */
        if (!streq(req->method, "GET")) {
                SET(CURLOPT_FRESH_CONNECT, 1L);
                SET(CURLOPT_FORBID_REUSE, 1L);
        }
        if (t->req_body) {
                SET(CURLOPT_POSTFIELDSIZE, (long) strlen(t->req_body));
                SET(CURLOPT_POSTFIELDS, t->req_body);
        } else if (streq(req->method, "POST"))
                SET(CURLOPT_POSTFIELDS, "");
#undef SET
        return c == CURLE_OK ? 0 : curl_to_errno(c);
}

int http_submit(HttpEngine *e, const HttpRequest *req, HttpDoneFn done, void *userdata) {
        Transfer *t;
        int r;

        if (e->close_requested || e->closed)
                return -ESHUTDOWN;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->engine = e;
        t->done = done;
        t->userdata = userdata;
        t->max_body = req->max_body ? req->max_body : 1024 * 1024;
        t->easy = curl_easy_init();
        if (!t->easy || (req->body && !(t->req_body = strdup(req->body)))) {
                r = -ENOMEM;
                goto fail;
        }
        r = transfer_headers(t, req);
        if (r >= 0)
                r = transfer_setup(t, req);
        if (r < 0)
                goto fail;
        if (curl_multi_add_handle(e->multi, t->easy) != CURLM_OK) {
                r = -EIO;
                goto fail;
        }
        LIST_PREPEND(e->transfers, t);
        return 0;
fail:
        transfer_free(t);
        return r;
}
