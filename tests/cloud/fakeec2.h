/*
 * fakeec2: a small stateful model of EC2's ENI API, and of the IMDS view of
 * the instance's attached ENIs, on one fakesrv (127.0.0.1). It answers
 * DescribeNetworkInterfaces (ids; filters attachment.instance-id, status,
 * tag:KEY; MaxResults/NextToken), CreateNetworkInterface (ClientToken
 * idempotent), AttachNetworkInterface, ModifyNetworkInterfaceAttribute
 * (DeleteOnTermination), Assign/UnassignPrivateIpAddresses, Detach (done at
 * once), DeleteNetworkInterface and, when the VPC has IPv6 (ipv6 set),
 * Assign/UnassignIpv6Addresses (counts or items; /80 prefixes aligned in the
 * subnet's /64), with EC2's error codes for the refusals
 * the daemon relies on. It is what the daemon's EC2-facing modules are tested
 * against without a kernel (tests/test-eniops.c, test-sync.c, test-reconciler.c).
 *
 * The state is a plain struct: a test reads or changes it between calls, or
 * under fakeec2_lock() while another thread is calling. Two kinds of trouble
 * can be scripted: fail the next n calls of an action with an HTTP status and
 * code, and "crash" a process on an action — SIGKILL it before or after the
 * model applies the call, then answer — which is how a daemon killed between
 * intent_begin and intent_end is made.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "ec2.h"
#include "fakesrv.h"

#define FAKEEC2_INSTANCE "i-0fake00000000000001"
#define FAKEEC2_SUBNET "subnet-0fake000000000001"
#define FAKEEC2_SUBNET_CIDR "10.0.0.0/16"
#define FAKEEC2_SG "sg-0fake000000000001"
#define FAKEEC2_MAX_ENIS 16
#define FAKEEC2_MAX_IPS 64
#define FAKEEC2_MAX_TAGS 12
#define FAKEEC2_MAX_V6 8
/* With ipv6: the VPC's /56 and the subnet's /64 (as vpc-world up --ipv6 makes them). */
#define FAKEEC2_VPC_CIDR6 "2600:1f14:abc:de00::/56"
#define FAKEEC2_SUBNET_CIDR6 "2600:1f14:abc:de00::/64"

struct fakeec2_tag {
        char key[128];
        char value[256];
};

struct fakeec2_eni {
        char id[32];
        char mac[18];
        char subnet_id[32];
        char description[128];
        char primary_ip[16];
        char ips[FAKEEC2_MAX_IPS][16];  /* secondary addresses */
        size_t n_ips;
        char prefixes[FAKEEC2_MAX_IPS][20];     /* /28 prefixes (Ipv4PrefixCount), one slot each */
        size_t n_prefixes;
        char ipv6s[FAKEEC2_MAX_V6][46];         /* IPv6 addresses (ipv6: one on each new ENI) */
        size_t n_ipv6s;
        char ipv6_prefixes[FAKEEC2_MAX_V6][44]; /* /80s */
        size_t n_ipv6_prefixes;
        char client_token[65];
        struct fakeec2_tag tags[FAKEEC2_MAX_TAGS];
        size_t n_tags;
        /* attachment: attached when attachment_id is set */
        char attachment_id[48];
        char instance_id[32];
        int device_index;
        bool delete_on_termination;
};

struct fakeec2 {
        struct fakesrv *srv;
        pthread_mutex_t lock;
        char instance_id[32];           /* whose ENIs IMDS lists; "" at start: FAKEEC2_INSTANCE */
        int ipv4_per_eni;               /* primary included; 0 at start: 10 (m5.large) */
        unsigned page_size;             /* Describe pages at most this many (0: MaxResults only) */
        bool ipv6;                      /* the VPC and subnet have IPv6 CIDRs (set before adding ENIs) */
        struct fakeec2_eni enis[FAKEEC2_MAX_ENIS];
        size_t n_enis;
        unsigned next_host, next_id, next_prefix, next_v6;
        unsigned calls[_EC2_ACTION_MAX];
        /* fail the next fail_times calls of fail_action (fail_times 0: none); with
         * fail_after_apply the model applies each call first (an answer lost or wrong) */
        enum ec2_action fail_action;
        int fail_times, fail_status;
        const char *fail_code;
        bool fail_after_apply;
        /* SIGKILL crash_pid at its first call of crash_action, before or after applying it */
        enum ec2_action crash_action;
        bool crash_after_apply;
        pid_t crash_pid;
        bool crashed;
        /* each Create's answer is held create_delay_ms (0: none); min_create_gap_ms is the least
         * time between two Creates' arrivals: creates made one by one are at least the delay apart */
        unsigned create_delay_ms;
        long long min_create_gap_ms, last_create_ms;
        unsigned n_creates_timed;
        /* an attach also takes the ENI's last secondary address away: EC2 changed after the create's reply */
        bool take_ip_at_attach;
        char **bodies;                  /* replies, kept until stop (fakesrv copies them late) */
        size_t n_bodies;
};

/* Start the model (f zeroed, then configured) on a free loopback port. */
void fakeec2_start(struct fakeec2 *f);
void fakeec2_stop(struct fakeec2 *f);
const char *fakeec2_url(struct fakeec2 *f);

void fakeec2_lock(struct fakeec2 *f);
void fakeec2_unlock(struct fakeec2 *f);

/* Add an ENI: attached to instance (NULL: none) at device_index, with n secondary
 * addresses and, when tagged, this instance's tag. Returns it (valid until the next add or delete). */
struct fakeec2_eni *fakeec2_add_eni(struct fakeec2 *f, const char *id, const char *instance, int device_index,
                                    size_t n_ips, bool tagged);
struct fakeec2_eni *fakeec2_find(struct fakeec2 *f, const char *id);
/* Remove one secondary address (EC2 taking it away); false when the ENI lacks it. */
bool fakeec2_take_ip(struct fakeec2 *f, const char *eni_id, const char *ip);
/* Remove one /28 prefix; false when the ENI lacks it. */
bool fakeec2_take_prefix(struct fakeec2 *f, const char *eni_id, const char *prefix);
/* Give an ENI a /80 (as someone else would, or a previous run); returns it, NULL when the ENI is unknown. */
const char *fakeec2_add_ipv6_prefix(struct fakeec2 *f, const char *eni_id);
/* Detach an ENI (as someone else would); false when it is unknown or not attached. */
bool fakeec2_detach(struct fakeec2 *f, const char *eni_id);
unsigned fakeec2_calls(struct fakeec2 *f, enum ec2_action a);

/* An EC2 client for the model (environment credentials, no retries' sleeps). */
ec2_client *fakeec2_client(struct fakeec2 *f);
/* An IMDS client for the model. */
imds *fakeec2_imds(struct fakeec2 *f);
