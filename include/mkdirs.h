/*
 * mkdirs: create the directory a file will live in (mkdir -p of its parent),
 * for the daemon's socket and store. The intermediate directories are made
 * 0755, the parent itself 0700: only root reaches the file.
 */
#pragma once

#include "errmsg.h"

/* mkdir -p of path's directory (nothing for "x" or "/x"); existing ones are
 * left as they are. -ENAMETOOLONG for a path over 4095 bytes. */
int mkdirs_parent(const char *path, struct errmsg *err);
