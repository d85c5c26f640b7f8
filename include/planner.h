/*
 * planner: what the node should ask EC2 for next. Pure: no I/O, no clock.
 *
 * The input is the pool as the store sees it (per attached ENI: addresses
 * free, assigned, in cooldown), the instance type's limits, the config, the
 * ADDs waiting for an address and what is already on its way; the output is
 * a short list of actions for the reconciler. The formulas are aws-node's
 * (amazon-vpc-cni-k8s ipamd: WARM_ENI_TARGET, WARM_IP_TARGET,
 * MINIMUM_IP_TARGET) with four deliberate differences:
 *
 *  1. Addresses in cooldown are not available. aws-node counts them, so a
 *     node that churns pods can sit on a pool of unusable addresses and
 *     never grow (aws-node #2896).
 *  2. ADDs waiting on an empty pool are demand: each needs a free address on
 *     top of the warm target.
 *  3. A cold node may plan several ENIs at once (aws-node: one per cycle,
 *     #420/#1956), and fills every ENI with room in the same pass.
 *  4. Hysteresis, so pod churn does not turn into EC2 calls: nothing is
 *     released within VPC_IPAM_SHRINK_DELAY of a grow; addresses in cooldown
 *     are never released; shrinking keeps room for the recent peak of
 *     assigned addresses to come back (peak_assigned); IP-target pools
 *     release only a surplus above a band (half the warm target, at least 1)
 *     and keep half the band; and a pool that already serves pods asks for
 *     more than the exact shortfall, since the call costs the same: half a
 *     band, or the addresses cooling down when more (under churn they are
 *     the standing demand). A cold node gets exactly aws-node's counts.
 *
 * Prefix delegation (plan_input.prefix_delegation): the pool grows and
 * shrinks in /28 prefixes of 16 addresses, each taking one of the ENI's IPv4 slots (shared with leftover /32s), by
 * aws-node's PD formulas (WARM_PREFIX_TARGET, always defined; WARM_IP and
 * MINIMUM_IP rounded up to prefixes), with the same four differences: only
 * free addresses past cooldown are supply, waiting ADDs are demand, several
 * ENIs at once, and the shrink delay, the recent peak and cooling addresses
 * hold prefixes back. A prefix is released only when none of its 16
 * addresses is assigned, cooling or being released (plan_eni.empty_prefixes).
 * The rounding to 16 is itself a band, so PD adds no IP-target band.
 *
 * A mixed pool (PD with /32 secondaries left by the /28 -> /32 fallback or by
 * a switch out of secondary-IP mode) shrinks back to prefixes: while EC2 is
 * not refusing prefixes (plan_input.prefixes_refused), free /32s are not what
 * the targets want, so prefixes are added to meet them (actions marked
 * `replace`: a refusal then assigns no /32s), and the free /32s the prefixes
 * make unneeded are released past the shrink delay (never one held, cooling
 * or releasing: plan_eni.free_ips counts only usable ones). An ENI whose
 * slots are all taken first gives back /32s to make room. While prefixes are
 * refused, /32s are supply like any address and only those above the
 * targets go back. Secondary-IP mode releases empty leftover prefixes first.
 *
 * Both modes: with plan_input.max_pods set, the pool never grows past what
 * that many pods need plus the warm target (aws-node stops at max-pods).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "poolconfig.h"

#define PLAN_ENI_ID_MAX 32
#define PLAN_MAX_ACTIONS 64
/* aws-node deletes ENIs only when older than a minute. */
#define PLAN_MIN_ENI_AGE_MS (60 * 1000)

/* The instance type's networking limits (DescribeInstanceTypes). */
struct plan_limits {
        int max_enis;           /* MaximumNetworkInterfaces */
        int ipv4_per_eni;       /* Ipv4AddressesPerInterface, primary included */
};

/* One attached ENI, as counted by the store. */
struct plan_eni {
        char id[PLAN_ENI_ID_MAX];
        int device_index;
        bool is_primary;
        int free;               /* usable now */
        int assigned;           /* held by pods */
        int cooldown;           /* released, not yet reusable */
        int releasing;          /* being unassigned: not usable, still holding a slot */
        int pending;            /* /32s requested from EC2 on this ENI, not yet in the store */
        int64_t age_ms;         /* since it was attached */
        /*
         * /28 prefixes on the ENI. Their 16 addresses each are counted in
         * free/assigned/cooldown/releasing above; a prefix takes one slot.
         */
        int prefixes;
        int empty_prefixes;     /* of those, no address assigned, cooling or releasing */
        int pending_prefixes;   /* requested from EC2 on this ENI, not yet in the store */
        bool no_grow;           /* never assigned more (its subnet ran out a moment ago) */
        bool no_pods;           /* its addresses are not the pods' (custom networking's primary, an ENI
                                   in a subnet tagged kubernetes.io/role/cni=0): never grown, no supply */
        int free_ips;           /* of free: /32 secondaries (not in a prefix), usable now */
};

struct plan_input {
        struct poolconfig cfg;
        struct plan_limits limits;
        const struct plan_eni *enis;
        size_t n_enis;
        int waiting_adds;       /* ADDs blocked on an empty pool */
        int pending_enis;       /* ENIs being created or attached, not in `enis` */
        int pending_eni_ips;    /* the addresses those ENIs were created with */
        int64_t since_grow_ms;  /* time since the last grow action; INT64_MAX if never */
        int peak_assigned;      /* most addresses assigned at once over the last shrink delay */
        bool prefix_delegation; /* ENABLE_PREFIX_DELEGATION: grow and shrink in /28 prefixes */
        int pending_eni_prefixes; /* the prefixes those pending ENIs were created with */
        int max_pods;           /* kubelet's max-pods (plan_max_pods_for); 0 = no bound */
        bool prefixes_refused;  /* PD: EC2 refused prefixes lately (the /28 -> /32 fallback's back-off) */
};

enum plan_kind {
        PLAN_ASSIGN_IPS,        /* assign `count` blocks (see `unit`) to ENI `eni_id` */
        PLAN_CREATE_ENI,        /* create and attach an ENI holding `count` blocks */
        PLAN_RELEASE_IPS,       /* unassign `count` free blocks from ENI `eni_id` */
        PLAN_DELETE_ENI,        /* detach and delete ENI `eni_id` (it holds no pod) */
};

/* What an action's `count` counts. */
enum plan_unit {
        PLAN_UNIT_IP,           /* /32 secondary addresses */
        PLAN_UNIT_PREFIX,       /* /28 prefixes; only ever with plan_input.prefix_delegation */
};

struct plan_action {
        enum plan_kind kind;
        enum plan_unit unit;            /* of count for assign/create/release; PLAN_DELETE_ENI: addresses */
        char eni_id[PLAN_ENI_ID_MAX];   /* empty for PLAN_CREATE_ENI */
        int count;
        bool replace;                   /* prefixes that replace free /32s: if EC2 refuses them,
                                           no /32s are assigned instead (the pool has enough) */
};

/* Why the plan is what it is: for logs, metrics and vpc-ipamctl. */
struct plan_summary {
        bool ip_targets;        /* WARM_IP/MINIMUM_IP mode, else WARM_ENI mode */
        int total, free, assigned, cooldown, releasing, pending;
        int capacity;           /* addresses the allowed ENIs can hold */
        int max_enis;           /* MAX_ENI clamped to the instance limit */
        int shortfall;          /* addresses missing, before capping by capacity */
        int surplus;            /* addresses above the targets */
        bool at_capacity;       /* shortfall that no ENI slot can satisfy */
        bool at_max_pods;       /* shortfall beyond max-pods pods plus the warm target */
        bool prefix_delegation; /* shortfall and surplus are in prefixes, the rest in addresses */
        int prefixes, empty_prefixes;
        int free_ips;           /* PD: free /32 secondaries (fallback or mode-switch leftovers) */
        int surplus_ips;        /* PD: of those, to be returned to EC2 */
};

struct plan {
        struct plan_action actions[PLAN_MAX_ACTIONS];
        size_t n_actions;
        struct plan_summary summary;
};

/* Compute the next actions. -EINVAL on inconsistent input (negative counts, no limits). */
int plan_compute(const struct plan_input *in, struct plan *ret);

/* Secondary addresses one ENI can hold: IPv4 per ENI minus the primary. */
int plan_ips_per_eni(const struct plan_limits *l);

/* ENIs allowed on this node: MAX_ENI clamped to the instance's limit. */
int plan_max_enis(const struct plan_limits *l, const struct poolconfig *cfg);

/* aws-node's published max-pods: ENIs × (IPv4 per ENI − 1) + 2 (m5.large: 29). */
int plan_max_pods(const struct plan_limits *l);

/* Addresses in a /28 prefix. */
#define PLAN_PREFIX_IPS 16

/* What kubelet's max-pods is, as EKS's max-pods-calculator computes it. */
struct plan_maxpods_in {
        int max_enis;           /* the default network card's MaximumNetworkInterfaces */
        int ipv4_per_eni;       /* Ipv4AddressesPerInterface */
        int vcpus;
        bool nitro;             /* hypervisor nitro, or bare metal */
        bool prefix_delegation;
        bool custom_networking; /* the primary ENI holds no pod address */
        int max_eni;            /* MAX_ENI; <= 0: the instance's limit */
        bool cni_before_1_9;    /* a CNI older than 1.9 has no prefix delegation */
};

/*
 * enis = min(max_enis, MAX_ENI) − 1 with custom networking; PD (nitro only,
 * CNI >= 1.9): enis·(ips−1)·16 + 2, else enis·(ips−1) + 2; then capped at 110
 * with up to 30 vCPUs, else 250. -EINVAL on limits below 1.
 */
int plan_max_pods_for(const struct plan_maxpods_in *in);

const char *plan_kind_name(enum plan_kind kind);
const char *plan_unit_name(enum plan_unit unit);
