/* dirwatch.c: inotify hints, settle timer and fingerprints for the roster folder (see the header). */
#include "dirwatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "openfiles.h"
#include "roster.h"
#include "util.h"

struct DirWatch {
        uv_poll_t poll;          /* on the inotify descriptor */
        uv_timer_t settle;       /* runs while files are changing */
        uv_timer_t rescan;       /* the safety net */
        int inotify_fd;          /* -1 when inotify is not available: the rescan alone then */
        int wd;                  /* the folder's watch, -1 when none */
        char *dir;
        uint64_t settle_usec;
        uint64_t reported;       /* fingerprint of the folder as last read */
        uint64_t candidate;      /* fingerprint seen when the settle timer was started */
        bool have_reported;
        dev_t dev;               /* the folder watched */
        ino_t ino;
        OpenFiles open;          /* roster files a writer here holds open (openfiles.h) */
        uint64_t held_since;     /* monotonic time the settled folder was first held back, or 0 */
        bool held_told;
        DirWatchHeldFn held;
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

/* ---- inotify --------------------------------------------------------------------------------------- */

#define WATCH_MASK (IN_MODIFY | IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_CREATE | IN_DELETE | \
                    IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

static void unwatch(DirWatch *w) {
        if (w->wd >= 0)
                (void) inotify_rm_watch(w->inotify_fd, w->wd);
        w->wd = -1;
        openfiles_clear(&w->open);
}

/* A watch dies with its folder, and none starts on a folder that is missing: whenever we look,
 * watch the folder that is there now, so inotify is back as soon as the folder is. */
static void watch_folder(DirWatch *w) {
        struct stat st;

        if (stat(w->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                unwatch(w);
                return;
        }
        if (w->wd >= 0 && st.st_dev == w->dev && st.st_ino == w->ino)
                return;
        unwatch(w);
        if (w->inotify_fd >= 0)
                w->wd = inotify_add_watch(w->inotify_fd, w->dir, WATCH_MASK);
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

static void hold_back(DirWatch *w) {
        uint64_t now = mono_usec();

        if (w->held_since == 0)
                w->held_since = now;
        if (w->held_told || now - w->held_since < DIRWATCH_HELD_SETTLES * w->settle_usec)
                return;
        w->held_told = true;
        if (w->held)
                w->held(w->userdata, openfiles_held(&w->open));
}

static void hold_over(DirWatch *w) {
        w->held_since = 0;
        w->held_told = false;
}

static void settle_again(DirWatch *w, uint64_t fp) {
        w->candidate = fp;
        (void) uv_timer_start(&w->settle, on_settle, w->settle_usec / USEC_PER_MSEC, 0);
}

static void on_settle(uv_timer_t *t) {
        DirWatch *w = t->data;
        uint64_t fp = 0;
        int r;

        watch_folder(w);
        (void) roster_fingerprint(w->dir, &fp);
        if (fp != w->candidate) {       /* still being written: wait another settle period */
                settle_again(w, fp);
                return;
        }
        /* Quiet, but still open in its writer's hands (a script that pauses between pages of an
         * export): what it wrote so far may be a valid roster of fewer users. */
        if (openfiles_held(&w->open)) {
                hold_back(w);
                settle_again(w, fp);
                return;
        }
        /* The read tells which state of the folder it saw: that is the one to compare with. */
        w->reported = fp;
        r = w->changed(w->userdata, &w->reported);
        w->have_reported = r != -EAGAIN && r != -EBUSY;
        if (r == -EBUSY)                /* a writer holds a file open (roster_file_held_open()) */
                hold_back(w);
        else
                hold_over(w);
        if (!w->have_reported) {        /* a writer is still at work: give it another settle time */
                fp = 0;
                (void) roster_fingerprint(w->dir, &fp);
                settle_again(w, fp);
        }
}

/* One event; true if it may have changed the roster files or ended a writer's hold. Names we
 * ignore (swap files, *.tmp) cannot change the fingerprint, and a reader's open and close
 * change nothing: no work follows. */
static bool note_event(DirWatch *w, const struct inotify_event *ev) {
        if (ev->mask & IN_Q_OVERFLOW) {
                (void) openfiles_event(&w->open, ev->mask, "");
                return true;
        }
        if (ev->wd != w->wd)    /* a watch we removed: its last events are of no interest */
                return false;
        if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                unwatch(w);     /* the folder went: watch_folder() finds the new one */
                return true;
        }
        if (ev->len == 0 || !roster_is_candidate_name(ev->name))
                return false;
        (void) openfiles_event(&w->open, ev->mask, ev->name);  /* one not followed: settle alone */
        return (ev->mask & ~(uint32_t) (IN_OPEN | IN_CLOSE_NOWRITE)) != 0;
}

static void on_inotify(uv_poll_t *p, int status, int events) {
        DirWatch *w = p->data;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        bool changed = status < 0;
        ssize_t n;

        while ((n = read(w->inotify_fd, buf, sizeof buf)) > 0)
                for (char *at = buf; at < buf + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) at;

                        changed |= note_event(w, ev);
                        at += sizeof(*ev) + ev->len;
                }
        if (changed)
                check(w);
}

/* The safety net: a change inotify did not report (a network share, a lost event), and a
 * folder made again after it was removed (its watch ended with IN_IGNORED). */
static void on_rescan(uv_timer_t *t) {
        check(t->data);
}

/* An inotify descriptor of our own, not uv_fs_event: its events name the writer's close
 * (IN_CLOSE_WRITE), which tells a finished file from one whose writer merely paused. */
static void inotify_open(DirWatch *w, uv_loop_t *loop) {
        w->wd = -1;
        w->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->inotify_fd < 0)
                return;         /* none left (max_user_instances): the rescan alone sees changes */
        if (uv_poll_init(loop, &w->poll, w->inotify_fd) < 0) {
                (void) close(w->inotify_fd);
                w->inotify_fd = -1;
                return;
        }
        w->open_handles++;
        w->poll.data = w;
        (void) uv_poll_start(&w->poll, UV_READABLE, on_inotify);
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
        if (uv_timer_init(loop, &w->settle) < 0 || uv_timer_init(loop, &w->rescan) < 0) {
                free(w->dir);
                free(w);
                return -EIO;
        }
        w->open_handles = 2;
        w->settle.data = w->rescan.data = w;
        inotify_open(w, loop);
        if (rescan_ms > 0)
                (void) uv_timer_start(&w->rescan, on_rescan, rescan_ms, rescan_ms);
        check(w);       /* starts the watch; without `seen` the first read follows the settle rule */
        *ret = w;
        return 0;
}

void dirwatch_on_held(DirWatch *w, DirWatchHeldFn held) {
        w->held = held;
}

static void handle_closed(uv_handle_t *h) {
        DirWatch *w = h->data;

        if (--w->open_handles == 0) {
                openfiles_clear(&w->open);
                if (w->inotify_fd >= 0)
                        (void) close(w->inotify_fd);   /* after its poll handle is closed */
                free(w->dir);
                free(w);
        }
}

void dirwatch_close(DirWatch *w) {
        if (!w)
                return;
        if (w->inotify_fd >= 0)
                uv_close((uv_handle_t *) &w->poll, handle_closed);
        uv_close((uv_handle_t *) &w->settle, handle_closed);
        uv_close((uv_handle_t *) &w->rescan, handle_closed);
}
