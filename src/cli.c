/* cli.c: argument parsing and dispatch to the commands. -c/--config may stand before or after the
 * subcommand; $NIMBUS_SYNC_CONFIG is the default's override. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "credential.h"
#include "handoff.h"
#include "util.h"

enum { OPT_VERSION = 0x100, OPT_JSON, OPT_REFRESH, OPT_USER, OPT_ALL, OPT_CHECK, OPT_RAW, OPT_DRY_RUN,
       OPT_ONLY, OPT_EXCEPT, OPT_ONLINE, _OPT_END };

/* The options a command takes, as bits: any other is an error, not silently ignored. */
#define OPT_BIT(o) (1u << ((o) - OPT_JSON))
#define ANY_ARGS (-1)

typedef struct Command {
        const char *name;
        int (*run)(Cli *cli);
        const char *usage;
        const char *help;
        unsigned options;       /* OPT_BIT()s */
        int max_args;           /* operands it takes at most, or ANY_ARGS */
} Command;

static const Command commands[] = {
        { "daemon", cmd_daemon, "daemon", "run as a service (foreground; systemd Type=notify)", 0, 0 },
        { "apply", cmd_apply, "apply [--user ID]", "reconcile once until nothing actionable is left; --user: "
          "only that user, now", OPT_BIT(OPT_USER), 0 },
        { "plan", cmd_plan, "plan [--json] [--refresh] [FILE...]", "show what apply would do; change nothing; "
          "FILE...: as if the roster folder held exactly these files", OPT_BIT(OPT_JSON) | OPT_BIT(OPT_REFRESH),
          ANY_ARGS },
        { "validate", cmd_validate, "validate [--online] [FILE...]",
          "check the config and the roster; --online: read each Entra group once", OPT_BIT(OPT_ONLINE),
          ANY_ARGS },
        { "status", cmd_status, "status [--json] [--all] [--check]",
          "what the state store knows; --all: every instance; --check: OK/WARNING/CRITICAL",
          OPT_BIT(OPT_JSON) | OPT_BIT(OPT_ALL) | OPT_BIT(OPT_CHECK), 0 },
        /* Its IDs go with --only or --except, which it checks itself. */
        { "approve-deletes", cmd_approve_deletes, "approve-deletes [--dry-run] [--only|--except ID...]",
          "release the deletes held now, or some of them; --dry-run: review them",
          OPT_BIT(OPT_DRY_RUN) | OPT_BIT(OPT_ONLY) | OPT_BIT(OPT_EXCEPT), ANY_ARGS },
        { "licenses", cmd_licenses, "licenses [--json] [--raw]", "license usage of the tenant",
          OPT_BIT(OPT_JSON) | OPT_BIT(OPT_RAW), 0 },
        { "user", cmd_user, "user show ID [--json] [--raw]", "one user's Nimbus details; --raw: the answer as "
          "it came", OPT_BIT(OPT_JSON) | OPT_BIT(OPT_RAW), 2 },
        { "doctor", cmd_doctor, "doctor [--raw] [USER_ID]", "check config, credentials, TLS, token, API host "
          "and licenses of a real tenant; read-only", OPT_BIT(OPT_RAW), 1 },
};

static void usage(FILE *f) {
        fprintf(f, "Usage: nimbus-sync [-c CONFIG] COMMAND [OPTIONS]\n\n"
                   "Keeps the users of a Luware Nimbus tenant equal to roster files.\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                /* Two spaces at least: they end the usage, for people and completion tests. */
                fprintf(f, "  %-34s%s%s\n", commands[i].usage, strlen(commands[i].usage) < 34 ? " " : "  ",
                        commands[i].help);
        fprintf(f, "\nOptions:\n"
                   "  -c, --config PATH                  config file (default $NIMBUS_SYNC_CONFIG or %s)\n"
                   "  -h, --help                         this help; `help COMMAND` for one command\n"
                   "      --version                      print the version\n\n"
                   "Exit status: 0 done/no changes, 1 error, 2 changes or work remaining,\n"
                   "3 not a Nimbus user (user show); status --check: 0 OK, 1 WARNING, 2 CRITICAL.\n"
                   "See nimbus-sync(8).\n", CONFIG_DEFAULT_PATH);
}

static const Command *command_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

static int help_command(const char *name) {
        const Command *c = command_find(name);

        if (!c) {
                fprintf(stderr, "nimbus-sync: unknown command \"%s\"; see nimbus-sync --help\n", name);
                return EXIT_ERROR;
        }
        printf("Usage: nimbus-sync [-c CONFIG] %s\n\n%s.\n", c->usage, c->help);
        return EXIT_OK;
}

/* getopt_long permutes, so options may follow the subcommand; what is left are operands. */
static int parse_args(Cli *cli, int argc, char **argv, bool *ret_help, bool *ret_version) {
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                { "json", no_argument, NULL, OPT_JSON },
                { "refresh", no_argument, NULL, OPT_REFRESH },
                { "user", required_argument, NULL, OPT_USER },
                { "all", no_argument, NULL, OPT_ALL },
                { "check", no_argument, NULL, OPT_CHECK },
                { "raw", no_argument, NULL, OPT_RAW },
                { "dry-run", no_argument, NULL, OPT_DRY_RUN },
                { "only", no_argument, NULL, OPT_ONLY },
                { "except", no_argument, NULL, OPT_EXCEPT },
                { "online", no_argument, NULL, OPT_ONLINE },
                {}
        };
        int o;

        while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0) {
                if (o >= OPT_JSON)
                        cli->options |= OPT_BIT(o);
                switch (o) {
                case 'c': cli->config_path = optarg; break;
                case 'h': *ret_help = true; break;
                case OPT_VERSION: *ret_version = true; break;
                case OPT_JSON: cli->json = true; break;
                case OPT_REFRESH: cli->refresh = true; break;
                case OPT_USER: cli->user = optarg; break;
                case OPT_ALL: cli->all = true; break;
                case OPT_CHECK: cli->check = true; break;
                case OPT_RAW: cli->raw = true; break;
                case OPT_DRY_RUN: cli->dry_run = true; break;
                case OPT_ONLY: cli->only = true; break;
                case OPT_EXCEPT: cli->except = true; break;
                case OPT_ONLINE: cli->online = true; break;
                default: return -EINVAL;   /* getopt printed why */
                }
        }
        if (optind < argc)
                cli->command = argv[optind++];
        cli->args = argv + optind;
        cli->n_args = argc - optind;
        return 0;
}

/* An option or operand the command does not take: one line, and the command does not run
 * (`apply big.csv` must not reconcile the whole folder). */
static int check_args(const Cli *cli, const Command *c) {
        static const char *const names[_OPT_END - OPT_JSON] = {
                [OPT_JSON - OPT_JSON] = "json", [OPT_REFRESH - OPT_JSON] = "refresh",
                [OPT_USER - OPT_JSON] = "user", [OPT_ALL - OPT_JSON] = "all", [OPT_CHECK - OPT_JSON] = "check",
                [OPT_RAW - OPT_JSON] = "raw", [OPT_DRY_RUN - OPT_JSON] = "dry-run",
                [OPT_ONLY - OPT_JSON] = "only", [OPT_EXCEPT - OPT_JSON] = "except",
                [OPT_ONLINE - OPT_JSON] = "online",
        };
        unsigned extra = cli->options & ~c->options;

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (extra & (1u << i)) {
                        fprintf(stderr, "nimbus-sync: %s does not take --%s (usage: nimbus-sync %s)\n",
                                c->name, names[i], c->usage);
                        return -EINVAL;
                }
        if (c->max_args != ANY_ARGS && cli->n_args > c->max_args) {
                fprintf(stderr, "nimbus-sync: %s: unexpected argument \"%s\" (usage: nimbus-sync %s)\n",
                        c->name, cli->args[c->max_args], c->usage);
                return -EINVAL;
        }
        return 0;
}

static void daemon_signals(sigset_t *set) {
        sigemptyset(set);
        sigaddset(set, SIGHUP);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, HANDOFF_WAKE_SIGNAL);
}

void cli_signals_block(sigset_t *ret_old) {
        sigset_t set;

        daemon_signals(&set);
        (void) sigprocmask(SIG_BLOCK, &set, ret_old);
}

void cli_signals_unblock(void) {
        sigset_t set;

        daemon_signals(&set);
        (void) sigprocmask(SIG_UNBLOCK, &set, NULL);
}

int cli_main(int argc, char **argv) {
        Cli cli = { .config_path = getenv("NIMBUS_SYNC_CONFIG") };
        bool help = false, version = false;
        const Command *c;

        cli_signals_block(&cli.saved_mask);
        if (!cli.config_path || !*cli.config_path)
                cli.config_path = CONFIG_DEFAULT_PATH;
        log_init(&cli.log, LOG_TARGET_STDERR, LOG_INFO);
        if (parse_args(&cli, argc, argv, &help, &version) < 0) {
                fprintf(stderr, "See nimbus-sync --help.\n");
                return EXIT_ERROR;
        }
        if (version) {
                printf("nimbus-sync %s\n", NIMBUS_SYNC_VERSION);
                return EXIT_OK;
        }
        if (cli.command && streq(cli.command, "help") && cli.n_args > 1) {
                fprintf(stderr, "nimbus-sync: help: unexpected argument \"%s\" (usage: nimbus-sync help "
                        "[COMMAND])\n", cli.args[1]);
                return EXIT_ERROR;
        }
        if (cli.command && streq(cli.command, "help"))
                return cli.n_args > 0 ? help_command(cli.args[0]) : (usage(stdout), EXIT_OK);
        if (help && cli.command)
                return help_command(cli.command);
        if (help || !cli.command) {
                usage(help ? stdout : stderr);
                return help ? EXIT_OK : EXIT_ERROR;
        }
        c = command_find(cli.command);
        if (!c || !c->run) {
                fprintf(stderr, "nimbus-sync: %s command \"%s\"; see nimbus-sync --help\n",
                        c ? "not yet available:" : "unknown", cli.command);
                return EXIT_ERROR;
        }
        if (check_args(&cli, c) < 0)
                return EXIT_ERROR;
        if (c->run != cmd_daemon)
                (void) sigprocmask(SIG_SETMASK, &cli.saved_mask, NULL);
        return c->run(&cli);
}

int cli_load_config(Cli *cli, Config **ret) {
        Diag d = DIAG_INIT;
        int r;

        r = config_load(cli->config_path, ret, &d);
        log_diag(&cli->log, &d, NULL);
        if (r < 0 && d.n_errors == 0)
                fprintf(stderr, "%s: error: cannot read the config: %s\n", cli->config_path, strerror(-r));
        diag_clear(&d);
        if (r >= 0)
                log_init(&cli->log, (*ret)->log_target, (*ret)->log_level);
        return r;
}

int cli_check_config_files(Cli *cli, const Config *c) {
        Diag d = DIAG_INIT;
        int r;

        r = credential_check(c, 0, &d);
        log_diag(&cli->log, &d, NULL);
        diag_clear(&d);
        if (r < 0 && r != -EINVAL)
                fprintf(stderr, "%s: error: cannot check the files it names: %s\n", cli->config_path,
                        strerror(-r));
        return r;
}

/* One read of the roster; -EAGAIN when the folder changed while it was read. */
static int load_roster_once(Cli *cli, const Config *c, Roster **ret, Diag *d) {
        /* validate FILE..., plan FILE...: as if the folder held exactly these files */
        if (cli->n_args > 0 && (streq(cli->command, "validate") || streq(cli->command, "plan")))
                return roster_load_files(cli->args, (size_t) cli->n_args, c, ret, d);
        return roster_load_dir(c->roster_dir, c, ret, NULL, d);
}

/* A folder that changes while it is read is read again at once, a few times: a writer that
 * renames its files in is done within that; one that keeps writing is said so. */
int cli_load_roster(Cli *cli, const Config *c, Roster **ret) {
        Diag d = DIAG_INIT;
        int r;

        for (unsigned attempt = 1;; attempt++) {
                r = load_roster_once(cli, c, ret, &d);
                if (r != -EAGAIN || attempt == ROSTER_READ_ATTEMPTS)
                        break;
                if (d.n > 0)
                        log_msg(&cli->log, LOG_NOTICE, "%s: %s; reading the roster again",
                                d.entries[0].file ? d.entries[0].file : c->roster_dir, d.entries[0].msg);
                diag_clear(&d);
        }
        log_diag(&cli->log, &d, r < 0 ? MID_ROSTER_ERROR : NULL);
        if (r == -EAGAIN)
                fprintf(stderr, "%s: error: the roster folder kept changing while it was read (%u "
                        "attempts): nothing was changed; writers should write a temporary name and rename "
                        "it in\n", c->roster_dir, ROSTER_READ_ATTEMPTS);
        else if (r < 0 && d.n_errors == 0)
                fprintf(stderr, "%s: error: cannot read the roster: %s\n", c->roster_dir, strerror(-r));
        if (r < 0)
                fprintf(stderr, "roster rejected: nothing was changed\n");
        diag_clear(&d);
        return r;
}
