/*
 * subnets: aws-node's subnet-discovery rules over a DescribeSubnets answer,
 * and the per-subnet back-off table. Pure: the caller makes the EC2 calls.
 */
#include <stdlib.h>
#include <string.h>

#include "subnets.h"

static const char *tag(const struct ec2_subnet *s, const char *key) {
        for (size_t i = 0; i < s->n_tags; i++)
                if (s->tags[i].key && strcmp(s->tags[i].key, key) == 0)
                        return s->tags[i].value ? s->tags[i].value : "";
        return NULL;
}

bool subnets_excluded(const struct ec2_subnet *s) {
        const char *v = tag(s, SUBNETS_TAG_CNI);
        return v && strcmp(v, "0") == 0;
}

/* With CLUSTER_NAME set: a subnet with cluster keys is only for the clusters they name. */
static bool for_other_clusters(const struct ec2_subnet *s, const char *cluster) {
        if (!cluster || !cluster[0])
                return false;
        size_t plen = strlen(SUBNETS_TAG_CLUSTER_PREFIX);
        bool any = false;
        for (size_t i = 0; i < s->n_tags; i++) {
                const char *k = s->tags[i].key;
                if (!k || strncmp(k, SUBNETS_TAG_CLUSTER_PREFIX, plen) != 0)
                        continue;
                if (strcmp(k + plen, cluster) == 0)
                        return false;
                any = true;
        }
        return any;
}

static bool candidate(const struct ec2_subnet *s, const char *primary_id, const char *cluster) {
        if (!s->id || subnets_excluded(s))
                return false;
        if (primary_id && strcmp(s->id, primary_id) == 0)
                return true;
        const char *v = tag(s, SUBNETS_TAG_CNI);
        return v && v[0] && !for_other_clusters(s, cluster);
}

size_t subnets_candidates(const struct ec2_subnet *subnets, size_t n, const char *primary_id,
                          const char *cluster_name, const struct ec2_subnet **out, size_t max) {
        size_t k = 0;
        if (max == 0)
                return 0;
        /* Every subnet is weighed, the best max kept: a freer one late in EC2's order is not
         * lost because out was full. Insertion keeps ties in EC2's order. */
        for (size_t i = 0; i < n; i++) {
                if (!candidate(&subnets[i], primary_id, cluster_name))
                        continue;
                if (k == max && out[k - 1]->available_ips >= subnets[i].available_ips)
                        continue;
                size_t j = k < max ? k++ : k - 1;
                for (; j > 0 && out[j - 1]->available_ips < subnets[i].available_ips; j--)
                        out[j] = out[j - 1];
                out[j] = &subnets[i];
        }
        return k;
}

void subnets_backoff_set(struct subnets_backoff *b, const char *id, int64_t until_ms) {
        size_t pick = 0;
        for (size_t i = 0; i < SUBNETS_MAX; i++) {
                if (strcmp(b->slot[i].id, id) == 0) {
                        pick = i;
                        break;
                }
                if (b->slot[i].until_ms < b->slot[pick].until_ms)
                        pick = i;
        }
        strncpy(b->slot[pick].id, id, SUBNETS_ID_MAX - 1);
        b->slot[pick].id[SUBNETS_ID_MAX - 1] = '\0';
        b->slot[pick].until_ms = until_ms;
}

bool subnets_backoff_active(const struct subnets_backoff *b, const char *id, int64_t now_ms) {
        for (size_t i = 0; i < SUBNETS_MAX; i++)
                if (b->slot[i].id[0] && strcmp(b->slot[i].id, id) == 0)
                        return now_ms < b->slot[i].until_ms;
        return false;
}
