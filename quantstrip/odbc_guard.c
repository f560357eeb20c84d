/*
 * Quantstrip ODBC guard: a SQLite extension the Quantstrip DSN loads (LoadExt=) into every
 * connection the SQLite ODBC driver opens, so that Excel and other ODBC tools can only read.
 *
 * `mode=ro` protects only the main database: ATTACH 'file:...?mode=rw' wrote the ledger,
 * ATTACH created files, VACUUM INTO wrote copies anywhere, and the driver registers
 * blob_export()/blob_import(), which write and read any file from a SELECT. The engine refuses
 * all of it once this extension is loaded:
 *   - no database can be attached (SQLITE_LIMIT_ATTACHED = 0): ATTACH, and VACUUM INTO, which
 *     attaches its target, fail;
 *   - an authorizer allows reads (SELECT, table reads, functions, WITH RECURSIVE), the
 *     driver's catalog pragmas and a few value-less pragma reads; every write, schema change,
 *     ATTACH/DETACH, other pragma, and the file functions are denied;
 *   - extension loading through the C API (the driver enables it to load this file) is switched
 *     off again, and load_extension() and the driver's file functions are replaced by functions
 *     that refuse (the authorizer denies them as well).
 * None of these can be undone from SQL. Built by `quantstrip odbc install` with the system C
 * compiler against the system SQLite headers (libsqlite3-dev).
 */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

static const char *const DENIED_FUNCTIONS[] = {
    "blob_export", "blob_import", "load_extension", "readfile", "writefile",
    "edit", "fts3_tokenizer", "zipfile", "sqlar_compress", "sqlar_uncompress", 0,
};

/* Pragmas the driver's catalog calls use (SQLColumns, SQLStatistics, SQLPrimaryKeys,
 * SQLForeignKeys): they read the schema whatever their argument. */
static const char *const CATALOG_PRAGMAS[] = {
    "table_info", "table_xinfo", "index_list", "index_info", "index_xinfo",
    "foreign_key_list", 0,
};

/* Pragmas that only report a value when given none. */
static const char *const VALUE_PRAGMAS[] = {
    "user_version", "schema_version", "application_id", "encoding", "page_size",
    "foreign_keys", "journal_mode", "database_list", "collation_list", 0,
};

static int listed(const char *name, const char *const *list) {
    int i;
    if (!name) return 0;
    for (i = 0; list[i]; i++) {
        if (sqlite3_stricmp(name, list[i]) == 0) return 1;
    }
    return 0;
}

static void refuse(sqlite3_context *context, int argc, sqlite3_value **argv) {
    (void)argc;
    (void)argv;
    sqlite3_result_error(context, "refused: the Quantstrip DSN is read-only", -1);
}

static int authorize(void *unused, int action, const char *arg1, const char *arg2,
                     const char *database, const char *trigger) {
    (void)unused;
    (void)database;
    (void)trigger;
    switch (action) {
    case SQLITE_SELECT:
    case SQLITE_READ:
    case SQLITE_RECURSIVE:
    case SQLITE_TRANSACTION:
    case SQLITE_SAVEPOINT:
        return SQLITE_OK;
    case SQLITE_FUNCTION:
        /* arg2 is the function's name */
        return listed(arg2, DENIED_FUNCTIONS) ? SQLITE_DENY : SQLITE_OK;
    case SQLITE_PRAGMA:
        if (listed(arg1, CATALOG_PRAGMAS)) return SQLITE_OK;
        if (listed(arg1, VALUE_PRAGMAS) && arg2 == 0) return SQLITE_OK;
        return SQLITE_DENY;
    default:
        return SQLITE_DENY;
    }
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_quantstripodbcguard_init(sqlite3 *db, char **error, const sqlite3_api_routines *api) {
    int i;
    (void)error;
    SQLITE_EXTENSION_INIT2(api);
    sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)0);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)0);
    for (i = 0; DENIED_FUNCTIONS[i]; i++) {
        int args;
        for (args = -1; args <= 3; args++) {
            sqlite3_create_function(db, DENIED_FUNCTIONS[i], args, SQLITE_UTF8, 0, refuse, 0, 0);
        }
    }
    return sqlite3_set_authorizer(db, authorize, 0);
}
