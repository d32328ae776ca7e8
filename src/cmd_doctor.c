/* cmd_doctor.c: `nimbus-sync doctor [--raw] [USER_ID]`, the first command to run against a real
 * tenant. One line per check, ✓ or ✗ with the fix: the config; the credential files as the
 * service user reads them; DNS and TLS to the token and the API host; a token; whether the API
 * answers at the configured host, or else at the other one (admin./portal.); license usage; one
 * user. Read-only: one license-usage GET (two when the other host is tried) and at most one user
 * GET (and a 401 once more with a fresh token, as the tenant does), sent through the tenant so
 * that they keep the rate window. See nimbus-sync(8), doctor. */
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "credential.h"
#include "doctor.h"
#include "http.h"
#include "source_poll.h"
#include "tenant.h"
#include "util.h"

#define SERVICE_USER "nimbus-sync"    /* User= of the shipped unit */
#define CHILD_OUTPUT_MAX (16 * 1024)

typedef struct Doctor {
        Cli *cli;
        Logger quiet;           /* the tenant's own log lines would repeat ours */
        uv_loop_t loop;
        Tenant *tenant;
        HttpEngine *probe;      /* DNS and TLS checks; nothing is sent on them */
        Guid user;
        bool has_user;
        char *alt_api;          /* the other host's API base, while it is being tried */
        char *first_answer;     /* what the configured host said, when the other is tried */
        bool probing_api;       /* the DNS and TLS check of the API host, after the token host's */
        unsigned failed;
        bool finished;
} Doctor;

static void check_line(Doctor *d, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check_line(Doctor *d, bool ok, const char *fmt, ...) {
        va_list ap;

        fputs(ok ? "✓ " : "✗ ", stdout);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        if (!ok)
                d->failed++;
}

static void print_diag_lines(const Diag *diag) {
        for (size_t i = 0; i < diag->n; i++) {
                _cleanup_free_ char *line = NULL;

                if (diag_entry_format(&diag->entries[i], &line) >= 0)
                        printf("    %s\n", line);
        }
}

static void finish(Doctor *d) {
        if (d->finished)
                return;
        d->finished = true;
        tenant_close(d->tenant);
        http_engine_close(d->probe);
}

/* ---- config and credential files (before the loop) --------------------------------------- */

static int check_config(Doctor *d, Config **ret) {
        Diag diag = DIAG_INIT;
        int r = config_load(d->cli->config_path, ret, &diag);

        check_line(d, r >= 0, "config %s: %s", d->cli->config_path, r >= 0 ? "parses and validates" :
                   "fix these, then run doctor again:");
        print_diag_lines(&diag);
        diag_clear(&diag);
        return r;
}

/* The service user, copied out of getpwnam()'s static buffer. */
typedef struct ServiceUser {
        char name[64];
        uid_t uid;
        gid_t gid;
} ServiceUser;

/* A field of a child's line: no tab or newline inside. */
static void put_field(FILE *f, const char *s) {
        for (; s && *s; s++)
                fputc(*s == '\t' || *s == '\n' ? '?' : *s, f);
}

/* In a child that has become the service user, as systemd starts it: its supplementary groups
 * too. It reports one line per problem: "E" or "W", the file, the message, tab-separated. */
static _Noreturn void child_check(const ServiceUser *pw, const char *config_path, int fd) {
        Diag diag = DIAG_INIT;
        Config *c = NULL;
        FILE *f;

        if (initgroups(pw->name, pw->gid) < 0 || setgid(pw->gid) < 0 || setuid(pw->uid) < 0)
                _exit(2);
        /* systemd reads *_credential files as root: only plain files are the service user's. */
        if (config_load(config_path, &c, &diag) >= 0)
                (void) credential_check(c, CREDENTIAL_CHECK_STRICT | CREDENTIAL_CHECK_FILES_ONLY, &diag);
        f = fdopen(fd, "w");
        for (size_t i = 0; f && i < diag.n; i++) {
                fputs(diag.entries[i].level == DIAG_ERROR ? "E\t" : "W\t", f);
                put_field(f, diag.entries[i].file);
                fputc('\t', f);
                put_field(f, diag.entries[i].msg);
                fputc('\n', f);
        }
        config_free(c);
        diag_clear(&diag);
        _exit(f && fclose(f) == 0 ? 0 : 3);
}

static void read_all(int fd, char *buf, size_t size) {
        size_t len = 0;

        while (len + 1 < size) {
                ssize_t k = read(fd, buf + len, size - 1 - len);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        buf[len] = '\0';
}

static bool diag_contains(const Diag *diag, DiagLevel level, const char *file, const char *msg) {
        for (size_t i = 0; i < diag->n; i++)
                if (diag->entries[i].level == level && streq_ptr(diag->entries[i].file, file) &&
                    streq(diag->entries[i].msg, msg))
                        return true;
        return false;
}

/* The child's lines into diag, each once: what we found as ourselves is not repeated. */
static void add_child_lines(const ServiceUser *pw, char *buf, Diag *diag) {
        char *save = NULL;

        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *file = strchr(line, '\t'), *msg = file ? strchr(file + 1, '\t') : NULL;
                DiagLevel level = line[0] == 'E' ? DIAG_ERROR : DIAG_WARNING;

                if (!msg)
                        continue;
                *file++ = *msg++ = '\0';
                if (!diag_contains(diag, level, *file ? file : NULL, msg))
                        (void) diag_add(diag, level, *file ? file : NULL, 0, 0, "as %s: %s", pw->name, msg);
        }
}

static int check_as(const ServiceUser *pw, const char *config_path, Diag *diag) {
        char buf[CHILD_OUTPUT_MAX];
        int fds[2], status = 0;
        pid_t pid;

        fflush(NULL);
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return close(fds[0]), close(fds[1]), -errno;
        if (pid == 0) {
                close(fds[0]);
                child_check(pw, config_path, fds[1]);
        }
        close(fds[1]);
        read_all(fds[0], buf, sizeof buf);
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return diag_add(diag, DIAG_ERROR, NULL, 0, 0, "could not check as user %s", pw->name);
        add_child_lines(pw, buf, diag);
        return 0;
}

static const char *service_user(void) {
        const char *u = getenv("NIMBUS_SYNC_SERVICE_USER");

        return u && *u ? u : SERVICE_USER;
}

static bool service_user_find(ServiceUser *ret) {
        const struct passwd *pw = geteuid() == 0 ? getpwnam(service_user()) : NULL;

        if (!pw || strlen(pw->pw_name) >= sizeof ret->name)
                return false;
        strcpy(ret->name, pw->pw_name);
        ret->uid = pw->pw_uid;
        ret->gid = pw->pw_gid;
        return true;
}

static void check_credentials(Doctor *d, const Config *c) {
        Diag diag = DIAG_INIT;
        ServiceUser su;
        char who[128];

        /* As ourselves: what systemd reads as root for the service, and the modes. */
        (void) credential_check(c, CREDENTIAL_CHECK_STRICT, &diag);
        if (service_user_find(&su)) {
                (void) check_as(&su, d->cli->config_path, &diag);
                snprintf(who, sizeof who, "as user %s, the service user", su.name);
        } else {
                const struct passwd *me = getpwuid(geteuid());

                snprintf(who, sizeof who, "as user %s only, not as the service user %s (%s)",
                         me ? me->pw_name : "?", service_user(), geteuid() == 0 ? "it does not exist here" :
                         "run doctor as root for that");
        }
        if (diag.n_errors == 0)
                check_line(d, true, "credentials: %s readable %s; %s not readable by group or others",
                           c->client_certificate_file ? "certificate and key" : "client secret", who,
                           c->client_certificate_file ? "the key" : "the secret");
        else
                check_line(d, false, "credentials (checked %s): fix these:", who);
        print_diag_lines(&diag);
        diag_clear(&diag);
}

/* ---- DNS and TLS ------------------------------------------------------------------------- */

static void start_token(Doctor *d);

/* "scheme://host[:port]" of a URL: what api_url takes. */
static void url_origin(const char *url, char *buf, size_t size) {
        const char *p = strstr(url, "://");
        size_t n = p ? (size_t) (p + 3 - url) : 0;

        n += strcspn(url + n, "/?#");
        snprintf(buf, size, "%.*s", (int) n, url);
}

static void connect_done(Doctor *d, const char *url, const HttpResponse *resp) {
        const char *which = d->probing_api ? "API" : "token";
        char origin[256];

        url_origin(url, origin, sizeof origin);
        if (resp->error == 0)
                check_line(d, true, "%s host %s: %s", which, origin, strncmp(url, "https:", 6) == 0 ?
                           "DNS and TLS ok, certificate trusted" : "reachable (plain http to loopback)");
        else
                check_line(d, false, "%s host %s: %s; fix: %s", which, origin, resp->error_text,
                           doctor_transport_hint(resp->error));
}

static void on_connect(void *userdata, const HttpResponse *resp);

static int connect_to(Doctor *d, const char *url) {
        HttpRequest req = { .method = "GET", .url = url, .connect_only = true };

        return http_submit(d->probe, &req, on_connect, d);
}

/* The token host, then the API host; then the token, whatever they said: its own error is
 * the more precise one. */
static void on_connect(void *userdata, const HttpResponse *resp) {
        Doctor *d = userdata;
        const Config *c;
        int r;

        if (resp->error == -ECANCELED || d->finished)
                return;
        c = d->tenant->config;
        connect_done(d, d->probing_api ? c->api_base : c->token_url, resp);
        if (!d->probing_api) {
                d->probing_api = true;
                r = connect_to(d, c->api_base);
                if (r >= 0)
                        return;
                check_line(d, false, "API host: could not start the check: %s", strerror(-r));
        }
        start_token(d);
}

/* ---- the token --------------------------------------------------------------------------- */

static void ask_licenses(Doctor *d);

static void on_token(void *userdata, TokenStatus st, long status, const char *message) {
        Doctor *d = userdata;
        char code[32] = "";

        if (d->finished)
                return;
        if (st == TOKEN_OK) {
                check_line(d, true, "token: issued for scope %s", d->tenant->config->scope);
                ask_licenses(d);
                return;
        }
        if (status > 0)
                snprintf(code, sizeof code, " (HTTP %ld)", status);
        check_line(d, false, "token: %s%s: %s; fix: %s", status > 0 ? "refused" : "not issued", code, message,
                   st == TOKEN_REFUSED ? doctor_token_hint(message) :
                   "the token endpoint gave no usable answer: check the network path to it, try again");
        finish(d);
}

static void start_token(Doctor *d) {
        int r = nimbus_client_token_fetch(d->tenant->client, on_token, d);

        if (r < 0) {
                check_line(d, false, "token: could not ask for one: %s", strerror(-r));
                finish(d);
        }
}

/* ---- the API host and license usage ------------------------------------------------------ */

static void on_licenses(void *userdata, const NimbusResult *res);

static void ask_licenses(Doctor *d) {
        int r = tenant_call(d->tenant, PRIO_VERIFY, CALL_LICENSES, NULL, NULL, NULL, on_licenses, d);

        if (r < 0) {
                check_line(d, false, "API: could not send the request: %s", strerror(-r));
                finish(d);
        }
}

/* The configured host is not the API: ask the other one, with the same token. */
static bool try_other_host(Doctor *d, const NimbusResult *res) {
        char what[512];

        if (doctor_alternative_url(d->tenant->config->api_base, &d->alt_api) < 0)
                return false;
        doctor_answer_summary(res, what, sizeof what);
        if (strdup_checked(what, &d->first_answer) < 0 ||
            nimbus_client_set_api_base(d->tenant->client, d->alt_api) < 0) {
                d->alt_api = (free(d->alt_api), NULL);
                return false;
        }
        /* A redirect paused the tenant like a refusal: the other host gets its own chance. */
        tenant_forget_refusal(d->tenant);
        ask_licenses(d);
        return true;
}

static void report_other_host(Doctor *d, ApiVerdict v, const NimbusResult *res, const char *what) {
        const Config *c = d->tenant->config;
        _cleanup_free_ char *alt_scope = NULL;
        char origin[256];

        url_origin(d->alt_api, origin, sizeof origin);
        if (v == API_ANSWERS)
                check_line(d, false, "API: not at %s (%s) but at %s; fix: set api_url: %s (a token for the "
                           "configured scope is accepted there)", c->api_base, d->first_answer, d->alt_api, origin);
        else if (v == API_REFUSES && doctor_alternative_url(c->scope, &alt_scope) >= 0)
                check_line(d, false, "API: not at %s (%s) but at %s, which refuses a token for %s (%s); fix: "
                           "set api_url: %s and scope: %s; if it still refuses: %s", c->api_base,
                           d->first_answer, d->alt_api, c->scope, what, origin, alt_scope,
                           doctor_refusal_hint(res->http_status, res->message));
        else
                check_line(d, false, "API: no Nimbus API at %s (%s) nor at %s (%s); fix: check cluster (the "
                           "one the Nimbus Admin Portal redirects you to), or api_url and scope", c->api_base,
                           d->first_answer, d->alt_api, what);
}

static void report_api(Doctor *d, ApiVerdict v, const NimbusResult *res) {
        const char *at = d->tenant->config->api_base;
        char what[512];

        doctor_answer_summary(res, what, sizeof what);
        if (d->alt_api) {
                report_other_host(d, v, res, what);
                return;
        }
        if (v == API_ANSWERS)
                check_line(d, true, "API: answers at %s", at);
        else if (v == API_REFUSES)
                check_line(d, false, "API at %s refuses us: %s; fix: %s", at, what,
                           doctor_refusal_hint(res->http_status, res->message));
        else if (v == API_ABSENT)
                check_line(d, false, "API: no Nimbus API at %s (%s); fix: check cluster (the one the Nimbus "
                           "Admin Portal redirects you to), or api_url", at, what);
        else
                check_line(d, false, "API at %s: %s; fix: %s", at, what, v == API_UNTRUSTED ?
                           doctor_transport_hint(res->error) : "try again later; if it lasts, check the proxy");
}

static void check_licenses(Doctor *d, const NimbusResult *res) {
        ShapeReport shape = { 0 };
        NimbusLicense *l = NULL;
        size_t n = 0;

        if (nimbus_parse_licenses(res->body, res->body_len, &l, &n) < 0 ||
            doctor_license_shape(res->body, res->body_len, &shape) < 0) {
                check_line(d, false, "license usage: the answer is not a license list; fix: report it with "
                           "the output of nimbus-sync doctor --raw");
                nimbus_licenses_free(l, n);
                return;
        }
        if (shape.missing)
                check_line(d, false, "license usage: the answer has no %s, so running out of licenses cannot "
                           "be recognised; fix: report it with the output of nimbus-sync doctor --raw",
                           shape.missing);
        else
                check_line(d, true, "license usage: %zu pool%s", n, n == 1 ? "" : "s");
        cli_print_licenses(l, n, "    ");
        for (size_t i = 0; i < n; i++)
                if (l[i].available == 0)
                        printf("    %s: no licenses left; creates and copies will wait for free ones\n",
                               l[i].name ? l[i].name : "(no name)");
        if (shape.unexpected)
                printf("    fields not expected (ignored): %s\n", shape.unexpected);
        shape_report_clear(&shape);
        nimbus_licenses_free(l, n);
}

/* ---- one user ---------------------------------------------------------------------------- */

static void check_user(Doctor *d, const char *id, const NimbusResult *res) {
        ShapeReport shape = { 0 };
        NimbusUser u = { 0 };
        char ou[GUID_STRING_MAX];

        if (nimbus_parse_user(res->body, res->body_len, &u) < 0 ||
            doctor_user_shape(res->body, res->body_len, &shape) < 0)
                check_line(d, false, "user %s: the answer is not a user object; fix: report it with the "
                           "output of nimbus-sync doctor --raw", id);
        else if (shape.missing)
                check_line(d, false, "user %s: the answer has no %s, which drift detection and the delete "
                           "checks read; fix: report it with the output of nimbus-sync doctor --raw", id,
                           shape.missing);
        else
                check_line(d, true, "user %s: OU %s, %s, licenses: %s", id,
                           guid_is_null(&u.ou) ? "unknown" : guid_format(&u.ou, ou),
                           u.assignment_type[0] ? u.assignment_type : "assignment type unknown",
                           u.licenses ? u.licenses : "none listed");
        if (shape.unexpected)
                printf("    fields not expected (ignored): %s\n", shape.unexpected);
        shape_report_clear(&shape);
        nimbus_user_clear(&u);
}

static void on_user(void *userdata, const NimbusResult *res) {
        Doctor *d = userdata;
        char id[GUID_STRING_MAX], what[512];

        if (d->finished || res->error == -ECANCELED)
                return;
        guid_format(&d->user, id);
        doctor_answer_summary(res, what, sizeof what);
        if (res->http_status == 404)
                check_line(d, false, "user %s: not a Nimbus user (%s); fix: check the O365 ID (the user's "
                           "Entra object id), or provision the user first", id, what);
        else if (res->http_status == 400 || res->http_status == 403)
                check_line(d, false, "user %s: %s; fix: check the O365 ID (the user's Entra object id); "
                           "nimbus-sync takes only a 404 for \"not a Nimbus user\": if this user does not "
                           "exist, report this answer (nimbus-sync doctor --raw)", id, what);
        else if (doctor_api_verdict(res->http_status, res->error, res->body, res->body_len) != API_ANSWERS)
                check_line(d, false, "user %s: %s", id, what);
        else
                check_user(d, id, res);
        finish(d);
}

static bool start_user(Doctor *d) {
        if (!d->has_user)
                return false;
        if (tenant_call(d->tenant, PRIO_VERIFY, CALL_GET_USER, &d->user, NULL, NULL, on_user, d) < 0) {
                check_line(d, false, "user: could not send the request");
                return false;
        }
        return true;
}

static void on_licenses(void *userdata, const NimbusResult *res) {
        Doctor *d = userdata;
        ApiVerdict v;

        if (d->finished || res->error == -ECANCELED)
                return;
        v = doctor_api_verdict(res->http_status, res->error, res->body, res->body_len);
        if (v == API_ABSENT && !d->alt_api && try_other_host(d, res))
                return;
        report_api(d, v, res);
        if (v == API_ANSWERS) {
                check_licenses(d, res);
                if (start_user(d))
                        return;
        }
        finish(d);
}

/* ---- the command ------------------------------------------------------------------------- */

static int parse_user(Doctor *d) {
        Cli *cli = d->cli;

        if (cli->n_args > 1) {
                fprintf(stderr, "Usage: nimbus-sync doctor [--raw] [USER_ID]\n");
                return -EINVAL;
        }
        d->has_user = cli->n_args == 1;
        if (d->has_user && guid_parse(cli->args[0], strlen(cli->args[0]), &d->user) < 0) {
                fprintf(stderr, "error: \"%s\" is not an O365 ID (a GUID)\n", cli->args[0]);
                return -EINVAL;
        }
        return 0;
}

/* ---- Entra groups (sources:): each read once, as validate --online does ------------------- */

static void check_sources(Doctor *d, const Config *c) {
        SourceSet *set = NULL;
        Diag diag = DIAG_INIT;
        char id[GUID_STRING_MAX], line[1024];

        if (c->n_sources == 0)
                return;
        if (source_set_new(c, &set) < 0 || source_refresh(set, NULL, &d->quiet, &diag) < 0) {
                check_line(d, false, "Entra groups: cannot read them; fix these first:");
                print_diag_lines(&diag);
        }
        for (size_t i = 0; set && !diag.n_errors && i < set->n; i++) {
                const Source *src = &set->sources[i];

                guid_format(&src->config->group, id);
                source_describe(src, line, sizeof(line));
                if (src->error)
                        check_line(d, false, "entra group %s: %s", id, src->error);
                else
                        check_line(d, true, "%s", line);
        }
        diag_clear(&diag);
        source_set_free(set);
}

/* Takes c. On failure the ✗ line is printed and what was started is closed. */
static int start_network(Doctor *d, Config *c) {
        Diag diag = DIAG_INIT;
        int r;

        r = tenant_new(&d->loop, c, &d->quiet, &d->tenant, &diag);
        if (r < 0) {
                check_line(d, false, "cannot go on to the network checks; fix these first:");
                print_diag_lines(&diag);
                diag_clear(&diag);
                return r;
        }
        diag_clear(&diag);
        d->tenant->give_up_on_auth = true;
        if (d->cli->raw)
                nimbus_client_set_raw(d->tenant->client, cli_print_raw, NULL);
        r = http_engine_new(&d->loop, d->tenant->config->ca_file, &d->probe);
        if (r >= 0)
                r = connect_to(d, d->tenant->config->token_url);
        if (r < 0) {
                check_line(d, false, "cannot start the network checks: %s", strerror(-r));
                finish(d);
        }
        return r;
}

int cmd_doctor(Cli *cli) {
        Doctor d = { .cli = cli };
        Config *c = NULL;

        if (parse_user(&d) < 0)
                return EXIT_ERROR;
        log_init(&d.quiet, LOG_TARGET_STDERR, LOG_EMERG);
        if (check_config(&d, &c) < 0)
                return EXIT_ERROR;
        check_credentials(&d, c);   /* before the loop: it may fork */
        check_sources(&d, c);
        if (uv_loop_init(&d.loop) < 0) {
                config_free(c);
                return EXIT_ERROR;
        }
        (void) start_network(&d, c);
        (void) uv_run(&d.loop, UV_RUN_DEFAULT);
        (void) uv_loop_close(&d.loop);
        free(d.alt_api);
        free(d.first_answer);
        if (d.failed)
                printf("%u check%s failed: fix %s, then run nimbus-sync doctor again.\n", d.failed,
                       d.failed == 1 ? "" : "s", d.failed == 1 ? "it" : "them");
        else
                printf("All checks passed.\n");
        return d.failed ? EXIT_ERROR : EXIT_OK;
}
