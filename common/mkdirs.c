/*
 * mkdirs: mkdir -p of a file's parent directory (see mkdirs.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mkdirs.h"

int mkdirs_parent(const char *path, struct errmsg *err) {
        char dir[4096];
        if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
                return errmsg_set(err, -ENAMETOOLONG, "path too long: %.64s...", path);
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        for (char *p = dir + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                        return errmsg_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
                *p = '/';
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return errmsg_set(err, -errno, "cannot create %s: %s", dir, strerror(errno));
        return 0;
}
