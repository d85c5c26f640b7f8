/*
 * xmlwalk: a bounded streaming walk over an XML document with expat, for the
 * EC2 and STS responses. Internal to cloud/.
 *
 * The caller's callback sees each element twice: at its start (text NULL) and
 * at its end with the element's own text (only for leaves; text of elements
 * that contain elements is dropped). path[0..depth-1] are the local names from
 * the root (namespaces stripped). Limits bound depth, names, text per element
 * and the element count; DOCTYPEs and entity declarations are refused (no
 * entity expansion attacks). A callback returning < 0 stops the walk.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "errmsg.h"

#define XMLWALK_MAX_DEPTH 24
#define XMLWALK_MAX_NAME 64

struct xmlwalk_limits {
        size_t max_text;        /* bytes per element, default 16 KiB */
        size_t max_elements;    /* default 1,000,000 */
};

typedef int (*xmlwalk_fn)(void *ud, const char *const *path, unsigned depth,
                          const char *text, size_t len);

/* 0, -EBADMSG on malformed/hostile XML, -E2BIG past a limit, or the callback's error. */
int xmlwalk_parse(const char *buf, size_t len, const struct xmlwalk_limits *limits,
                  xmlwalk_fn fn, void *ud, struct errmsg *err);

/* True if path[from..depth-1] equals the NULL-terminated names. */
bool xmlwalk_at(const char *const *path, unsigned depth, unsigned from, ...);
