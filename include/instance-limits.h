/*
 * instance-limits: a compiled-in table of common EC2 instance types' network
 * limits, for answers that need no running daemon and no AWS access
 * (vpc-ipamctl max-pods --instance-type).
 *
 * Source: DescribeInstanceTypes' NetworkInfo, VCpuInfo and Hypervisor as AWS
 * publishes them (the table aws-vpc-cni generates into vpc_ip_resource_limit.go);
 * the rows are exactly tests/emulator/vpcworld/instance_types.py's, and
 * tests/test_instance_limits.py fails when the two drift apart. The daemon
 * itself asks EC2 (daemon/node.c), never this table.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct ilimits {
        const char *name;
        int max_enis;           /* MaximumNetworkInterfaces, all cards together */
        int ipv4_per_eni;       /* Ipv4AddressesPerInterface, primary included */
        int vcpus;              /* VCpuInfo.DefaultVCpus */
        const char *hypervisor; /* "nitro", "xen", "" for bare metal */
        bool bare_metal;
        int cards;              /* MaximumNetworkCards; ENIs split evenly */
};

/* The row for an instance type; NULL when the table does not know it. */
const struct ilimits *ilimits_lookup(const char *name);

/* The i-th row; NULL past the end. */
const struct ilimits *ilimits_at(size_t i);

/* Prefix delegation needs nitro (AU IsPrefixDelegationSupported): nitro or bare metal. */
bool ilimits_nitro(const struct ilimits *t);

/* MaximumNetworkInterfaces of the default network card (what max-pods uses). */
int ilimits_default_card_enis(const struct ilimits *t);
