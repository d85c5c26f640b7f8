/*
 * xmlwalk: expat callbacks that keep only a stack of element names and the
 * text of the current leaf, so memory is bounded by the limits whatever the
 * document's size (see xmlwalk.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <expat.h>

#include "buf.h"
#include "xmlwalk.h"

#define NS_SEP '\x01'

struct walk {
        XML_Parser parser;
        const struct xmlwalk_limits *lim;
        xmlwalk_fn fn;
        void *ud;
        char names[XMLWALK_MAX_DEPTH][XMLWALK_MAX_NAME];
        const char *path[XMLWALK_MAX_DEPTH];
        unsigned depth;
        size_t elements;
        bool leaf;
        struct buf text;
        int error;
        struct errmsg *err;
};

static void stop(struct walk *w, int code, const char *why) {
        if (w->error == 0) {
                w->error = code;
                errmsg_set(w->err, code, "XML response: %s", why);
        }
        XML_StopParser(w->parser, XML_FALSE);
}

/* The decoder refused the element being closed or opened: name it. */
static void rejected(struct walk *w, int code) {
        char why[ERRMSG_MAX / 2];
        snprintf(why, sizeof why, "<%s> rejected by the decoder", w->depth > 0 ? w->names[w->depth - 1] : "?");
        stop(w, code, why);
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **attrs) {
        struct walk *w = ud;
        (void)attrs;
        if (w->error)
                return;
        if (w->depth >= XMLWALK_MAX_DEPTH)
                return stop(w, -E2BIG, "elements nested too deeply");
        if (++w->elements > w->lim->max_elements)
                return stop(w, -E2BIG, "too many elements");
        const char *local = strrchr(name, NS_SEP);
        local = local ? local + 1 : name;
        size_t n = strlen(local);
        if (n >= XMLWALK_MAX_NAME)
                return stop(w, -E2BIG, "element name too long");
        memcpy(w->names[w->depth], local, n + 1);
        w->path[w->depth] = w->names[w->depth];
        w->depth++;
        w->leaf = true;
        w->text.len = 0;
        if (w->text.p)
                w->text.p[0] = '\0';
        int r = w->fn(w->ud, w->path, w->depth, NULL, 0);
        if (r < 0)
                rejected(w, r);
}

static void on_end(void *ud, const XML_Char *name) {
        struct walk *w = ud;
        (void)name;
        if (w->error)
                return;
        const char *text = w->leaf && w->text.p ? w->text.p : "";
        size_t len = w->leaf ? w->text.len : 0;
        int r = w->fn(w->ud, w->path, w->depth, text, len);
        if (r < 0)
                rejected(w, r);
        w->depth--;
        w->leaf = false;
        w->text.len = 0;
}

static void on_text(void *ud, const XML_Char *s, int len) {
        struct walk *w = ud;
        if (w->error || !w->leaf || len <= 0)
                return;
        if (w->text.len + (size_t)len > w->lim->max_text)
                return stop(w, -E2BIG, "element text too long");
        buf_append(&w->text, s, (size_t)len);
        if (w->text.oom)
                stop(w, -ENOMEM, "out of memory");
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                       const XML_Char *pubid, int has_internal_subset) {
        (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
        stop(ud, -EBADMSG, "DOCTYPE not allowed");
}

static void on_entity(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int vlen,
                      const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
                      const XML_Char *notation) {
        (void)name, (void)is_param, (void)value, (void)vlen, (void)base, (void)sysid, (void)pubid, (void)notation;
        stop(ud, -EBADMSG, "entity declarations not allowed");
}

int xmlwalk_parse(const char *buf, size_t len, const struct xmlwalk_limits *limits,
                  xmlwalk_fn fn, void *ud, struct errmsg *err) {
        static const struct xmlwalk_limits defaults = { .max_text = 16384, .max_elements = 1000000 };
        if (!buf || !fn || len > INT_MAX)
                return errmsg_set(err, -EINVAL, "XML response: bad arguments");
        struct walk w = { .lim = limits ? limits : &defaults, .fn = fn, .ud = ud, .err = err };
        w.parser = XML_ParserCreateNS("UTF-8", NS_SEP);
        if (!w.parser)
                return errmsg_set(err, -ENOMEM, "XML response: out of memory");
        XML_SetUserData(w.parser, &w);
        XML_SetElementHandler(w.parser, on_start, on_end);
        XML_SetCharacterDataHandler(w.parser, on_text);
        XML_SetStartDoctypeDeclHandler(w.parser, on_doctype);
        XML_SetEntityDeclHandler(w.parser, on_entity);
        XML_SetParamEntityParsing(w.parser, XML_PARAM_ENTITY_PARSING_NEVER);
        enum XML_Status st = XML_Parse(w.parser, buf, (int)len, XML_TRUE);
        if (st != XML_STATUS_OK && w.error == 0)
                w.error = errmsg_set(err, -EBADMSG, "XML response: %s at line %lu",
                                     XML_ErrorString(XML_GetErrorCode(w.parser)),
                                     (unsigned long)XML_GetCurrentLineNumber(w.parser));
        XML_ParserFree(w.parser);
        buf_free(&w.text);
        return w.error;
}

bool xmlwalk_at(const char *const *path, unsigned depth, unsigned from, ...) {
        va_list ap;
        va_start(ap, from);
        unsigned i = from;
        bool ok = true;
        for (const char *n; (n = va_arg(ap, const char *)); i++) {
                if (i >= depth || strcmp(path[i], n) != 0) {
                        ok = false;
                        break;
                }
        }
        va_end(ap);
        return ok && i == depth;
}
