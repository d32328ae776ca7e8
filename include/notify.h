/* notify.h: what the service tells systemd (nimbus-sync(8), SYSTEMD): READY=1, RELOADING=1,
 * STOPPING=1, a one-line STATUS=, and WATCHDOG=1 keep-alives. Outside systemd ($NOTIFY_SOCKET
 * unset) every call is a cheap no-op. */
#pragma once

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void notify_watchdog(void);
/* The watchdog interval systemd asked for, or 0 when there is none. */
uint64_t notify_watchdog_usec(void);
