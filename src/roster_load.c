/* roster_load.c: reads roster files from disk into the RosterBuilder (roster.c): the roster folder
 * as one consistent snapshot, the files `validate FILE...` names, and buffers (for fuzzing). The
 * checks every format shares come first (a regular file, UTF-8 text, not blank); then the reader
 * the file name picks (roster_yaml.c, roster_csv.c) runs.
 *
 * A snapshot (nimbus-sync(8), ROSTER FOLDER): the folder is listed with stat(), symlinks
 * followed; every file opened must be the one listed and must not change while it is read; and
 * when all are read, the folder's fingerprint must still be the listing's. A listed file that
 * is gone, or any difference, means a writer was at work: -EAGAIN, and the caller reads again.
 * A file another process still holds open for writing is not read at all: -EBUSY.
 * A file that vanished is never taken as "no longer in the roster", which would delete its
 * users. Files are read one at a time and the second look is a stat walk, so a snapshot costs
 * no extra copy of a large roster. */
#include "roster.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "encoding.h"
#include "roster_internal.h"
#include "util.h"

typedef enum RosterFormat {
        FORMAT_NONE,
        FORMAT_YAML,
        FORMAT_CSV,
} RosterFormat;

/* One name of the folder as it was listed. */
typedef struct Stamp {
        char *name;
        struct stat st;         /* stat() of the name; lstat() when that failed */
        int error;              /* errno of stat(), 0 if it worked */
} Stamp;

typedef struct Listing {
        Stamp *items;           /* sorted by name */
        size_t n, cap;
        size_t total;           /* candidate names seen, kept or not */
        uint64_t fingerprint;
} Listing;

typedef struct Loader {
        RosterBuilder b;
        uint64_t newest_usec;   /* mtime of the newest file read */
        char *changed_file;     /* what changed while it was read, for the message */
        const char *changed_how;
} Loader;

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n > k && streq(s + n - k, suffix);
}

static RosterFormat roster_format(const char *name) {
        if (has_suffix(name, ".yaml") || has_suffix(name, ".yml"))
                return FORMAT_YAML;
        if (has_suffix(name, ".csv"))
                return FORMAT_CSV;
        return FORMAT_NONE;
}

bool roster_is_candidate_name(const char *name) {
        return name[0] != '.' && roster_format(name) != FORMAT_NONE;
}

/* ---- one file's content ------------------------------------------------------------------ */

static bool is_blank(const char *s, size_t len) {
        size_t i = len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;

        for (; i < len; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                        return false;
        return true;
}

static void report_encoding(RosterBuilder *b, const TextCheck *t) {
        const char *name = text_encoding_name(t->encoding);

        if (t->encoding == TEXT_UTF16LE || t->encoding == TEXT_UTF16BE)
                roster_error(b, t->line, t->col, "the file is %s text, not UTF-8: save it as UTF-8", name);
        else if (t->encoding == TEXT_BINARY)
                roster_error(b, t->line, t->col, "a NUL byte: the file is binary data, not UTF-8 text");
        else
                roster_error(b, t->line, t->col, "byte 0x%02X is not UTF-8: the file looks like %s text; "
                             "save it as UTF-8", t->byte, name);
}

/* The checks every format shares, then the reader the name picks. Problems are diagnostics;
 * only -ENOMEM and the like are returned. */
static int parse_file(RosterBuilder *b, const char *path, const char *buf, size_t len) {
        RosterFormat format = roster_format(path);
        TextCheck t;
        int r;

        if (len > b->limits.max_file_size)
                roster_error(b, 1, 1, "file is larger than %zu bytes", b->limits.max_file_size);
        else if (format == FORMAT_NONE)
                roster_error(b, 1, 1, "unknown roster format (the name must end in .yaml, .yml or .csv)");
        else if (text_check_utf8(buf, len, &t) < 0)
                report_encoding(b, &t);
        else if (is_blank(buf, len))
                /* A truncated export looks just like this: nobody is listed by accident. */
                roster_error(b, 1, 1, "empty file: a roster that lists nobody must say so with %s",
                             format == FORMAT_YAML ? "`users: []`" : "its header row alone");
        else {
                r = format == FORMAT_YAML ? roster_yaml_parse(b, buf, len) : roster_csv_parse(b, buf, len);
                return r == -EINVAL ? 0 : r;
        }
        return 0;
}

/* ---- stamps and fingerprints ------------------------------------------------------------- */

/* 1 with *ret filled (error set when stat() failed, e.g. a dangling symlink), 0 when the name is
 * gone. */
static int stamp_at(int dfd, const char *name, Stamp *ret) {
        *ret = (Stamp) { 0 };
        if (fstatat(dfd, name, &ret->st, 0) >= 0)
                return 1;
        ret->error = errno;
        if (fstatat(dfd, name, &ret->st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;
                ret->st = (struct stat) { 0 };
        }
        return 1;
}

static uint64_t stamp_hash(const char *name, const Stamp *s) {
        const struct stat *st = &s->st;
        uint64_t h = FNV1A_INIT;
        const uint64_t f[] = {
                (uint64_t) s->error, st->st_mode, st->st_dev, st->st_ino, (uint64_t) st->st_size,
                (uint64_t) st->st_mtim.tv_sec, (uint64_t) st->st_mtim.tv_nsec,
                (uint64_t) st->st_ctim.tv_sec, (uint64_t) st->st_ctim.tv_nsec,
        };

        fnv1a_bytes(&h, name, strlen(name) + 1);
        fnv1a_bytes(&h, f, sizeof f);
        return h;
}

static bool stamp_same(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_mode == b->st_mode &&
               a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
               a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
               a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void listing_done(Listing *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->items[i].name);
        free(l->items);
        *l = (Listing) { 0 };
}

static int listing_add(Listing *l, const char *name, const Stamp *s) {
        if (array_grow((void **) &l->items, &l->cap, l->n + 1, sizeof(Stamp), 16) < 0)
                return -ENOMEM;
        l->items[l->n] = *s;
        if (strdup_checked(name, &l->items[l->n].name) < 0)
                return -ENOMEM;
        l->n++;
        return 0;
}

static int stamp_cmp(const void *a, const void *b) {
        return strcmp(((const Stamp *) a)->name, ((const Stamp *) b)->name);
}

/* The candidate names of the folder open as d with their stamps, sorted by name. At most max are
 * kept, but all count in total and in the fingerprint. The fingerprint covers the folder's own
 * identity too: a folder swapped behind a symlink is another folder. */
static int list_folder(DIR *d, size_t max, Listing *ret) {
        uint64_t sum = FNV1A_INIT;
        struct dirent *de;
        struct stat st;

        if (fstat(dirfd(d), &st) < 0)
                return -errno;
        fnv1a_bytes(&sum, &st.st_dev, sizeof st.st_dev);
        fnv1a_bytes(&sum, &st.st_ino, sizeof st.st_ino);
        while ((errno = 0, de = readdir(d))) {
                Stamp s;

                if (!roster_is_candidate_name(de->d_name) || stamp_at(dirfd(d), de->d_name, &s) == 0)
                        continue;
                sum += stamp_hash(de->d_name, &s); /* an order-free sum: readdir()'s order is arbitrary */
                if (ret->total++ < max && listing_add(ret, de->d_name, &s) < 0)
                        return -ENOMEM;
        }
        if (errno != 0)
                return -errno;
        if (ret->n > 1)
                qsort(ret->items, ret->n, sizeof(Stamp), stamp_cmp);
        ret->fingerprint = sum;
        return 0;
}

int roster_fingerprint(const char *dir, uint64_t *ret) {
        Listing l = { 0 };
        DIR *d;
        int r;

        d = opendir(dir);
        if (!d)
                return -errno;
        r = list_folder(d, 0, &l);
        closedir(d);
        if (r >= 0)
                *ret = l.fingerprint;
        listing_done(&l);
        return r;
}

/* ---- reading files ----------------------------------------------------------------------- */

/* Say what changed while it was read; -EAGAIN, for the callers to pass up. */
static int changed(Loader *ld, const char *path, const char *how) {
        free(ld->changed_file);
        ld->changed_file = strdup(path);        /* without it the message names no file */
        ld->changed_how = how;
        return -EAGAIN;
}

static const char *file_type(mode_t mode) {
        if (S_ISDIR(mode))
                return "a directory";
        if (S_ISFIFO(mode))
                return "a FIFO";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISCHR(mode) || S_ISBLK(mode))
                return "a device";
        return "a special file";
}

/* A name that gives no content is an error, never an empty file: its users would be deleted. */
static int report_unusable(RosterBuilder *b, int dfd, const char *name, const Stamp *s) {
        char target[PATH_MAX];
        ssize_t n;

        if (s->error == ENOENT && S_ISLNK(s->st.st_mode)) {
                n = readlinkat(dfd, name, target, sizeof target - 1);
                target[n > 0 ? n : 0] = '\0';
                roster_error(b, 1, 1, "dangling symbolic link: its target %s does not exist (a share "
                             "that is not mounted?)", target);
        } else if (s->error != 0)
                roster_error(b, 1, 1, "cannot read: %s", strerror(s->error));
        else
                roster_error(b, 1, 1, "not a regular file but %s", file_type(s->st.st_mode));
        return 0;
}

static int report_read_error(RosterBuilder *b, int r) {
        if (r == -ENOMEM)
                return r;
        if (r == -EFBIG)
                roster_error(b, 1, 1, "file is larger than %zu bytes", b->limits.max_file_size);
        else
                roster_error(b, 1, 1, "cannot read: %s", strerror(-r));
        return 0;
}

/* Network and userspace filesystems refuse a lease for reasons of their own (no oplock, no
 * delegation), with the same EAGAIN: there it would say nothing about a writer. */
static bool leases_tell_writers(int fd) {
        static const unsigned long remote[] = {
                0x6969,         /* NFS */
                0xFF534D42,     /* CIFS */
                0xFE534D42,     /* SMB2 */
                0x517B,         /* SMB */
                0x00C36400,     /* Ceph */
                0x01021997,     /* 9p */
                0x65735546,     /* FUSE */
                0x5346414F,     /* AFS */
        };
        struct statfs sf;

        if (fstatfs(fd, &sf) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(remote); i++)
                if ((unsigned long) sf.f_type == remote[i])
                        return false;
        return true;
}

/* Whether another process holds the file open for writing: a writer that paused, what it wrote
 * so far perhaps a valid roster of fewer users. The kernel refuses a read lease then. Known only
 * where we may take one (a file of our own, or CAP_LEASE, as root has) on a local filesystem;
 * elsewhere false, and the settle time and the fingerprints are all there is. The lease is given
 * back at once; a writer opening the file meanwhile waits that long, and the signal it sends us
 * is SIGURG, which is ignored unless a program asks for it (SIGIO would end the process). */
bool roster_file_held_open(int fd) {
        if (!leases_tell_writers(fd) || fcntl(fd, F_SETSIG, SIGURG) < 0)
                return false;
        if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0) {
                (void) fcntl(fd, F_SETLEASE, F_UNLCK);
                return false;
        }
        return errno == EAGAIN;
}

/* The file's writer has not closed it: not read now, said apart from a change. */
static int held_open(Loader *ld, const char *path) {
        free(ld->changed_file);
        ld->changed_file = strdup(path);
        ld->changed_how = NULL;
        return -EBUSY;
}

/* Read the open file, which must still be the one stamped and stay so while it is read. */
static int read_stamped(Loader *ld, int fd, const char *path, const struct stat *st, char **buf,
                        size_t *len) {
        struct stat now;
        int r;

        if (fstat(fd, &now) < 0)
                return -errno;
        if (!stamp_same(st, &now))
                return changed(ld, path, "the file was replaced or written to");
        if (roster_file_held_open(fd))
                return held_open(ld, path);
        r = read_fd_bounded(fd, ld->b.limits.max_file_size, buf, len);
        if (r < 0)
                return r;
        if (fstat(fd, &now) < 0 || !stamp_same(st, &now) || *len != (size_t) st->st_size)
                return changed(ld, path, "the file was written to while it was read");
        return 0;
}

static uint64_t timespec_usec(const struct timespec *t) {
        return t->tv_sec < 0 ? 0 : (uint64_t) t->tv_sec * USEC_PER_SEC + (uint64_t) t->tv_nsec / 1000;
}

/* One stamped file, named `name` relative to dfd and `path` in messages. A regular file is opened
 * with O_NONBLOCK: should a FIFO take its place, opening it cannot hang, and fstat() tells. */
static int load_file(Loader *ld, int dfd, const char *name, const char *path, const char *hash_name,
                     const Stamp *s) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        int fd, r;

        r = roster_builder_begin_file(&ld->b, path);
        if (r < 0)
                return r;
        if (s->error != 0 || !S_ISREG(s->st.st_mode))
                return report_unusable(&ld->b, dfd, name, s);
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return errno == ENOENT ? changed(ld, path, "the file vanished (renamed or removed)") :
                                         report_read_error(&ld->b, -errno);
        r = read_stamped(ld, fd, path, &s->st, &buf, &len);
        close(fd);
        if (r == -EAGAIN || r == -EBUSY)
                return r;
        if (r < 0)
                return report_read_error(&ld->b, r);
        roster_builder_hash(&ld->b, hash_name, buf, len);
        if (timespec_usec(&s->st.st_mtim) > ld->newest_usec)
                ld->newest_usec = timespec_usec(&s->st.st_mtim);
        return parse_file(&ld->b, path, buf, len);
}

static int path_join(const char *dir, const char *name, char **ret) {
        size_t n = strlen(dir);

        while (n > 1 && dir[n - 1] == '/')
                n--;
        if (asprintf(ret, "%.*s/%s", (int) n, dir, name) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Test-only hook: with NIMBUS_SYNC_TEST_STOP_AFTER_FILE=NAME in the environment the process stops
 * itself (SIGSTOP) right after it has read the file NAME of a roster folder, so that a test can
 * change the folder at exactly that moment and let it go on with SIGCONT
 * (tests/integration/test_roster_folder.py, tests/daemon/test_watch.py). Never set it in
 * production; unset it costs one getenv() per file. */
static void test_stop_after(const char *name) {
        const char *stop = getenv("NIMBUS_SYNC_TEST_STOP_AFTER_FILE");

        if (stop && streq(stop, name))
                (void) raise(SIGSTOP);
}

static int load_listed(Loader *ld, int dfd, const char *dir, const Listing *l) {
        RosterBuilder *b = &ld->b;
        int r = 0;

        /* Ignoring some files would silently drop their users. */
        if (l->total > b->limits.max_files) {
                b->errors++;
                return diag_add(b->diag, DIAG_ERROR, dir, 0, 0, "more than %zu roster files",
                                b->limits.max_files) == -ENOMEM ? -ENOMEM : 0;
        }
        for (size_t i = 0; r == 0 && i < l->n && !b->full; i++) {
                _cleanup_free_ char *path = NULL;
                const Stamp *s = &l->items[i];

                r = path_join(dir, s->name, &path);
                if (r == 0)
                        r = load_file(ld, dfd, s->name, path, s->name, s);
                if (r == 0)
                        test_stop_after(s->name);
        }
        return r;
}

static int load_folder(Loader *ld, const char *dir, uint64_t *ret_fingerprint) {
        Listing l = { 0 };
        uint64_t after = 0;
        DIR *d;
        int r;

        *ret_fingerprint = 0;
        d = opendir(dir);
        if (!d) {
                r = -errno;
                ld->b.errors++;
                diag_add(ld->b.diag, DIAG_ERROR, dir, 0, 0, "cannot open roster folder: %s", strerror(-r));
                return r;
        }
        r = list_folder(d, ld->b.limits.max_files, &l);
        if (r >= 0) {
                *ret_fingerprint = l.fingerprint;
                r = load_listed(ld, dirfd(d), dir, &l);
        }
        closedir(d);
        listing_done(&l);
        /* The last word: the folder must still be what was listed. */
        if (r == 0 && (roster_fingerprint(dir, &after) < 0 || after != *ret_fingerprint))
                r = changed(ld, dir, "a file was added, removed, renamed or written to");
        return r;
}

/* Append from's entries to to (an empty one takes them over whole); from is left empty. */
static void diag_take(Diag *to, Diag *from) {
        size_t errors = 0, warnings = 0;

        if (to->n == 0 && to->n_errors == 0 && to->n_warnings == 0) {
                diag_clear(to);
                *to = *from;
                *from = (Diag) DIAG_INIT;
                return;
        }
        for (size_t i = 0; i < from->n; i++) {
                const DiagEntry *e = &from->entries[i];

                (void) diag_add(to, e->level, e->file, e->line, e->col, "%s", e->msg);
                *(e->level == DIAG_ERROR ? &errors : &warnings) += 1;
        }
        /* What from counted without keeping still counts. */
        to->n_errors += from->n_errors - errors;
        to->n_warnings += from->n_warnings - warnings;
        to->dropped += from->dropped;
        diag_clear(from);
}

/* What was found while reading goes to the caller, unless the folder changed meanwhile: then it
 * describes no state the folder was ever in, and only the change is said. */
static int hand_over(Loader *ld, int r, Diag *found, Diag *diag) {
        if (r == -EAGAIN)
                diag_add(diag, DIAG_ERROR, ld->changed_file, 0, 0, "changed while it was read: %s",
                         ld->changed_how);
        else if (r == -EBUSY)
                diag_add(diag, DIAG_ERROR, ld->changed_file, 0, 0, "another process holds it open for "
                         "writing (still writing it?): not read until its writer closes it");
        else
                diag_take(diag, found);
        diag_clear(found);
        free(ld->changed_file);
        ld->changed_file = NULL;
        return r;
}

int roster_load_dir_limits(const char *dir, const Config *c, const RosterLimits *limits, Roster **ret,
                           uint64_t *ret_fingerprint, Diag *diag) {
        Diag found = DIAG_INIT;
        Loader ld = { 0 };
        uint64_t fp = 0;
        int r;

        r = roster_builder_init(&ld.b, c, limits, &found);
        if (r == 0)
                r = load_folder(&ld, dir, &fp);
        if (r == 0)
                r = roster_builder_finish(&ld.b, ret);
        if (r == 0)
                (*ret)->newest_usec = ld.newest_usec;
        roster_builder_done(&ld.b);
        if (ret_fingerprint)
                *ret_fingerprint = fp;
        return hand_over(&ld, r, &found, diag);
}

int roster_load_dir(const char *dir, const Config *c, Roster **ret, uint64_t *ret_fingerprint, Diag *diag) {
        return roster_load_dir_limits(dir, c, NULL, ret, ret_fingerprint, diag);
}

/* A file named on the command line: the same checks as in the folder. */
static int load_path(Loader *ld, const char *path) {
        Stamp s;

        if (stamp_at(AT_FDCWD, path, &s) == 0)
                s = (Stamp) { .error = ENOENT };
        return load_file(ld, AT_FDCWD, path, path, path, &s);
}

int roster_load_files_limits(char *const *paths, size_t n, const Config *c, const RosterLimits *limits,
                             Roster **ret, Diag *diag) {
        Diag found = DIAG_INIT;
        Loader ld = { 0 };
        int r;

        r = roster_builder_init(&ld.b, c, limits, &found);
        if (r == 0 && n > ld.b.limits.max_files) {
                ld.b.errors++;
                diag_add(&found, DIAG_ERROR, NULL, 0, 0, "more than %zu roster files", ld.b.limits.max_files);
                n = 0;
        }
        for (size_t i = 0; r == 0 && i < n && !ld.b.full; i++)
                r = load_path(&ld, paths[i]);
        if (r == 0)
                r = roster_builder_finish(&ld.b, ret);
        if (r == 0)
                (*ret)->newest_usec = ld.newest_usec;
        roster_builder_done(&ld.b);
        return hand_over(&ld, r, &found, diag);
}

int roster_load_files(char *const *paths, size_t n, const Config *c, Roster **ret, Diag *diag) {
        return roster_load_files_limits(paths, n, c, NULL, ret, diag);
}

int roster_parse_buffer(const char *path, const char *buf, size_t len, const Config *c,
                        Roster **ret, Diag *diag) {
        RosterBuilder b;
        int r;

        r = roster_builder_init(&b, c, NULL, diag);
        if (r == 0)
                r = roster_builder_begin_file(&b, path);
        if (r == 0) {
                roster_builder_hash(&b, path, buf, len);
                r = parse_file(&b, path, buf, len);
        }
        if (r == 0)
                r = roster_builder_finish(&b, ret);
        roster_builder_done(&b);
        return r;
}
