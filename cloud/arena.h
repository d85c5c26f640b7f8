/*
 * arena: a bump allocator that owns everything decoded from one EC2 response,
 * so a result (ENI list, instance, subnets) is freed with one call. Internal
 * to cloud/. Blocks grow geometrically; nothing is freed individually.
 */
#pragma once

#include <stddef.h>

struct arena;

struct arena *arena_new(void);
struct arena *arena_free(struct arena *a);
void *arena_alloc(struct arena *a, size_t size);            /* zeroed; NULL on ENOMEM */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* Append one zeroed element to a growing array *items of *n elements; returns it or NULL. */
void *arena_push(struct arena *a, void **items, size_t *n, size_t *cap, size_t elem);
