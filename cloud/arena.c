/*
 * arena: bump allocation in a chain of blocks (see arena.h). Arrays that grow
 * are copied to a doubled slot, so an array wastes at most its own size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

struct block {
        struct block *next;
        size_t used, size;
        max_align_t data[];
};

struct arena {
        struct block *head;
};

struct arena *arena_new(void) {
        return calloc(1, sizeof(struct arena));
}

struct arena *arena_free(struct arena *a) {
        if (!a)
                return NULL;
        for (struct block *b = a->head, *next; b; b = next) {
                next = b->next;
                free(b);
        }
        free(a);
        return NULL;
}

void *arena_alloc(struct arena *a, size_t size) {
        const size_t align = sizeof(max_align_t);
        size = (size + align - 1) / align * align;
        struct block *b = a->head;
        if (!b || b->size - b->used < size) {
                size_t bs = b ? b->size * 2 : 4096;
                if (bs > (1u << 20))
                        bs = 1u << 20;
                if (bs < size)
                        bs = size;
                struct block *nb = malloc(sizeof *nb + bs);
                if (!nb)
                        return NULL;
                nb->next = a->head;
                nb->used = 0;
                nb->size = bs;
                a->head = b = nb;
        }
        void *p = (char *)b->data + b->used;
        b->used += size;
        memset(p, 0, size);
        return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n) {
        char *p = arena_alloc(a, n + 1);
        if (p)
                memcpy(p, s, n);
        return p;
}

void *arena_push(struct arena *a, void **items, size_t *n, size_t *cap, size_t elem) {
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 4;
                void *p = arena_alloc(a, nc * elem);
                if (!p)
                        return NULL;
                if (*n)
                        memcpy(p, *items, *n * elem);
                *items = p;
                *cap = nc;
        }
        void *slot = (char *)*items + (*n)++ * elem;
        memset(slot, 0, elem);
        return slot;
}
