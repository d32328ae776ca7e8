/* desired.h: the desired state as the commands that run once build it (apply, plan, validate):
 * the roster files and, when sources: are configured, the members of every Entra group as read
 * now, or as last read completely when a group cannot be read now. One function for all of them,
 * so that plan shows exactly what apply would act on. The daemon builds the same union with
 * source_set_merge() as its files and groups change. */
#pragma once

#include <stddef.h>

#include "cli.h"
#include "source.h"
#include "store.h"

/* *roster holds the roster files (cli_load_roster()); with sources: configured it is replaced by
 * the union with every group. store: the tenant's store (apply: lists read now are recorded), or
 * NULL (plan: the store is only read, if there is one). *ret_stale counts the groups whose last
 * complete list stands in for a read that failed now. Diagnostics are printed; -EINVAL means the
 * desired state was rejected, and *roster is then freed and NULL. */
int desired_add_sources(Cli *cli, const Config *c, Store *store, Roster **roster, size_t *ret_stale);

/* validate --online: read each group once and print its member count or the exact error.
 * -EINVAL if any group could not be read. */
int desired_check_online(Cli *cli, const Config *c);

/* ---- status: what the store knows, without reading Graph ---- */
/* *roster (the roster files) is replaced by its union with each group's last complete list in the
 * store; *ret_set (NULL without sources:) tells status how each group stands. */
int desired_from_store(const Config *c, Store *st, Roster **roster, SourceSet **ret_set, Diag *diag);
