/* cli.h: the command line of nimbus-sync(8), COMMANDS: global options, subcommands, exit codes, and
 * the steps every command shares (loading the config and the roster with their diagnostics
 * printed). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "nimbus_client.h"
#include "roster.h"

enum {
        EXIT_OK = 0,
        EXIT_ERROR = 1,     /* could not run, invalid input, nothing held (approve-deletes) */
        EXIT_PENDING = 2,   /* apply: something remains; plan: there are changes */
        EXIT_NOT_USER = 3,  /* user show: not a Nimbus user */
};

typedef struct Cli {
        const char *config_path;
        const char *command;
        char **args;        /* the command's operands */
        int n_args;
        const char *user;   /* apply --user ID: provision one user now */
        bool json;
        bool refresh;
        bool raw;           /* doctor, licenses, user show: print each answer as it came */
        bool all;           /* status --all: every instance configured next to the config */
        bool check;         /* status --check: a monitoring verdict, its level the exit status */
        bool dry_run;       /* approve-deletes --dry-run: list what would be approved */
        bool only, except;  /* approve-deletes --only/--except: the IDs are the operands */
        bool online;        /* validate --online: read each Entra group once */
        unsigned options;   /* the options given, one bit each (cli.c) */
        Logger log;
        sigset_t saved_mask;   /* the signal mask we were started with */
} Cli;

int cli_main(int argc, char **argv);

/* The signals the daemon handles (SIGHUP, SIGTERM, SIGINT, and the hand-off's wake-up) are
 * blocked from the first thing cli_main() does: one that comes before the daemon's handlers exist
 * waits for them instead of killing the process. Other commands get the mask they were started
 * with back before they run. */
void cli_signals_block(sigset_t *ret_old);
/* The daemon, once its handlers are in place: what was held back is delivered to them now. */
void cli_signals_unblock(void);

/* Shared steps; each prints its own diagnostics and returns a negative errno on failure. */
int cli_load_config(Cli *cli, Config **ret);
/* What the config names and only use would find broken: the secret or key (missing, unreadable,
 * readable by others), the certificate, ca_file. Checked as the calling user. */
int cli_check_config_files(Cli *cli, const Config *c);
int cli_load_roster(Cli *cli, const Config *c, Roster **ret);

int cmd_daemon(Cli *cli);
int cmd_validate(Cli *cli);
int cmd_plan(Cli *cli);
int cmd_apply(Cli *cli);
int cmd_status(Cli *cli);
int cmd_approve_deletes(Cli *cli);
int cmd_licenses(Cli *cli);
int cmd_user(Cli *cli);
int cmd_doctor(Cli *cli);

/* The license usage table of `licenses`, each line starting with indent. */
void cli_print_licenses(const NimbusLicense *l, size_t n, const char *indent);
/* --raw: print one answer as it came, its secrets redacted (a NimbusRawFn; userdata unused). */
void cli_print_raw(void *userdata, const NimbusRaw *raw);
