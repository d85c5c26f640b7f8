/*
 * poolview: the pool as JSON, for people and scripts.
 *
 * One rendering of the store's ENIs, pods, counts and open intents, shared by
 * the socket's read-only queries (vpc-ipamctl) and the HTTP introspection
 * endpoints, so both always say the same thing. Each returns a new cJSON
 * value (the caller deletes it) or NULL when the store cannot be read.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "store.h"

/* Counts: enis, total, assigned, cooldown, available, releasing, waiting_adds, ready, reason. */
cJSON *poolview_pool(store *s, int64_t now_ms, int waiting_adds, bool ready, const char *reason);

/*
 * Every ENI with its attributes, per-state counts (attached ones) and blocks,
 * and their kinds: "prefixes" and "ips" count its /28 prefixes and /32
 * secondaries, "prefix_use" gives each prefix's cidr and the assigned, free,
 * cooldown and releasing counts of its addresses, "ip_use" the same summed
 * over the /32s ("blocks": their number).
 */
cJSON *poolview_enis(store *s, int64_t now_ms);

/* Every address held by a pod, with the pod. */
cJSON *poolview_pods(store *s);

/* EC2 operations begun and not yet settled. */
cJSON *poolview_intents(store *s);
