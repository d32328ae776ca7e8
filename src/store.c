/* store.c: the local state store, one SQLite database (state_dir/state.db).
 *
 * Everything nimbus-sync must remember across restarts lives here: the users it manages and the
 * call in flight for each, held deletes, recent send times for the rate window, small facts, and
 * the run history. The database runs in WAL mode with synchronous=FULL, so a write is on disk when
 * its call returns and a kill -9 at any moment leaves a consistent store. SQLite result codes are
 * turned into negative errno values here and never leak out. Statements are prepared once, on
 * first use, and kept in the Store; a Store is used by one thread at a time. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

#define SCHEMA_VERSION 3
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define BUSY_TIMEOUT_MSEC 5000
#define STORE_WAL_LIMIT 4194304   /* bytes the -wal keeps after a checkpoint; 0 once closed */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
/* Server messages are for the admin's eyes; a kilobyte is plenty and keeps a hostile or broken
 * server from bloating the store. */
#define STORE_ERROR_MAX 1024
/* Names, UPNs and roster paths only inform; they are cut here as the roster cuts names. */
#define STORE_INFO_MAX 4096
/* Finished `apply --user` requests are kept this long, for a follower that looks late. */
#define REQUEST_KEEP_USEC (24 * 3600 * USEC_PER_SEC)

typedef enum StmtId {
        STMT_BEGIN,
        STMT_COMMIT,
        STMT_ROLLBACK,
        STMT_SAVEPOINT,
        STMT_RELEASE,
        STMT_ROLLBACK_TO,
        STMT_USER_LOAD,
        STMT_USER_KINDS,
        STMT_USER_GET,
        STMT_USER_PUT,
        STMT_HOLDSET_CLEAR,
        STMT_HOLDSET_ADD,
        STMT_HOLDS_MARK,
        STMT_HOLDS_SWEEP,
        STMT_HOLDS_APPROVE,
        STMT_HOLDS_LOAD,
        STMT_HOLD_APPROVE_ID,
        STMT_HOLD_KEEP_ID,
        STMT_INFO_PUT,
        STMT_INFO_GET,
        STMT_SEND_BEGIN,
        STMT_SEND_ANSWERED,
        STMT_SEND_CLAMP,
        STMT_SEND_PRUNE,
        STMT_SEND_HELD,
        STMT_SEND_COUNT,
        STMT_REQ_ADD,
        STMT_REQ_PRUNE,
        STMT_REQ_GET,
        STMT_REQ_ACCEPT,
        STMT_REQ_NEXT,
        STMT_REQ_UPDATE,
        STMT_REQ_REMOVE,
        STMT_META_SET,
        STMT_META_DELETE,
        STMT_META_GET,
        STMT_RUN_BEGIN,
        STMT_RUN_FINISH,
        STMT_RUN_LAST,
        STMT_INTEGRITY,
        STMT_DATA_VERSION,
        STMT_HEALTH,
        _STMT_MAX,
} StmtId;

#define USER_COLUMNS "id, target, target_kind, ou, origin, presence, intent, status, hold, " \
                     "attempts, http_status, next_attempt, updated, error"
#define RUN_COLUMNS "id, run_id, started, finished, created, copied, deleted, adopted, failed, " \
                    "held, result"
#define REQUEST_COLUMNS "id, user, requested, state, result, message"
/* The slots held at ?1 (now): ?2 the hold of an answered row, ?3 of one in flight, ?4 the oldest
 * t that can still hold one (so the index on t bounds the scan). */
#define SENDS_HELD "(SELECT min(t, ?1) + CASE WHEN inflight THEN ?3 ELSE ?2 END AS r, inflight " \
                   "FROM sends WHERE t >= ?4) WHERE r > ?1"

static const char *const stmt_sql[_STMT_MAX] = {
        [STMT_BEGIN] = "BEGIN IMMEDIATE",
        [STMT_COMMIT] = "COMMIT",
        [STMT_ROLLBACK] = "ROLLBACK",
        /* Compound operations nest in the caller's transaction when there is one. */
        [STMT_SAVEPOINT] = "SAVEPOINT store_op",
        [STMT_RELEASE] = "RELEASE store_op",
        [STMT_ROLLBACK_TO] = "ROLLBACK TO store_op",
        [STMT_USER_LOAD] = "SELECT " USER_COLUMNS " FROM users ORDER BY id",
        [STMT_USER_KINDS] = "SELECT origin, presence, intent, status, hold, count(*) FROM users "
                            "GROUP BY origin, presence, intent, status, hold",
        [STMT_USER_GET] = "SELECT " USER_COLUMNS " FROM users WHERE id = ?1",
        [STMT_USER_PUT] = "INSERT OR REPLACE INTO users (" USER_COLUMNS ") "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        [STMT_HOLDSET_CLEAR] = "DELETE FROM temp.hold_set",
        /* An id in both held[] and keep[] counts as held. */
        [STMT_HOLDSET_ADD] = "INSERT INTO temp.hold_set (id, held) VALUES (?1, ?2) "
                             "ON CONFLICT (id) DO UPDATE SET held = max(held, excluded.held)",
        [STMT_HOLDS_MARK] = "UPDATE users SET hold = 1 WHERE hold = 0 AND id IN "
                            "(SELECT id FROM temp.hold_set WHERE held = 1)",
        /* "hold != 0" matches the partial index users_hold, so no full scan. */
        [STMT_HOLDS_SWEEP] = "UPDATE users SET hold = 0 WHERE hold != 0 AND id NOT IN "
                             "(SELECT id FROM temp.hold_set)",
        [STMT_HOLDS_APPROVE] = "UPDATE users SET hold = 2 WHERE hold != 0 AND hold IN (1, 3)",
        [STMT_HOLDS_LOAD] = "SELECT " USER_COLUMNS " FROM users WHERE hold != 0 ORDER BY id",
        [STMT_HOLD_APPROVE_ID] = "UPDATE users SET hold = 2 WHERE id = ?1 AND hold IN (1, 3)",
        [STMT_HOLD_KEEP_ID] = "UPDATE users SET hold = 3 WHERE id = ?1 AND hold = 1",
        [STMT_INFO_PUT] = "INSERT OR REPLACE INTO user_info (id, name, upn, source, directory) "
                         "VALUES (?1, ?2, ?3, ?4, ?5)",
        [STMT_INFO_GET] = "SELECT name, upn, source, directory FROM user_info WHERE id = ?1",
        [STMT_SEND_BEGIN] = "INSERT INTO sends (t, inflight) VALUES (?1, 1)",
        [STMT_SEND_ANSWERED] = "UPDATE sends SET t = ?2, inflight = 0 WHERE rowid = ?1",
        [STMT_SEND_CLAMP] = "UPDATE sends SET t = ?1 WHERE t > ?1",
        [STMT_SEND_PRUNE] = "DELETE FROM sends WHERE t < ?1",
        [STMT_SEND_HELD] = "SELECT r, inflight FROM " SENDS_HELD " ORDER BY r DESC LIMIT 1 OFFSET ?5",
        [STMT_SEND_COUNT] = "SELECT count(*) FROM " SENDS_HELD,
        [STMT_REQ_ADD] = "INSERT INTO requests (user, requested, state) VALUES (?1, ?2, 0)",
        [STMT_REQ_PRUNE] = "DELETE FROM requests WHERE state = 2 AND requested < ?1",
        [STMT_REQ_GET] = "SELECT " REQUEST_COLUMNS " FROM requests WHERE id = ?1",
        [STMT_REQ_ACCEPT] = "UPDATE requests SET state = 1 WHERE state = 0",
        [STMT_REQ_NEXT] = "SELECT " REQUEST_COLUMNS " FROM requests WHERE state = 1 ORDER BY id LIMIT 1",
        [STMT_REQ_UPDATE] = "UPDATE requests SET state = ?2, result = ?3, message = ?4 WHERE id = ?1",
        [STMT_REQ_REMOVE] = "DELETE FROM requests WHERE id = ?1",
        [STMT_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [STMT_META_DELETE] = "DELETE FROM meta WHERE key = ?1",
        [STMT_META_GET] = "SELECT value FROM meta WHERE key = ?1",
        [STMT_RUN_BEGIN] = "INSERT INTO runs (run_id, started, finished, created, copied, deleted, "
                           "adopted, failed, held, result) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        [STMT_RUN_FINISH] = "UPDATE runs SET finished = ?2, created = ?3, copied = ?4, "
                            "deleted = ?5, adopted = ?6, failed = ?7, held = ?8, result = ?9 "
                            "WHERE id = ?1",
        [STMT_RUN_LAST] = "SELECT " RUN_COLUMNS " FROM runs ORDER BY id DESC LIMIT 1",
        [STMT_INTEGRITY] = "PRAGMA integrity_check(1)",
        [STMT_DATA_VERSION] = "PRAGMA data_version",
        [STMT_HEALTH] = "SELECT count(*) FROM meta",
};

/* migrations[v] takes a store from version v to v + 1. All steps run in one transaction together
 * with user_version, so a store is either as it was or complete. */
static const char schema_v1[] =
        "CREATE TABLE users ("
        " id BLOB PRIMARY KEY, target BLOB, target_kind INT, ou BLOB, origin INT, presence INT,"
        " intent INT, status INT, hold INT, attempts INT, http_status INT, next_attempt INT,"
        " updated INT, error TEXT) WITHOUT ROWID;"
        /* Only the few users with a hold are indexed: holds are found without a scan. */
        "CREATE INDEX users_hold ON users (hold) WHERE hold != 0;"
        "CREATE TABLE sends (t INTEGER NOT NULL);"
        "CREATE INDEX sends_t ON sends (t);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, run_id TEXT, started INT, finished INT,"
        " created INT, copied INT, deleted INT, adopted INT, failed INT, held INT, result INT);";

/* Version 2: a send is in flight until its answer (rows of version 1 were all answered), and the
 * requests `apply --user` hands to a running daemon. */
static const char schema_v2[] =
        "ALTER TABLE sends ADD COLUMN inflight INT NOT NULL DEFAULT 0;"
        /* AUTOINCREMENT: ids are never reused, so a follower never takes another's for its own. */
        "CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, user BLOB NOT NULL,"
        " requested INT NOT NULL, state INT NOT NULL, result INT, message TEXT);";

/* Version 3: what the audit trail names a user by (store_put_user_info()). A table of its own,
 * so loading the users for a plan reads no more than before, and store_put_user() (INSERT OR
 * REPLACE of the whole users row) cannot wipe it. */
static const char schema_v3[] =
        "CREATE TABLE user_info (id BLOB PRIMARY KEY, name TEXT, upn TEXT, source TEXT,"
        " directory INT NOT NULL DEFAULT 0) WITHOUT ROWID;";

static const char *const migrations[SCHEMA_VERSION] = { schema_v1, schema_v2, schema_v3 };

struct Store {
        sqlite3 *db;
        sqlite3_stmt *stmt[_STMT_MAX];
        int version;            /* user_version: a read-only look at an older store lacks tables */
        bool no_directory_names; /* the table was missing when looked for: no group read yet */
        char *path;
        dev_t dev;              /* of the file opened: store_check_health() notices a new one */
        ino_t ino;
        char *fault_path;       /* STORE_FAULT_ENV, tests only */
};

static int errno_from_sqlite(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        case SQLITE_READONLY:
                return -EROFS;
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        default:
                return -EIO;
        }
}

/* CANTOPEN hides the reason; the failing system call still knows it. */
static int errno_from_db(sqlite3 *db, int rc) {
        if ((rc & 0xff) == SQLITE_CANTOPEN && db && sqlite3_system_errno(db) > 0)
                return -sqlite3_system_errno(db);
        return errno_from_sqlite(rc);
}

static void stmt_resetp(sqlite3_stmt **p) {
        if (*p) {
                sqlite3_reset(*p);
                sqlite3_clear_bindings(*p);
        }
}
/* A statement borrowed from the Store is reset and unbound when it goes out of scope. */
#define _cleanup_reset_ __attribute__((cleanup(stmt_resetp)))

/* The errno a test asked for (see STORE_FAULT_ENV), or 0. */
static int injected_fault(const Store *s) {
        static const struct { const char *name; int error; } names[] = {
                { "EIO", EIO }, { "EBUSY", EBUSY }, { "EBADMSG", EBADMSG }, { "ENOSPC", ENOSPC },
        };
        char buf[16] = "";
        int fd = open(s->fault_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        buf[strcspn(buf, " \n")] = 0;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(buf, names[i].name))
                        return -names[i].error;
        return -EIO;
}

static int stmt_get(Store *s, StmtId id, sqlite3_stmt **ret) {
        int r;

        if (s->fault_path && (r = injected_fault(s)) < 0)
                return r;
        if (!s->stmt[id]) {
                int rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                            &s->stmt[id], NULL);
                if (rc != SQLITE_OK)
                        return errno_from_sqlite(rc);
        }
        *ret = s->stmt[id];
        return 0;
}

/* Run a statement that returns no rows; the caller has bound its parameters. */
static int step_done(sqlite3_stmt *st) {
        int rc = sqlite3_step(st);
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(rc == SQLITE_ROW ? SQLITE_MISUSE : rc);
}

static int exec_simple(Store *s, StmtId id) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st);
        return r < 0 ? r : step_done(st);
}

static int bind_guid(sqlite3_stmt *st, int idx, const Guid *g) {
        /* SQLITE_STATIC: every Guid outlives the step that reads it. */
        if (guid_is_null(g))
                return sqlite3_bind_null(st, idx);
        return sqlite3_bind_blob(st, idx, g->b, sizeof g->b, SQLITE_STATIC);
}

static int bind_u64(sqlite3_stmt *st, int idx, uint64_t v) {
        return sqlite3_bind_int64(st, idx, (sqlite3_int64) v); /* stored bit for bit */
}

static int column_guid(sqlite3_stmt *st, int col, Guid *ret) {
        if (sqlite3_column_type(st, col) == SQLITE_NULL) {
                *ret = (Guid) { 0 };
                return 0;
        }
        const void *b = sqlite3_column_blob(st, col);
        if (!b || sqlite3_column_bytes(st, col) != (int) sizeof ret->b)
                return -EBADMSG;
        memcpy(ret->b, b, sizeof ret->b);
        return 0;
}

static int column_error(sqlite3_stmt *st, int col, char **ret) {
        const char *t = (const char *) sqlite3_column_text(st, col);
        if (!t) {
                *ret = NULL;
                return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : 0;
        }
        size_t len = utf8_prefix(t, (size_t) sqlite3_column_bytes(st, col), STORE_ERROR_MAX);
        *ret = strndup(t, len);
        return *ret ? 0 : -ENOMEM;
}

/* Read the row at st (columns in USER_COLUMNS order) into u; u->error is allocated. */
static int read_user(sqlite3_stmt *st, StoreUser *u) {
        int r;

        *u = (StoreUser) { 0 };
        if ((r = column_guid(st, 0, &u->id)) < 0 || (r = column_guid(st, 1, &u->target)) < 0 ||
            (r = column_guid(st, 3, &u->ou)) < 0)
                return r;
        u->target_kind = (uint8_t) sqlite3_column_int(st, 2);
        u->origin = (uint8_t) sqlite3_column_int(st, 4);
        u->presence = (uint8_t) sqlite3_column_int(st, 5);
        u->intent = (uint8_t) sqlite3_column_int(st, 6);
        u->status = (uint8_t) sqlite3_column_int(st, 7);
        u->hold = (uint8_t) sqlite3_column_int(st, 8);
        u->attempts = (uint16_t) sqlite3_column_int(st, 9);
        u->http_status = (uint16_t) sqlite3_column_int(st, 10);
        u->next_attempt_usec = (uint64_t) sqlite3_column_int64(st, 11);
        u->updated_usec = (uint64_t) sqlite3_column_int64(st, 12);
        return column_error(st, 13, &u->error);
}

/* --- opening ------------------------------------------------------------------------------ */

static int get_user_version(Store *s, int *ret) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
        if (rc == SQLITE_OK) {
                rc = sqlite3_step(st);
                if (rc == SQLITE_ROW) {
                        *ret = sqlite3_column_int(st, 0);
                        rc = SQLITE_OK;
                }
        }
        sqlite3_finalize(st);
        return errno_from_sqlite(rc);
}

static int exec_sql(Store *s, const char *sql) {
        return errno_from_sqlite(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

/* Bring the schema up to date unless another process has done so since we looked. */
static int migrate(Store *s) {
        int version = 0, r;

        if ((r = exec_sql(s, "BEGIN IMMEDIATE")) < 0)
                return r;
        r = get_user_version(s, &version);
        if (r >= 0 && (version < 0 || version > SCHEMA_VERSION))
                r = -EPROTO;
        for (int v = version; r >= 0 && v < SCHEMA_VERSION; v++)
                r = exec_sql(s, migrations[v]);
        if (r >= 0 && version < SCHEMA_VERSION)
                r = exec_sql(s, "PRAGMA user_version = " STRINGIFY(SCHEMA_VERSION));
        if (r >= 0)
                r = exec_sql(s, "COMMIT");
        if (r < 0)
                (void) exec_sql(s, "ROLLBACK");
        return r;
}

static int configure(Store *s, bool read_only) {
        int r;

        if (sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MSEC) != SQLITE_OK)
                return -EIO;
        if (!read_only) {
                /* The -wal and -shm files stay when the last writer closes: a reader that may not
                 * create files in state_dir (a member of the group) can open the store only
                 * while they exist. A size limit empties the -wal on close all the same. */
                int persist = 1;

                if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist) != SQLITE_OK)
                        return -EIO;
                if ((r = exec_sql(s, "PRAGMA journal_size_limit=" STRINGIFY(STORE_WAL_LIMIT))) < 0)
                        return r;
        }
        if (!read_only) {
                /* journal_mode answers with the mode in force; anything but "wal" means it did
                 * not switch (no shared memory on this file system, for instance). */
                sqlite3_stmt *st = NULL;
                int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
                if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
                        rc = sqlite3_stricmp((const char *) sqlite3_column_text(st, 0), "wal") == 0
                                     ? SQLITE_OK : SQLITE_IOERR;
                sqlite3_finalize(st);
                if (rc != SQLITE_OK)
                        return errno_from_sqlite(rc);
        }
        /* temp_store=MEMORY: the scratch table of store_sync_holds() never needs a temporary
         * file, which a sandboxed service may have nowhere to write. */
        if ((r = exec_sql(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                             "PRAGMA temp_store=MEMORY")) < 0)
                return r;
        return 0;
}

static int check_schema(Store *s, bool read_only) {
        int version = 0, r;

        if ((r = get_user_version(s, &version)) < 0)
                return r;
        if (version > SCHEMA_VERSION)
                return -EPROTO;
        s->version = version;
        if (version == SCHEMA_VERSION)
                return 0;
        /* An empty file is a store nobody has set up yet. An older one is upgraded by the first
         * process that may write it; until then readers see what it has. */
        if (read_only)
                return version == 0 ? -ENOENT : 0;
        r = migrate(s);
        if (r >= 0)
                s->version = SCHEMA_VERSION;
        return r;
}

/* The scratch table of store_sync_holds(). Made once per connection, outside any transaction, so
 * no rollback can take it away. */
static int create_temp_tables(Store *s) {
        return exec_sql(s, "CREATE TEMP TABLE IF NOT EXISTS hold_set "
                           "(id BLOB PRIMARY KEY, held INT NOT NULL) WITHOUT ROWID");
}

/* The store holds who we manage: readable by the owner and its group (nimbus-sync), whose
 * members may run `status` and `plan`, and by no one else, whatever the umask. SQLite gives the
 * -wal and -shm files the same mode. */
static int create_file(const char *path) {
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, STORE_FILE_MODE);
        struct stat st;
        int r = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (st.st_size == 0 && (st.st_mode & 07777) != STORE_FILE_MODE && fchmod(fd, STORE_FILE_MODE) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int open_db(const char *path, bool read_only, sqlite3 **ret) {
        struct stat st;
        sqlite3 *db = NULL;
        int flags = SQLITE_OPEN_NOMUTEX |
                    (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);

        if (read_only && stat(path, &st) < 0)
                return -errno;
        if (!read_only) {
                int r = create_file(path);
                if (r < 0)
                        return r;
        }
        int rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc != SQLITE_OK) {
                int r = errno_from_db(db, rc);
                sqlite3_close(db);
                return r;
        }
        *ret = db;
        return 0;
}

/* Remember which file we opened, and whether a test wants faults. */
static int store_identify(Store *s) {
        const char *fault = secure_getenv(STORE_FAULT_ENV);
        struct stat st;

        if (stat(s->path, &st) < 0)
                return -errno;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        if (fault && *fault && !(s->fault_path = strdup(fault)))
                return -ENOMEM;
        return 0;
}

int store_open(const char *state_dir, bool read_only, Store **ret) {
        int r;

        if (!state_dir || !ret)
                return -EINVAL;
        Store *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (asprintf(&s->path, "%s/%s", state_dir, STORE_FILE_NAME) < 0) {
                s->path = NULL;
                store_close(s);
                return -ENOMEM;
        }
        if ((r = open_db(s->path, read_only, &s->db)) < 0 || (r = configure(s, read_only)) < 0 ||
            (r = check_schema(s, read_only)) < 0 ||
            (!read_only && (r = create_temp_tables(s)) < 0) || (r = store_identify(s)) < 0) {
                store_close(s);
                return r;
        }
        *ret = s;
        return 0;
}

Store *store_close(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < _STMT_MAX; i++)
                sqlite3_finalize(s->stmt[i]);
        /* The last connection to close checkpoints the WAL into the main file. */
        sqlite3_close(s->db);
        free(s->path);
        free(s->fault_path);
        free(s);
        return NULL;
}

/* --- transactions -------------------------------------------------------------------------- */

int store_begin(Store *s) {
        return exec_simple(s, STMT_BEGIN);
}

int store_commit(Store *s) {
        return exec_simple(s, STMT_COMMIT);
}

int store_rollback(Store *s) {
        return exec_simple(s, STMT_ROLLBACK);
}

/* A compound operation is atomic on its own, and part of the caller's transaction if any.
 * Outside a transaction it takes the write lock up front (BEGIN IMMEDIATE), so it never has to
 * upgrade a read lock, which WAL mode can refuse without waiting. */
static int op_begin(Store *s, bool *ret_own) {
        *ret_own = sqlite3_get_autocommit(s->db);
        return exec_simple(s, *ret_own ? STMT_BEGIN : STMT_SAVEPOINT);
}

static int op_end(Store *s, bool own, int r) {
        if (r >= 0) {
                int k = exec_simple(s, own ? STMT_COMMIT : STMT_RELEASE);
                if (k >= 0)
                        return r;
                r = k;
        }
        if (own)
                (void) exec_simple(s, STMT_ROLLBACK);
        else if (exec_simple(s, STMT_ROLLBACK_TO) >= 0)
                (void) exec_simple(s, STMT_RELEASE);
        return r;
}

/* --- users --------------------------------------------------------------------------------- */

void store_user_clear(StoreUser *u) {
        if (!u)
                return;
        free(u->error);
        u->error = NULL;
}

void store_users_free(StoreUser *u, size_t n) {
        if (!u)
                return;
        for (size_t i = 0; i < n; i++)
                free(u[i].error);
        free(u);
}

/* Every row of the statement, appended to *u (*n rows, *cap allocated). */
static int read_users(sqlite3_stmt *st, StoreUser **u, size_t *n, size_t *cap) {
        int r, rc;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if ((r = array_grow((void **) u, cap, *n + 1, sizeof **u, 1024)) < 0 ||
                    (r = read_user(st, &(*u)[*n])) < 0)
                        return r;
                (*n)++;
        }
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(rc);
}

/* Every user the prepared statement `id` selects, sorted as it sorts them. */
static int load_users_by(Store *s, StmtId id, StoreUser **ret, size_t *ret_n) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        StoreUser *u = NULL;
        size_t n = 0, cap = 0;
        int r;

        if ((r = stmt_get(s, id, &st)) < 0)
                return r;
        r = read_users(st, &u, &n, &cap);
        if (r < 0) {
                store_users_free(u, n);
                return r;
        }
        *ret = u;
        *ret_n = n;
        return 0;
}

int store_load_users(Store *s, StoreUser **ret, size_t *ret_n) {
        return load_users_by(s, STMT_USER_LOAD, ret, ret_n);
}

int store_user_kinds(Store *s, StoreUserKind **ret, size_t *ret_n) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        StoreUserKind *k = NULL;
        size_t n = 0, cap = 0;
        int r, rc;

        if ((r = stmt_get(s, STMT_USER_KINDS, &st)) < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                if ((r = array_grow((void **) &k, &cap, n + 1, sizeof *k, 64)) < 0) {
                        free(k);
                        return r;
                }
                k[n++] = (StoreUserKind) {
                        .origin = (uint8_t) sqlite3_column_int(st, 0),
                        .presence = (uint8_t) sqlite3_column_int(st, 1),
                        .intent = (uint8_t) sqlite3_column_int(st, 2),
                        .status = (uint8_t) sqlite3_column_int(st, 3),
                        .hold = (uint8_t) sqlite3_column_int(st, 4),
                        .n = (size_t) sqlite3_column_int64(st, 5),
                };
        }
        if (rc != SQLITE_DONE) {
                free(k);
                return errno_from_sqlite(rc);
        }
        *ret = k;
        *ret_n = n;
        return 0;
}

int store_get_user(Store *s, const Guid *id, StoreUser *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_USER_GET, &st)) < 0)
                return r;
        if (sqlite3_bind_blob(st, 1, id->b, sizeof id->b, SQLITE_STATIC) != SQLITE_OK)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        return read_user(st, ret);
}

static int bind_user(sqlite3_stmt *st, const StoreUser *u) {
        int rc = SQLITE_OK;

        if (guid_is_null(&u->id))
                return -EINVAL;
        rc |= bind_guid(st, 1, &u->id);
        rc |= bind_guid(st, 2, &u->target);
        rc |= sqlite3_bind_int(st, 3, u->target_kind);
        rc |= bind_guid(st, 4, &u->ou);
        rc |= sqlite3_bind_int(st, 5, u->origin);
        rc |= sqlite3_bind_int(st, 6, u->presence);
        rc |= sqlite3_bind_int(st, 7, u->intent);
        rc |= sqlite3_bind_int(st, 8, u->status);
        rc |= sqlite3_bind_int(st, 9, u->hold);
        rc |= sqlite3_bind_int(st, 10, u->attempts);
        rc |= sqlite3_bind_int(st, 11, u->http_status);
        rc |= bind_u64(st, 12, u->next_attempt_usec);
        rc |= bind_u64(st, 13, u->updated_usec);
        if (u->error)
                rc |= sqlite3_bind_text(st, 14, u->error,
                                        (int) utf8_prefix(u->error, strlen(u->error), STORE_ERROR_MAX),
                                        SQLITE_STATIC);
        else
                rc |= sqlite3_bind_null(st, 14);
        /* Binding only fails for lack of memory (or misuse, which would be our bug). */
        return rc == SQLITE_OK ? 0 : -ENOMEM;
}

int store_put_user(Store *s, const StoreUser *u) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_USER_PUT, &st)) < 0 || (r = bind_user(st, u)) < 0)
                return r;
        return step_done(st);
}

/* --- holds --------------------------------------------------------------------------------- */

static int hold_set_add(Store *s, const Guid *ids, size_t n, bool held) {
        for (size_t i = 0; i < n; i++) {
                _cleanup_reset_ sqlite3_stmt *st = NULL;
                int r = stmt_get(s, STMT_HOLDSET_ADD, &st);
                if (r < 0)
                        return r;
                if (sqlite3_bind_blob(st, 1, ids[i].b, sizeof ids[i].b, SQLITE_STATIC) != SQLITE_OK ||
                    sqlite3_bind_int(st, 2, held) != SQLITE_OK)
                        return -ENOMEM;
                if ((r = step_done(st)) < 0)
                        return r;
        }
        return 0;
}

/* The ids given are collected in a temporary table, so marking and sweeping are two set
 * operations inside SQLite however many ids there are. */
static int hold_set_fill(Store *s, const Guid *held, size_t n_held, const Guid *keep, size_t n_keep) {
        int r;

        if ((r = exec_simple(s, STMT_HOLDSET_CLEAR)) < 0 ||
            (r = hold_set_add(s, held, n_held, true)) < 0 ||
            (r = hold_set_add(s, keep, n_keep, false)) < 0)
                return r;
        return 0;
}

int store_sync_holds(Store *s, const Guid *held, size_t n_held, const Guid *keep, size_t n_keep) {
        bool own;
        int r;

        if ((n_held > 0 && !held) || (n_keep > 0 && !keep))
                return -EINVAL;
        if ((r = op_begin(s, &own)) < 0)
                return r;
        if ((r = hold_set_fill(s, held, n_held, keep, n_keep)) >= 0 &&
            (r = exec_simple(s, STMT_HOLDS_MARK)) >= 0 &&
            (r = exec_simple(s, STMT_HOLDS_SWEEP)) >= 0)
                r = exec_simple(s, STMT_HOLDSET_CLEAR);
        return op_end(s, own, r);
}

/* Counts STORE_META_APPROVALS up by one. */
static int count_approval(Store *s) {
        _cleanup_free_ char *v = NULL;
        char buf[32];
        int r = store_meta_get(s, STORE_META_APPROVALS, &v);

        if (r < 0 && r != -ENOENT)
                return r;
        snprintf(buf, sizeof buf, "%llu", (v ? strtoull(v, NULL, 10) : 0) + 1);
        return store_meta_set(s, STORE_META_APPROVALS, buf);
}

int store_approve_holds(Store *s, size_t *ret_n) {
        size_t n = 0;
        bool own;
        int r;

        if ((r = op_begin(s, &own)) < 0)
                return r;
        if ((r = exec_simple(s, STMT_HOLDS_APPROVE)) >= 0) {
                n = (size_t) sqlite3_changes64(s->db);
                if (n > 0)
                        r = count_approval(s);
        }
        r = op_end(s, own, r);
        if (r >= 0 && ret_n)
                *ret_n = n;
        return r;
}

int store_load_holds(Store *s, StoreUser **ret, size_t *ret_n) {
        return load_users_by(s, STMT_HOLDS_LOAD, ret, ret_n);
}

static int hold_one(Store *s, StmtId id_stmt, const Guid *id, size_t *ret_n) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id_stmt, &st);

        if (r < 0)
                return r;
        if (bind_guid(st, 1, id) != SQLITE_OK)
                return -ENOMEM;
        if ((r = step_done(st)) < 0)
                return r;
        *ret_n += (size_t) sqlite3_changes64(s->db);
        return 0;
}

/* One statement over a list of users, in one transaction; *ret_n: rows it changed. With
 * count_approvals, a change moves the approvals counter the daemon watches. */
static int hold_each(Store *s, StmtId id_stmt, const Guid *ids, size_t n, bool count_approvals,
                     size_t *ret_n) {
        size_t done = 0;
        bool own;
        int r;

        if (n > 0 && !ids)
                return -EINVAL;
        if ((r = op_begin(s, &own)) < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = hold_one(s, id_stmt, &ids[i], &done);
        if (r >= 0 && done > 0 && count_approvals)
                r = count_approval(s);
        r = op_end(s, own, r);
        if (r >= 0 && ret_n)
                *ret_n = done;
        return r;
}

int store_approve_ids(Store *s, const Guid *ids, size_t n, size_t *ret_n) {
        return hold_each(s, STMT_HOLD_APPROVE_ID, ids, n, true, ret_n);
}

int store_keep_ids(Store *s, const Guid *ids, size_t n) {
        return hold_each(s, STMT_HOLD_KEEP_ID, ids, n, false, NULL);
}

/* --- what the audit trail names a user by ---------------------------------------------------- */

static int bind_info_text(sqlite3_stmt *st, int idx, const char *v) {
        if (!v || !*v)
                return sqlite3_bind_null(st, idx);
        return sqlite3_bind_text(st, idx, v, (int) utf8_prefix(v, strlen(v), STORE_INFO_MAX), SQLITE_STATIC);
}

int store_put_user_info(Store *s, const Guid *id, const StoreUserInfo *info) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!id || guid_is_null(id) || !info)
                return -EINVAL;
        if ((r = stmt_get(s, STMT_INFO_PUT, &st)) < 0)
                return r;
        if (bind_guid(st, 1, id) != SQLITE_OK || bind_info_text(st, 2, info->name) != SQLITE_OK ||
            bind_info_text(st, 3, info->upn) != SQLITE_OK || bind_info_text(st, 4, info->source) != SQLITE_OK ||
            sqlite3_bind_int(st, 5, info->directory) != SQLITE_OK)
                return -ENOMEM;
        return step_done(st);
}

static int column_info(sqlite3_stmt *st, int col, char **ret) {
        const char *t = (const char *) sqlite3_column_text(st, col);

        *ret = NULL;
        if (!t)
                return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : 0;
        *ret = strndup(t, utf8_prefix(t, (size_t) sqlite3_column_bytes(st, col), STORE_INFO_MAX));
        return *ret ? 0 : -ENOMEM;
}

int store_get_user_info(Store *s, const Guid *id, StoreUserInfo *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        StoreUserInfo info = { 0 };
        int r, rc;

        /* A read-only look at a store no writer has upgraded yet: nothing is known. */
        if (s->version < 3)
                return -ENOENT;
        if ((r = stmt_get(s, STMT_INFO_GET, &st)) < 0)
                return r;
        if (bind_guid(st, 1, id) != SQLITE_OK)
                return -ENOMEM;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -ENOENT : errno_from_sqlite(rc);
        if ((r = column_info(st, 0, &info.name)) < 0 || (r = column_info(st, 1, &info.upn)) < 0 ||
            (r = column_info(st, 2, &info.source)) < 0) {
                store_user_info_clear(&info);
                return r;
        }
        info.directory = sqlite3_column_int(st, 3) != 0;
        *ret = info;
        return 0;
}

void store_user_info_clear(StoreUserInfo *info) {
        if (!info)
                return;
        free(info->name);
        free(info->upn);
        free(info->source);
        *info = (StoreUserInfo) { 0 };
}

/* --- sends ------------------------------------------------------------------------------- */

static int exec_u64(Store *s, StmtId id, uint64_t v) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r = stmt_get(s, id, &st);
        if (r < 0)
                return r;
        if (bind_u64(st, 1, v) != SQLITE_OK)
                return -ENOMEM;
        return step_done(st);
}

static uint64_t sub_sat(uint64_t a, uint64_t b) {
        return a > b ? a - b : 0;
}

/* ?1 .. ?4 of SENDS_HELD. */
static int bind_held(sqlite3_stmt *st, uint64_t now, uint64_t hold, uint64_t hold_in_flight) {
        uint64_t longest = hold > hold_in_flight ? hold : hold_in_flight;
        int rc = bind_u64(st, 1, now) | bind_u64(st, 2, hold) | bind_u64(st, 3, hold_in_flight) |
                 bind_u64(st, 4, sub_sat(now, longest));

        return rc == SQLITE_OK ? 0 : -ENOMEM;
}

static int nth_held(Store *s, uint64_t now, uint64_t hold, uint64_t hold_in_flight, unsigned nth,
                    StoreSlot *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r, rc;

        if ((r = stmt_get(s, STMT_SEND_HELD, &st)) < 0)
                return r;
        if ((r = bind_held(st, now, hold, hold_in_flight)) < 0)
                return r;
        if (sqlite3_bind_int64(st, 5, (sqlite3_int64) nth - 1) != SQLITE_OK)
                return -ENOMEM;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        *ret = (StoreSlot) { .release_usec = (uint64_t) sqlite3_column_int64(st, 0),
                             .in_flight = sqlite3_column_int(st, 1) != 0 };
        return 0;
}

int store_rate_slot(Store *s, uint64_t now, uint64_t hold, uint64_t hold_in_flight, unsigned limit,
                    StoreSlot *ret) {
        uint64_t longest = hold > hold_in_flight ? hold : hold_in_flight;
        bool own;
        int r;

        if (limit == 0 || !ret)
                return -EINVAL;
        if ((r = op_begin(s, &own)) < 0)
                return r;
        /* A start "in the future" happened before a clock step back: counting it from now waits
         * one full window, instead of as long as the step. */
        if ((r = exec_u64(s, STMT_SEND_CLAMP, now)) >= 0 &&
            (r = exec_u64(s, STMT_SEND_PRUNE, sub_sat(now, longest))) >= 0)
                r = nth_held(s, now, hold, hold_in_flight, limit, ret);
        if (r == -ENOENT) {   /* fewer than the limit: an answer, not a failure; the clean-up stays */
                int k = op_end(s, own, 0);
                return k < 0 ? k : -ENOENT;
        }
        return op_end(s, own, r);
}

int store_rate_used(Store *s, uint64_t now, uint64_t hold, uint64_t hold_in_flight, unsigned *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r, rc;

        if ((r = stmt_get(s, STMT_SEND_COUNT, &st)) < 0 ||
            (r = bind_held(st, now, hold, hold_in_flight)) < 0)
                return r;
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
                return errno_from_sqlite(rc);
        sqlite3_int64 n = sqlite3_column_int64(st, 0);
        *ret = n < 0 ? 0 : n > UINT_MAX ? UINT_MAX : (unsigned) n;
        return 0;
}

int store_send_begin(Store *s, uint64_t t, int64_t *ret_id) {
        int r = exec_u64(s, STMT_SEND_BEGIN, t);

        if (r >= 0 && ret_id)
                *ret_id = sqlite3_last_insert_rowid(s->db);
        return r;
}

int store_send_answered(Store *s, int64_t id, uint64_t t) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_SEND_ANSWERED, &st)) < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK || bind_u64(st, 2, t) != SQLITE_OK)
                return -ENOMEM;
        return step_done(st);
}

int store_rate_paused_until(Store *s, uint64_t *ret) {
        _cleanup_free_ char *v = NULL;
        int r = store_meta_get(s, STORE_META_RATE_PAUSE, &v);

        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        *ret = strtoull(v, NULL, 10);
        return 0;
}

int store_rate_pause(Store *s, uint64_t until) {
        char buf[32];
        uint64_t old = 0;
        bool own;
        int r;

        if ((r = op_begin(s, &own)) < 0)
                return r;
        r = store_rate_paused_until(s, &old);
        if (r >= 0 && until > old) {
                snprintf(buf, sizeof buf, "%" PRIu64, until);
                r = store_meta_set(s, STORE_META_RATE_PAUSE, buf);
        }
        return op_end(s, own, r);
}

/* --- requests ------------------------------------------------------------------------------ */

static int read_request(sqlite3_stmt *st, StoreRequest *ret) {
        StoreRequest q = { .id = sqlite3_column_int64(st, 0) };
        const char *m = (const char *) sqlite3_column_text(st, 5);
        int r;

        if ((r = column_guid(st, 1, &q.user)) < 0)
                return r;
        q.requested_usec = (uint64_t) sqlite3_column_int64(st, 2);
        q.state = (uint8_t) sqlite3_column_int(st, 3);
        q.result = sqlite3_column_int(st, 4);
        if (m)
                snprintf(q.message, sizeof q.message, "%.*s",
                         (int) utf8_prefix(m, strlen(m), sizeof q.message - 1), m);
        *ret = q;
        return 0;
}

static int request_query(Store *s, StmtId id, int64_t key, StoreRequest *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, id, &st)) < 0)
                return r;
        if (id == STMT_REQ_GET && sqlite3_bind_int64(st, 1, key) != SQLITE_OK)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        return read_request(st, ret);
}

int store_request_get(Store *s, int64_t id, StoreRequest *ret) {
        return request_query(s, STMT_REQ_GET, id, ret);
}

int store_request_next(Store *s, StoreRequest *ret) {
        return request_query(s, STMT_REQ_NEXT, 0, ret);
}

int store_requests_accept(Store *s, size_t *ret_n) {
        int r = exec_simple(s, STMT_REQ_ACCEPT);

        if (r >= 0 && ret_n)
                *ret_n = (size_t) sqlite3_changes64(s->db);
        return r;
}

static int request_insert(Store *s, const Guid *user, uint64_t now, int64_t *ret_id) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_REQ_ADD, &st)) < 0)
                return r;
        if (sqlite3_bind_blob(st, 1, user->b, sizeof user->b, SQLITE_STATIC) != SQLITE_OK ||
            bind_u64(st, 2, now) != SQLITE_OK)
                return -ENOMEM;
        if ((r = step_done(st)) < 0)
                return r;
        *ret_id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_request_add(Store *s, const Guid *user, uint64_t now, int64_t *ret_id) {
        bool own;
        int r;

        if (!user || guid_is_null(user) || !ret_id)
                return -EINVAL;
        if ((r = op_begin(s, &own)) < 0)
                return r;
        if ((r = exec_u64(s, STMT_REQ_PRUNE, sub_sat(now, REQUEST_KEEP_USEC))) >= 0)
                r = request_insert(s, user, now, ret_id);
        return op_end(s, own, r);
}

int store_request_update(Store *s, const StoreRequest *req) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_REQ_UPDATE, &st)) < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, req->id) != SQLITE_OK ||
            sqlite3_bind_int(st, 2, req->state) != SQLITE_OK ||
            sqlite3_bind_int(st, 3, req->result) != SQLITE_OK ||
            sqlite3_bind_text(st, 4, req->message, (int) strnlen(req->message, sizeof req->message),
                              SQLITE_STATIC) != SQLITE_OK)
                return -ENOMEM;
        if ((r = step_done(st)) < 0)
                return r;
        return sqlite3_changes64(s->db) > 0 ? 0 : -ENOENT;
}

int store_request_remove(Store *s, int64_t id) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_REQ_REMOVE, &st)) < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, id) != SQLITE_OK)
                return -ENOMEM;
        return step_done(st);
}

/* --- meta ---------------------------------------------------------------------------------- */

int store_meta_set(Store *s, const char *key, const char *value) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!key)
                return -EINVAL;
        if ((r = stmt_get(s, value ? STMT_META_SET : STMT_META_DELETE, &st)) < 0)
                return r;
        if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK ||
            (value && sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC) != SQLITE_OK))
                return -ENOMEM;
        return step_done(st);
}

int store_meta_get(Store *s, const char *key, char **ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if (!key)
                return -EINVAL;
        if ((r = stmt_get(s, STMT_META_GET, &st)) < 0)
                return r;
        if (sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC) != SQLITE_OK)
                return -ENOMEM;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        const char *v = (const char *) sqlite3_column_text(st, 0);
        if (!v)
                return sqlite3_errcode(s->db) == SQLITE_NOMEM ? -ENOMEM : -ENOENT;
        return strdup_checked(v, ret);
}

/* --- runs ---------------------------------------------------------------------------------- */

/* Binds the counters and result of run at ?first .. ?first+6. */
static int bind_run_counts(sqlite3_stmt *st, int first, const StoreRun *run) {
        const unsigned counts[] = { run->created, run->copied, run->deleted,
                                    run->adopted, run->failed, run->held };
        int rc = SQLITE_OK;

        for (size_t i = 0; i < ELEMENTSOF(counts); i++)
                rc |= sqlite3_bind_int64(st, first + (int) i, counts[i]);
        rc |= sqlite3_bind_int(st, first + (int) ELEMENTSOF(counts), run->result);
        return rc == SQLITE_OK ? 0 : -ENOMEM;
}

int store_run_begin(Store *s, StoreRun *run) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_RUN_BEGIN, &st)) < 0)
                return r;
        if (sqlite3_bind_text(st, 1, run->run_id, (int) strnlen(run->run_id, sizeof run->run_id - 1),
                              SQLITE_STATIC) != SQLITE_OK ||
            bind_u64(st, 2, run->started_usec) != SQLITE_OK ||
            bind_u64(st, 3, run->finished_usec) != SQLITE_OK ||
            (r = bind_run_counts(st, 4, run)) < 0)
                return r < 0 ? r : -ENOMEM;
        if ((r = step_done(st)) < 0)
                return r;
        run->id = sqlite3_last_insert_rowid(s->db);
        return 0;
}

int store_run_finish(Store *s, const StoreRun *run) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_RUN_FINISH, &st)) < 0)
                return r;
        if (sqlite3_bind_int64(st, 1, run->id) != SQLITE_OK ||
            bind_u64(st, 2, run->finished_usec) != SQLITE_OK ||
            (r = bind_run_counts(st, 3, run)) < 0)
                return r < 0 ? r : -ENOMEM;
        if ((r = step_done(st)) < 0)
                return r;
        return sqlite3_changes64(s->db) > 0 ? 0 : -ENOENT;
}

static unsigned column_count(sqlite3_stmt *st, int col) {
        sqlite3_int64 v = sqlite3_column_int64(st, col);
        return v < 0 ? 0 : v > UINT_MAX ? UINT_MAX : (unsigned) v;
}

int store_last_run(Store *s, StoreRun *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_RUN_LAST, &st)) < 0)
                return r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);

        StoreRun run = { .id = sqlite3_column_int64(st, 0) };
        const char *id = (const char *) sqlite3_column_text(st, 1);
        if (id)
                snprintf(run.run_id, sizeof run.run_id, "%s", id);
        run.started_usec = (uint64_t) sqlite3_column_int64(st, 2);
        run.finished_usec = (uint64_t) sqlite3_column_int64(st, 3);
        run.created = column_count(st, 4);
        run.copied = column_count(st, 5);
        run.deleted = column_count(st, 6);
        run.adopted = column_count(st, 7);
        run.failed = column_count(st, 8);
        run.held = column_count(st, 9);
        run.result = sqlite3_column_int(st, 10);
        *ret = run;
        return 0;
}

/* --- integrity ----------------------------------------------------------------------------- */

int store_check_integrity(Store *s) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = stmt_get(s, STMT_INTEGRITY, &st)) < 0)
                return r == -EBADMSG ? -EIO : r;
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *v = (const char *) sqlite3_column_text(st, 0);
                return v && streq(v, "ok") ? 0 : -EIO;
        }
        r = errno_from_sqlite(rc);
        /* A file too damaged to check is as bad as one that fails the check. */
        return r == -EBADMSG || r == 0 ? -EIO : r;
}

int store_data_version(Store *s, uint64_t *ret) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        int r, rc;

        if ((r = stmt_get(s, STMT_DATA_VERSION, &st)) < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        *ret = (uint64_t) sqlite3_column_int64(st, 0);
        return 0;
}

bool store_error_is_fatal(int error, unsigned consecutive) {
        switch (error) {
        case -EBADMSG:
        case -ESTALE:
        case -EROFS:
                return true;
        case -EIO:
                return consecutive >= 3;
        default:
                return false;
        }
}

int store_check_health(Store *s) {
        _cleanup_reset_ sqlite3_stmt *st = NULL;
        struct stat buf;
        int r, rc;

        /* SQLite keeps using an unlinked or replaced file through its open descriptor: only the
         * name tells that every other process now sees another store, or none. */
        if (stat(s->path, &buf) < 0 || buf.st_dev != s->dev || buf.st_ino != s->ino)
                return -ESTALE;
        if ((r = stmt_get(s, STMT_HEALTH, &st)) < 0)
                return r;
        rc = sqlite3_step(st);
        return rc == SQLITE_ROW ? 0 : errno_from_sqlite(rc);
}

/* --- directory sources (see store.h) ---------------------------------------------------------
 * Statements are prepared per call, not kept: a poll every few minutes does not need the cache,
 * and a store opened read-only may not have these tables at all. */

static const char sources_schema[] =
        "CREATE TABLE IF NOT EXISTS source_state (grp BLOB PRIMARY KEY, name TEXT, members INT,"
        " read INT, error TEXT, error_at INT) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS source_members (grp BLOB NOT NULL, id BLOB NOT NULL, name TEXT,"
        " upn TEXT, enabled INT NOT NULL, PRIMARY KEY (grp, id)) WITHOUT ROWID;"
        /* Who a user was, as the directory last named them: kept after they leave every group,
         * so a delete (or a held one) can still be shown with a name. */
        "CREATE TABLE IF NOT EXISTS directory_names (id BLOB PRIMARY KEY, name TEXT, upn TEXT,"
        " grp_name TEXT) WITHOUT ROWID;";

static void stmt_finalizep(sqlite3_stmt **p) {
        sqlite3_finalize(*p);
}
#define _cleanup_finalize_ __attribute__((cleanup(stmt_finalizep)))

static int prepare(Store *s, const char *sql, sqlite3_stmt **ret) {
        return errno_from_sqlite(sqlite3_prepare_v2(s->db, sql, -1, ret, NULL));
}

static int bind_text_or_null(sqlite3_stmt *st, int idx, const char *v) {
        return v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
}

static int source_members_insert(Store *s, const Guid *group, const char *group_name,
                                 const StoreSourceMember *m, size_t n) {
        _cleanup_finalize_ sqlite3_stmt *del = NULL, *ins = NULL, *names = NULL;
        int r;

        if ((r = prepare(s, "DELETE FROM source_members WHERE grp = ?1", &del)) < 0 ||
            (r = prepare(s, "INSERT OR REPLACE INTO source_members (grp, id, name, upn, enabled) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)", &ins)) < 0 ||
            (r = prepare(s, "INSERT OR REPLACE INTO directory_names (id, name, upn, grp_name) "
                            "VALUES (?2, ?3, ?4, ?6)", &names)) < 0)
                return r;
        if (bind_guid(del, 1, group) != SQLITE_OK || (r = step_done(del)) < 0)
                return r < 0 ? r : -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                sqlite3_stmt *st[] = { ins, names };

                for (size_t k = 0; k < ELEMENTSOF(st); k++) {
                        if (bind_guid(st[k], 2, &m[i].id) != SQLITE_OK ||
                            bind_text_or_null(st[k], 3, m[i].name) != SQLITE_OK ||
                            bind_text_or_null(st[k], 4, m[i].upn) != SQLITE_OK ||
                            (k == 0 && (bind_guid(st[k], 1, group) != SQLITE_OK ||
                                        sqlite3_bind_int(st[k], 5, m[i].enabled) != SQLITE_OK)) ||
                            (k == 1 && bind_text_or_null(st[k], 6, group_name) != SQLITE_OK))
                                return -ENOMEM;
                        if ((r = step_done(st[k])) < 0)
                                return r;
                        sqlite3_reset(st[k]);
                }
        }
        return 0;
}

static int source_state_put(Store *s, const Guid *group, const char *name, size_t n, uint64_t read_usec) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        int r;

        if ((r = prepare(s, "INSERT OR REPLACE INTO source_state (grp, name, members, read, error, error_at) "
                            "VALUES (?1, ?2, ?3, ?4, NULL, 0)", &st)) < 0)
                return r;
        if (bind_guid(st, 1, group) != SQLITE_OK || bind_text_or_null(st, 2, name) != SQLITE_OK ||
            bind_u64(st, 3, n) != SQLITE_OK || bind_u64(st, 4, read_usec) != SQLITE_OK)
                return -ENOMEM;
        return step_done(st);
}

int store_source_save(Store *s, const Guid *group, const char *name, const StoreSourceMember *m, size_t n,
                      uint64_t read_usec) {
        bool own;
        int r;

        r = op_begin(s, &own);
        if (r < 0)
                return r;
        r = exec_sql(s, sources_schema);
        s->no_directory_names = false;
        if (r >= 0)
                r = source_members_insert(s, group, name, m, n);
        if (r >= 0)
                r = source_state_put(s, group, name, n, read_usec);
        return op_end(s, own, r);
}

int store_source_failed(Store *s, const Guid *group, const char *error, uint64_t when) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        bool own;
        int r;

        r = op_begin(s, &own);
        if (r < 0)
                return r;
        r = exec_sql(s, sources_schema);
        s->no_directory_names = false;
        if (r >= 0)
                r = prepare(s, "INSERT INTO source_state (grp, members, read, error, error_at) "
                               "VALUES (?1, 0, 0, ?2, ?3) ON CONFLICT (grp) DO UPDATE SET "
                               "error = excluded.error, error_at = excluded.error_at", &st);
        if (r >= 0 && (bind_guid(st, 1, group) != SQLITE_OK || bind_text_or_null(st, 2, error) != SQLITE_OK ||
                       bind_u64(st, 3, when) != SQLITE_OK))
                r = -ENOMEM;
        if (r >= 0)
                r = step_done(st);
        return op_end(s, own, r);
}

static int column_text_dup(sqlite3_stmt *st, int col, char **ret) {
        const char *v = (const char *) sqlite3_column_text(st, col);

        *ret = NULL;
        return v ? strdup_checked(v, ret) : 0;
}

static int source_state_get(Store *s, const Guid *group, StoreSource *ret) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        int r, rc;

        if ((r = prepare(s, "SELECT name, members, read, error, error_at FROM source_state "
                            "WHERE grp = ?1", &st)) < 0)
                return r;
        if (bind_guid(st, 1, group) != SQLITE_OK)
                return -ENOMEM;
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return errno_from_sqlite(rc);
        *ret = (StoreSource) {
                .members = (uint64_t) sqlite3_column_int64(st, 1),
                .read_usec = (uint64_t) sqlite3_column_int64(st, 2),
                .error_usec = (uint64_t) sqlite3_column_int64(st, 4),
        };
        if ((r = column_text_dup(st, 0, &ret->name)) < 0 || (r = column_text_dup(st, 3, &ret->error)) < 0)
                store_source_clear(ret);
        return r;
}

static int source_members_walk(Store *s, const Guid *group, StoreSourceMemberFn fn, void *userdata) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        int r, rc;

        if ((r = prepare(s, "SELECT id, name, upn, enabled FROM source_members WHERE grp = ?1", &st)) < 0)
                return r;
        if (bind_guid(st, 1, group) != SQLITE_OK)
                return -ENOMEM;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                StoreSourceMember m = {
                        .name = (const char *) sqlite3_column_text(st, 1),
                        .upn = (const char *) sqlite3_column_text(st, 2),
                        .enabled = sqlite3_column_int(st, 3) != 0,
                };

                if ((r = column_guid(st, 0, &m.id)) < 0 || (r = fn(userdata, &m)) < 0)
                        return r;
        }
        return rc == SQLITE_DONE ? 0 : errno_from_sqlite(rc);
}

int store_source_load(Store *s, const Guid *group, StoreSource *ret, StoreSourceMemberFn fn, void *userdata) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        StoreSource src = { 0 };
        int r;

        /* A store that never saw a source has no tables yet: it knows nothing of any group. */
        if ((r = prepare(s, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'source_state'",
                         &st)) < 0)
                return r;
        r = sqlite3_step(st);
        if (r != SQLITE_ROW)
                return r == SQLITE_DONE ? -ENOENT : errno_from_sqlite(r);
        r = source_state_get(s, group, &src);
        if (r >= 0 && fn)
                r = source_members_walk(s, group, fn, userdata);
        if (r < 0) {
                store_source_clear(&src);
                return r;
        }
        *ret = src;
        return 0;
}

int store_directory_name(Store *s, const Guid *id, char **ret_name, char **ret_upn, char **ret_group) {
        _cleanup_finalize_ sqlite3_stmt *st = NULL;
        int r, rc;

        /* Before any group was read there is no such table: no name is known. Looked for once,
         * for a plan may ask for thousands of users that left the roster. */
        if (s->no_directory_names)
                return -ENOENT;
        if (prepare(s, "SELECT name, upn, grp_name FROM directory_names WHERE id = ?1", &st) < 0) {
                s->no_directory_names = true;
                return -ENOENT;
        }
        if (bind_guid(st, 1, id) != SQLITE_OK)
                return -ENOMEM;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return rc == SQLITE_DONE ? -ENOENT : errno_from_sqlite(rc);
        if ((r = column_text_dup(st, 0, ret_name)) < 0)
                return r;
        if ((r = column_text_dup(st, 1, ret_upn)) < 0 || (r = column_text_dup(st, 2, ret_group)) < 0) {
                free(*ret_name);
                *ret_name = NULL;
                free(*ret_upn);
                *ret_upn = NULL;
        }
        return r;
}

void store_source_clear(StoreSource *src) {
        if (!src)
                return;
        free(src->name);
        free(src->error);
        *src = (StoreSource) { 0 };
}
