/* notify.c: sd_notify() messages for Type=notify services (see notify.h). */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <inttypes.h>

#include "util.h"

void notify_ready(void) {
        (void) sd_notify(0, "READY=1");
}

/* MONOTONIC_USEC lets systemd match this reload with the READY=1 that ends it. */
void notify_reloading(void) {
        (void) sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%" PRIu64, mono_usec());
}

void notify_stopping(void) {
        (void) sd_notify(0, "STOPPING=1");
}

void notify_status(const char *fmt, ...) {
        char line[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        (void) sd_notifyf(0, "STATUS=%s", line);
}

void notify_watchdog(void) {
        (void) sd_notify(0, "WATCHDOG=1");
}

uint64_t notify_watchdog_usec(void) {
        uint64_t usec = 0;

        return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}
