/*
 * log: the process logger (see log.h for the line format and the rules).
 *
 * A line is assembled in a fixed buffer on the caller's stack and handed to
 * write(2) once, so lines from different threads never interleave. A line that
 * would exceed the buffer is cut and marked "truncated" rather than split.
 * JSON strings are escaped by hand here because the logger must not allocate
 * (it is called on out-of-memory paths) — this is output, not parsing.
 *
 * The log file rotates by size, as aws-node's (lumberjack, 100 MB and 5
 * backups): when a line would take it past the limit, file.N-1 becomes
 * file.N ... file becomes file.1, and a fresh file is opened. Only the file
 * writes take the lock, so stderr lines never wait on a rotation. A file
 * moved away by logrotate is not noticed: use one or the other.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 4096

struct logger {
        enum log_level level;
        enum log_format format;
        int fd;
        int file_fd;
        char path[PATH_MAX];            /* the file, for rotation */
        long long file_size, max_bytes;
        int backups;
};

/* The one process-wide logger; written only by log_setup/log_shutdown
 * (and file_fd and file_size, under file_lock, by a rotation). */
static struct logger the_logger = { LOG_INFO, LOG_FORMAT_JSON, -1, -1, "", 0, 0, 0 };
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

static int open_file(const char *path, long long *ret_size) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        struct stat st;
        if (fd < 0)
                return -errno;
        *ret_size = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
        return fd;
}

static const char *const level_names[] = {
        [LOG_DEBUG] = "debug", [LOG_INFO] = "info", [LOG_WARN] = "warn",
        [LOG_ERROR] = "error", [LOG_OFF] = "off",
};

const char *log_level_name(enum log_level level) {
        if ((unsigned)level > LOG_OFF)
                return "?";
        return level_names[level];
}

int log_level_parse(const char *s, enum log_level *ret) {
        static const struct { const char *name; enum log_level level; } table[] = {
                { "debug", LOG_DEBUG }, { "trace", LOG_DEBUG }, { "info", LOG_INFO },
                { "warn", LOG_WARN }, { "warning", LOG_WARN }, { "error", LOG_ERROR },
                { "off", LOG_OFF }, { "none", LOG_OFF },
        };
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
                if (strcasecmp(s, table[i].name) == 0) {
                        *ret = table[i].level;
                        return 0;
                }
        return -EINVAL;
}

int log_format_parse(const char *s, enum log_format *ret) {
        if (s && strcasecmp(s, "json") == 0)
                *ret = LOG_FORMAT_JSON;
        else if (s && (strcasecmp(s, "text") == 0 || strcasecmp(s, "logfmt") == 0))
                *ret = LOG_FORMAT_TEXT;
        else
                return -EINVAL;
        return 0;
}

int log_setup(const struct log_options *opts) {
        int file_fd = -1;
        long long size = 0;
        if (opts->file && opts->file[0]) {
                if (strlen(opts->file) + 16 > sizeof the_logger.path)
                        return -ENAMETOOLONG;
                if ((file_fd = open_file(opts->file, &size)) < 0)
                        return file_fd;
        }
        pthread_mutex_lock(&file_lock);
        if (the_logger.file_fd >= 0)
                close(the_logger.file_fd);
        the_logger.level = opts->level;
        the_logger.format = opts->format;
        the_logger.fd = opts->fd;
        the_logger.file_fd = file_fd;
        snprintf(the_logger.path, sizeof the_logger.path, "%s", file_fd >= 0 ? opts->file : "");
        the_logger.file_size = size;
        the_logger.max_bytes = opts->file_max_bytes;
        the_logger.backups = opts->file_backups;
        pthread_mutex_unlock(&file_lock);
        return 0;
}

void log_shutdown(void) {
        pthread_mutex_lock(&file_lock);
        if (the_logger.file_fd >= 0)
                close(the_logger.file_fd);
        the_logger = (struct logger){ LOG_INFO, LOG_FORMAT_JSON, -1, -1, "", 0, 0, 0 };
        pthread_mutex_unlock(&file_lock);
}

bool log_enabled(enum log_level level) {
        return level != LOG_OFF && level >= the_logger.level;
}

/* A bounded string builder over the line buffer. */
struct line {
        char *buf;
        size_t len, cap;
        bool truncated;
};

static void put(struct line *l, const char *s, size_t n) {
        if (l->len + n > l->cap) {
                n = l->cap - l->len;
                l->truncated = true;
        }
        memcpy(l->buf + l->len, s, n);
        l->len += n;
}

static void puts_(struct line *l, const char *s) {
        put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...) {
        char tmp[64];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
        va_end(ap);
        if (n > 0)
                put(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* JSON string body: quotes, backslashes and control bytes escaped. */
static void put_json_str(struct line *l, const char *s) {
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        char e[2] = { '\\', (char)c };
                        put(l, e, 2);
                } else if (c < 0x20) {
                        putf(l, "\\u%04x", c);
                } else {
                        put(l, (const char *)&c, 1);
                }
        }
}

/* logfmt value: bare when safe, else quoted with the same escaping. */
static void put_text_str(struct line *l, const char *s) {
        bool bare = *s != '\0';
        for (const char *p = s; *p; p++)
                if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
                        bare = false;
        if (bare) {
                puts_(l, s);
                return;
        }
        put(l, "\"", 1);
        put_json_str(l, s);
        put(l, "\"", 1);
}

static bool key_is_secret(const char *key) {
        static const char *const secret_words[] = {
                "secret", "token", "password", "authorization", "credential", "signature",
        };
        for (size_t i = 0; i < sizeof secret_words / sizeof secret_words[0]; i++)
                if (strcasestr(key, secret_words[i]))
                        return true;
        return false;
}

static void put_str_value(struct line *l, const char *s) {
        if (the_logger.format == LOG_FORMAT_JSON) {
                put(l, "\"", 1);
                put_json_str(l, s);
                put(l, "\"", 1);
        } else {
                put_text_str(l, s);
        }
}

static void put_key(struct line *l, const char *key) {
        if (the_logger.format == LOG_FORMAT_JSON) {
                put(l, ",\"", 2);
                put_json_str(l, key);
                put(l, "\":", 2);
        } else {
                put(l, " ", 1);
                puts_(l, key);
                put(l, "=", 1);
        }
}

static void put_field(struct line *l, const struct log_field *f) {
        if (!f->key || f->type == LOG_FIELD_NONE)
                return;
        put_key(l, f->key);
        if (key_is_secret(f->key))
                put_str_value(l, "[redacted]");
        else if (f->type == LOG_FIELD_STR)
                put_str_value(l, f->s ? f->s : "");
        else if (f->type == LOG_FIELD_BOOL)
                puts_(l, f->i ? "true" : "false");
        else
                putf(l, "%lld", (long long)f->i);
}

static void put_time(struct line *l) {
        struct timespec ts;
        struct tm tm;
        char when[40];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000L);
        if (the_logger.format == LOG_FORMAT_JSON) {
                puts_(l, "{\"time\":\"");
                puts_(l, when);
                put(l, "\"", 1);
        } else {
                puts_(l, "time=");
                puts_(l, when);
        }
}

static void write_all(int fd, const char *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return; /* nowhere left to report a logging failure */
                buf += n;
                len -= (size_t)n;
        }
}

/* Under file_lock: shift the backups up by one, the file to .1 (with no
 * backups kept, the file is just started afresh), and reopen. On failure the
 * old file stays open and grows: losing lines is worse than a big file. */
static void rotate(struct logger *lg) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16];
        for (int i = lg->backups; i >= 1; i--) {
                snprintf(to, sizeof to, "%s.%d", lg->path, i);
                if (i > 1)
                        snprintf(from, sizeof from, "%s.%d", lg->path, i - 1);
                else
                        snprintf(from, sizeof from, "%s", lg->path);
                (void)rename(from, to);         /* a missing backup is fine */
        }
        if (lg->backups <= 0 && truncate(lg->path, 0) < 0)
                return;
        long long size = 0;
        int fd = open_file(lg->path, &size);
        if (fd < 0)
                return;
        close(lg->file_fd);
        lg->file_fd = fd;
        lg->file_size = size;
}

static void write_file(struct logger *lg, const char *buf, size_t len) {
        pthread_mutex_lock(&file_lock);
        if (lg->file_fd >= 0) {
                if (lg->max_bytes > 0 && lg->file_size > 0 && lg->file_size + (long long)len > lg->max_bytes)
                        rotate(lg);
                write_all(lg->file_fd, buf, len);
                lg->file_size += (long long)len;
        }
        pthread_mutex_unlock(&file_lock);
}

void log_event(enum log_level level, int error, const char *msg,
               const struct log_field *fields, unsigned n_fields) {
        if (!log_enabled(level))
                return;
        int saved_errno = errno;
        char buf[LOG_LINE_MAX];
        /* Reserve room for the closing "}\n" and a truncation marker. */
        struct line l = { buf, 0, sizeof buf - 32, false };

        struct log_field head[] = {
                LF_STR("level", log_level_name(level)),
                LF_STR("msg", msg ? msg : ""),
                LF_STR("error", error ? strerror(error < 0 ? -error : error) : NULL),
        };
        if (!error)
                head[2].type = LOG_FIELD_NONE;
        put_time(&l);
        /* Keep only whole fields: a cut inside a string would break the JSON. */
        size_t whole = l.len;
        for (unsigned i = 0; i < 3 + n_fields && !l.truncated; i++) {
                put_field(&l, i < 3 ? &head[i] : &fields[i - 3]);
                if (!l.truncated)
                        whole = l.len;
        }
        l.cap = sizeof buf;
        l.len = whole;
        if (l.truncated)
                puts_(&l, the_logger.format == LOG_FORMAT_JSON ? ",\"truncated\":true" : " truncated=true");
        puts_(&l, the_logger.format == LOG_FORMAT_JSON ? "}\n" : "\n");

        write_all(the_logger.fd >= 0 ? the_logger.fd : STDERR_FILENO, buf, l.len);
        if (the_logger.file_fd >= 0)
                write_file(&the_logger, buf, l.len);
        errno = saved_errno;
}
