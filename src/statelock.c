/* statelock.c: the exclusive lock on state_dir (see statelock.h). */
#include "statelock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct StateLock {
        int fd;
};

/* root running a command by hand must not leave a file the service user cannot open (SQLite
 * does the same for its -wal and -shm files): the lock file belongs to state_dir's owner. */
static void give_to_dir_owner(int fd, const char *state_dir) {
        struct stat dir, file;

        if (geteuid() != 0 || stat(state_dir, &dir) < 0 || fstat(fd, &file) < 0)
                return;
        if (file.st_uid != dir.st_uid || file.st_gid != dir.st_gid)
                (void) fchown(fd, dir.st_uid, dir.st_gid);
}

static void read_holder(int fd, StateLockHolder *holder) {
        char buf[64];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        char command[STATELOCK_COMMAND_MAX] = "";
        long pid = 0;

        buf[n > 0 ? n : 0] = 0;
        /* Empty while the holder is between taking the lock and writing its name. */
        if (sscanf(buf, "%ld %15s", &pid, command) < 1 || pid <= 0)
                pid = 0;
        holder->pid = pid;
        snprintf(holder->command, sizeof holder->command, "%s", pid ? command : "");
}

static int write_holder(int fd, const char *command) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "%ld %s\n", (long) getpid(), command);

        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t) len, 0) != len)
                return -errno;
        return 0;
}

int statelock_take(const char *state_dir, const char *command, StateLock **ret, StateLockHolder *holder) {
        _cleanup_free_ char *path = NULL;
        int fd, r = 0;

        if (!state_dir || !command || !ret)
                return -EINVAL;
        if (asprintf(&path, "%s/%s", state_dir, STATELOCK_FILE_NAME) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        give_to_dir_owner(fd, state_dir);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
                if (r == -EWOULDBLOCK && holder)
                        read_holder(fd, holder);
                close(fd);
                return r;
        }
        StateLock *l = malloc(sizeof *l);
        if (!l || (r = write_holder(fd, command)) < 0) {
                r = l ? r : -ENOMEM;
                free(l);
                close(fd);
                return r;
        }
        l->fd = fd;
        *ret = l;
        return 0;
}

bool statelock_is_for(const StateLock *l, const char *state_dir) {
        _cleanup_free_ char *path = NULL;
        struct stat ours, theirs;

        if (asprintf(&path, "%s/%s", state_dir, STATELOCK_FILE_NAME) < 0) {
                path = NULL;
                return false;
        }
        return fstat(l->fd, &ours) >= 0 && stat(path, &theirs) >= 0 && ours.st_dev == theirs.st_dev &&
               ours.st_ino == theirs.st_ino;
}

const char *statelock_describe(const StateLockHolder *h, char *buf, size_t size) {
        if (h->pid <= 0)
                snprintf(buf, size, "another process");
        else if (streq(h->command, "daemon"))
                snprintf(buf, size, "the daemon (pid %ld)", h->pid);
        else
                snprintf(buf, size, "`nimbus-sync %s` (pid %ld)", h->command[0] ? h->command : "?", h->pid);
        return buf;
}

StateLock *statelock_release(StateLock *l) {
        if (!l)
                return NULL;
        /* Emptied first: a process that finds the file unlocked has no stale name to report. */
        (void) ftruncate(l->fd, 0);
        close(l->fd);
        free(l);
        return NULL;
}
