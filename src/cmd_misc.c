/* cmd_misc.c: `licenses` and `user show`: single read-only API calls, each through the tenant so
 * that they respect the rate window and the token handling like everything else. With --raw they
 * print the answer as it came (secrets redacted) instead of reading it. */
#include <json-c/json.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "doctor.h"
#include "tenant.h"
#include "util.h"

typedef struct OneCall {
        Cli *cli;
        Tenant *tenant;
        Guid id;
        int result;
        void (*show)(struct OneCall *oc, const NimbusResult *res);
} OneCall;

void cli_print_raw(void *userdata, const NimbusRaw *raw) {
        _cleanup_free_ char *text = NULL;

        if (doctor_format_raw(raw, &text) < 0)
                fprintf(stderr, "error: out of memory\n");
        else
                fputs(text, stdout);
        fflush(stdout);
}

/* The call's answer only: how the token was obtained is doctor's business. */
static void print_call_raw(void *userdata, const NimbusRaw *raw) {
        if (!streq(raw->what, "token"))
                cli_print_raw(userdata, raw);
}

static void one_call_done(void *userdata, const NimbusResult *res) {
        OneCall *oc = userdata;

        if (res->outcome == OUTCOME_OK && oc->cli->raw)
                oc->result = EXIT_OK;
        else if (res->outcome == OUTCOME_OK)
                oc->show(oc, res);
        else if (res->outcome == OUTCOME_GONE && res->call == CALL_GET_USER) {
                char id[GUID_STRING_MAX];

                fprintf(stderr, "%s is not a Nimbus user\n", guid_format(&oc->id, id));
                oc->result = EXIT_NOT_USER;
        } else if (res->error != -ECANCELED) {
                fprintf(stderr, "error: %s%s%s\n", nimbus_call_name(res->call),
                        res->http_status ? " failed: " : ": ", res->message);
                oc->result = EXIT_ERROR;
        }
        tenant_close(oc->tenant);
}

/* One call on a loop of its own; the tenant takes the config. */
static int one_call(OneCall *oc, NimbusCall call) {
        Config *c = NULL;
        Diag d = DIAG_INIT;
        uv_loop_t loop;
        int k;

        if (cli_load_config(oc->cli, &c) < 0 || uv_loop_init(&loop) < 0) {
                config_free(c);
                return EXIT_ERROR;
        }
        oc->result = EXIT_ERROR;
        k = tenant_new(&loop, c, &oc->cli->log, &oc->tenant, &d);
        log_diag(&oc->cli->log, &d, NULL);
        diag_clear(&d);
        if (k >= 0) {
                oc->tenant->give_up_on_auth = true;
                if (oc->cli->raw)
                        nimbus_client_set_raw(oc->tenant->client, print_call_raw, NULL);
                if (tenant_call(oc->tenant, PRIO_MUTATION, call, &oc->id, NULL, NULL, one_call_done, oc) < 0)
                        tenant_close(oc->tenant);
                (void) uv_run(&loop, UV_RUN_DEFAULT);
        }
        (void) uv_loop_close(&loop);
        return oc->result;
}

static void print_count(int64_t v) {
        if (v < 0)
                printf(" %10s", "?");
        else
                printf(" %10" PRId64, v);
}

void cli_print_licenses(const NimbusLicense *l, size_t n, const char *indent) {
        printf("%s%-32s %10s %10s %10s\n", indent, "LICENSE", "TOTAL", "USED", "AVAILABLE");
        for (size_t i = 0; i < n; i++) {
                printf("%s%-32.32s", indent, l[i].name ? l[i].name : "");
                print_count(l[i].total);
                print_count(l[i].used);
                print_count(l[i].available);
                putchar('\n');
        }
}

static void show_licenses(OneCall *oc, const NimbusResult *res) {
        NimbusLicense *l = NULL;
        size_t n = 0;

        if (nimbus_parse_licenses(res->body, res->body_len, &l, &n) < 0) {
                fprintf(stderr, "error: licenses: the answer is not a license list\n");
                return;
        }
        if (oc->cli->json) {
                json_object *arr = json_object_new_array();

                for (size_t i = 0; i < n; i++) {
                        json_object *o = json_object_new_object();

                        json_object_object_add(o, "name", json_object_new_string(l[i].name ? l[i].name : ""));
                        json_object_object_add(o, "total", l[i].total < 0 ? NULL : json_object_new_int64(l[i].total));
                        json_object_object_add(o, "used", l[i].used < 0 ? NULL : json_object_new_int64(l[i].used));
                        json_object_object_add(o, "available", l[i].available < 0 ? NULL : json_object_new_int64(l[i].available));
                        json_object_array_add(arr, o);
                }
                printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY));
                json_object_put(arr);
        } else
                cli_print_licenses(l, n, "");
        nimbus_licenses_free(l, n);
        oc->result = EXIT_OK;
}

int cmd_licenses(Cli *cli) {
        OneCall oc = { .cli = cli, .show = show_licenses };

        return one_call(&oc, CALL_LICENSES);
}

static void show_user(OneCall *oc, const NimbusResult *res) {
        char id[GUID_STRING_MAX], ou[GUID_STRING_MAX];
        NimbusUser u = { 0 };

        if (nimbus_parse_user(res->body, res->body_len, &u) < 0) {
                fprintf(stderr, "error: user show: the answer is not a user object\n");
                return;
        }
        if (oc->cli->json) {
                json_object *o = json_object_new_object();

                json_object_object_add(o, "o365_id", json_object_new_string(guid_format(&oc->id, id)));
                json_object_object_add(o, "ou", guid_is_null(&u.ou) ? NULL : json_object_new_string(guid_format(&u.ou, ou)));
                json_object_object_add(o, "assignment_type", u.assignment_type[0] ? json_object_new_string(u.assignment_type) : NULL);
                json_object_object_add(o, "licenses", u.licenses ? json_object_new_string(u.licenses) : NULL);
                printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
                json_object_put(o);
        } else {
                printf("O365 ID:           %s\n", guid_format(&oc->id, id));
                printf("Organization unit: %s\n", guid_is_null(&u.ou) ? "unknown" : guid_format(&u.ou, ou));
                printf("Assignment type:   %s\n", u.assignment_type[0] ? u.assignment_type : "unknown");
                printf("Licenses:          %s\n", u.licenses ? u.licenses : "none listed");
        }
        nimbus_user_clear(&u);
        oc->result = EXIT_OK;
}

int cmd_user(Cli *cli) {
        OneCall oc = { .cli = cli, .show = show_user };

        if (cli->n_args != 2 || !streq(cli->args[0], "show")) {
                fprintf(stderr, "Usage: nimbus-sync user show ID [--json] [--raw]\n");
                return EXIT_ERROR;
        }
        if (guid_parse(cli->args[1], strlen(cli->args[1]), &oc.id) < 0) {
                fprintf(stderr, "error: \"%s\" is not an O365 ID (a GUID)\n", cli->args[1]);
                return EXIT_ERROR;
        }
        return one_call(&oc, CALL_GET_USER);
}
