/* dirwatch.c: inotify hints, settle timer and fingerprints for the roster folder (see the header). */
#include "dirwatch.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "roster.h"
#include "util.h"

struct DirWatch {
        uv_fs_event_t event;
        uv_timer_t settle;       /* runs while files are changing */
        uv_timer_t rescan;       /* the safety net */
        char *dir;
        uint64_t settle_usec;
        uint64_t reported;       /* fingerprint of the folder as last read */
        uint64_t candidate;      /* fingerprint seen when the settle timer was started */
        bool have_reported;
        bool watching;           /* uv_fs_event started */
        dev_t dev;               /* ... on this folder */
        ino_t ino;
        unsigned open_handles;
        DirWatchFn changed;
        void *userdata;
};

bool dirwatch_settled(const char *dir, uint64_t settle_usec) {
        uint64_t now = now_usec();
        struct dirent *de;
        bool settled = true;
        DIR *d;

        d = opendir(dir);
        if (!d)
                return true;    /* nothing to wait for: loading it reports the error */
        while (settled && (de = readdir(d))) {
                struct stat st;

                if (!roster_is_candidate_name(de->d_name) ||
                    fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                /* A modification time in the future (clock skew) counts as recent. */
                settled = st.st_mtim.tv_sec >= 0 &&
                          (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC +
                          (uint64_t) st.st_mtim.tv_nsec / 1000 + settle_usec <= now;
        }
        closedir(d);
        return settled;
}

static void on_settle(uv_timer_t *t);
static void on_event(uv_fs_event_t *e, const char *name, int events, int status);

/* A watch dies with its folder, and none starts on a folder that is missing: whenever we look,
 * watch the folder that is there now, so inotify is back as soon as the folder is. */
static void watch_folder(DirWatch *w) {
        struct stat st;

        if (stat(w->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                if (w->watching)
                        (void) uv_fs_event_stop(&w->event);
                w->watching = false;
                return;
        }
        if (w->watching && st.st_dev == w->dev && st.st_ino == w->ino)
                return;
        if (w->watching)
                (void) uv_fs_event_stop(&w->event);
        w->watching = uv_fs_event_start(&w->event, on_event, w->dir, 0) >= 0;
        w->dev = st.st_dev;
        w->ino = st.st_ino;
}

/* Something may have changed: (re)start the settle timer if the files differ from what we last
 * reported or from what the running settle period started with. */
static void check(DirWatch *w) {
        uint64_t fp = 0;

        watch_folder(w);
        (void) roster_fingerprint(w->dir, &fp);   /* an unreadable folder is fingerprint 0 */
        if (uv_is_active((uv_handle_t *) &w->settle) && fp == w->candidate)
                return;
        if (!uv_is_active((uv_handle_t *) &w->settle) && w->have_reported && fp == w->reported)
                return;
        w->candidate = fp;
        (void) uv_timer_start(&w->settle, on_settle, w->settle_usec / USEC_PER_MSEC, 0);
}

static void settle_again(DirWatch *w, uint64_t fp) {
        w->candidate = fp;
        (void) uv_timer_start(&w->settle, on_settle, w->settle_usec / USEC_PER_MSEC, 0);
}

static void on_settle(uv_timer_t *t) {
        DirWatch *w = t->data;
        uint64_t fp = 0;

        watch_folder(w);
        (void) roster_fingerprint(w->dir, &fp);
        if (fp != w->candidate) {       /* still being written: wait another settle period */
                settle_again(w, fp);
                return;
        }
        /* The read tells which state of the folder it saw: that is the one to compare with. */
        w->reported = fp;
        w->have_reported = w->changed(w->userdata, &w->reported) != -EAGAIN;
        if (!w->have_reported) {        /* a writer is still at work: give it another settle time */
                fp = 0;
                (void) roster_fingerprint(w->dir, &fp);
                settle_again(w, fp);
        }
}

static void on_event(uv_fs_event_t *e, const char *name, int events, int status) {
        DirWatch *w = e->data;

        /* Names we ignore (swap files, *.tmp) cannot change the fingerprint, so no work follows. */
        if (status >= 0 && name && !roster_is_candidate_name(name))
                return;
        check(w);
}

/* The safety net also renews the watch: a folder removed and made again often gets the same
 * inode number back, so identity alone cannot tell that the old watch died with it. */
static void on_rescan(uv_timer_t *t) {
        DirWatch *w = t->data;

        if (w->watching)
                (void) uv_fs_event_stop(&w->event);
        w->watching = false;
        check(w);
}

int dirwatch_new(uv_loop_t *loop, const char *dir, uint64_t settle_usec, uint64_t rescan_usec,
                 const uint64_t *seen, DirWatchFn changed, void *userdata, DirWatch **ret) {
        DirWatch *w = calloc(1, sizeof(*w));
        uint64_t rescan_ms = rescan_usec / USEC_PER_MSEC;

        if (!w || !(w->dir = strdup(dir))) {
                free(w);
                return -ENOMEM;
        }
        w->settle_usec = settle_usec;
        w->reported = seen ? *seen : 0;
        w->have_reported = seen != NULL;
        w->changed = changed;
        w->userdata = userdata;
        /* Handles are initialized unconditionally so dirwatch_close() can close all three. */
        if (uv_fs_event_init(loop, &w->event) < 0 || uv_timer_init(loop, &w->settle) < 0 ||
            uv_timer_init(loop, &w->rescan) < 0) {
                free(w->dir);
                free(w);
                return -EIO;
        }
        w->open_handles = 3;
        w->event.data = w->settle.data = w->rescan.data = w;
        if (rescan_ms > 0)
                (void) uv_timer_start(&w->rescan, on_rescan, rescan_ms, rescan_ms);
        check(w);       /* starts the watch; without `seen` the first read follows the settle rule */
        *ret = w;
        return 0;
}

static void handle_closed(uv_handle_t *h) {
        DirWatch *w = h->data;

        if (--w->open_handles == 0) {
                free(w->dir);
                free(w);
        }
}

void dirwatch_close(DirWatch *w) {
        if (!w)
                return;
        uv_close((uv_handle_t *) &w->event, handle_closed);
        uv_close((uv_handle_t *) &w->settle, handle_closed);
        uv_close((uv_handle_t *) &w->rescan, handle_closed);
}
