/*
 * log: one line per event, for every binary of vpc-ipam.
 *
 * A line carries the time, the level, a fixed message and typed key/value
 * fields, written either as a JSON object (the daemon's default, for log
 * shippers) or as logfmt-style text (for people at a terminal):
 *
 *     log_info("assigned address", LF_STR("ip", ip), LF_INT("eni_device", 1));
 *     log_warn_errno(r, "could not open store", LF_STR("path", path));
 *
 * Messages are constant strings; everything variable goes in a field. Fields
 * whose key looks like a secret (token, secret, password, authorization,
 * credential) are written as "[redacted]", so a slip cannot leak a key.
 *
 * The logger is process-wide state (the one exception to "no globals", like
 * syslog): configured once by main() through log_setup() and safe to call from
 * any thread afterwards; each event is emitted with a single write(2).
 * Library modules log at debug level at most; their callers log failures once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_FORMAT_JSON, LOG_FORMAT_TEXT };

enum log_field_type { LOG_FIELD_NONE, LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_BOOL };

struct log_field {
        const char *key;
        enum log_field_type type;
        const char *s;
        int64_t i;
};

#define LF_STR(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_STR, .s = (v) })
#define LF_INT(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_INT, .i = (int64_t)(v) })
#define LF_BOOL(k, v) ((struct log_field){ .key = (k), .type = LOG_FIELD_BOOL, .i = !!(v) })

struct log_options {
        enum log_level level;
        enum log_format format;
        int fd;                 /* where lines go; -1 means stderr */
        const char *file;       /* optional second destination, opened O_APPEND */
        long long file_max_bytes;       /* > 0: rotate file when a line would take it past this */
        int file_backups;       /* rotated copies kept: file.1 (newest) .. file.N; 0: none kept */
};

/* Parse a level name: debug, info, warn/warning, error, off (any case). */
int log_level_parse(const char *s, enum log_level *ret);
int log_format_parse(const char *s, enum log_format *ret);
const char *log_level_name(enum log_level level);

/* Configure the process logger. Fails (negative errno) only if file cannot be opened. */
int log_setup(const struct log_options *opts);
/* Close the log file, if any, and return to defaults (info, JSON, stderr). */
void log_shutdown(void);
bool log_enabled(enum log_level level);

/* error: 0, or a negative errno that is added as field "error". */
void log_event(enum log_level level, int error, const char *msg,
               const struct log_field *fields, unsigned n_fields);

/*
 * Build the field array: a leading placeholder keeps the compound literal valid
 * when no field is given; log_event() is handed the rest.
 */
#define LOG_FIELDS_(...) \
        ((const struct log_field[]){ {0}, ##__VA_ARGS__ }) + 1, \
        (unsigned)(sizeof((const struct log_field[]){ {0}, ##__VA_ARGS__ }) / sizeof(struct log_field) - 1)

#define log_debug(msg, ...) log_event(LOG_DEBUG, 0, (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_info(msg, ...)  log_event(LOG_INFO, 0, (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_warn(msg, ...)  log_event(LOG_WARN, 0, (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_error(msg, ...) log_event(LOG_ERROR, 0, (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_debug_errno(r, msg, ...) log_event(LOG_DEBUG, (r), (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_warn_errno(r, msg, ...)  log_event(LOG_WARN, (r), (msg), LOG_FIELDS_(__VA_ARGS__))
#define log_error_errno(r, msg, ...) log_event(LOG_ERROR, (r), (msg), LOG_FIELDS_(__VA_ARGS__))
