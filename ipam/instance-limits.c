/*
 * instance-limits: the compiled-in instance-type table (see the header for
 * its source). Rows in tests/emulator/vpcworld/instance_types.py's order.
 */
#include <string.h>

#include "instance-limits.h"

static const struct ilimits table[] = {
        /* name, ENIs, IPv4/ENI, vCPUs, hypervisor, bare metal, cards */
        { "t3.nano", 2, 2, 2, "nitro", false, 1 },
        { "t3.micro", 2, 2, 2, "nitro", false, 1 },
        { "t3.small", 3, 4, 2, "nitro", false, 1 },
        { "t3.medium", 3, 6, 2, "nitro", false, 1 },
        { "t3.large", 3, 12, 2, "nitro", false, 1 },
        { "t3.xlarge", 4, 15, 4, "nitro", false, 1 },
        { "t2.medium", 3, 6, 2, "xen", false, 1 },
        { "m4.large", 2, 10, 2, "xen", false, 1 },
        { "m5.large", 3, 10, 2, "nitro", false, 1 },
        { "m5.xlarge", 4, 15, 4, "nitro", false, 1 },
        { "m5.2xlarge", 4, 15, 8, "nitro", false, 1 },
        { "m5.4xlarge", 8, 30, 16, "nitro", false, 1 },
        { "m5.8xlarge", 8, 30, 32, "nitro", false, 1 },
        { "m5.24xlarge", 15, 50, 96, "nitro", false, 1 },
        { "m5.metal", 15, 50, 96, "", true, 1 },
        { "c5.large", 3, 10, 2, "nitro", false, 1 },
        { "c5.xlarge", 4, 15, 4, "nitro", false, 1 },
        { "c5.4xlarge", 8, 30, 16, "nitro", false, 1 },
        { "c5.18xlarge", 15, 50, 72, "nitro", false, 1 },
        { "r5.large", 3, 10, 2, "nitro", false, 1 },
        { "m6i.large", 3, 10, 2, "nitro", false, 1 },
        { "p4d.24xlarge", 60, 50, 96, "nitro", false, 4 },
};

const struct ilimits *ilimits_at(size_t i) {
        return i < sizeof table / sizeof table[0] ? &table[i] : NULL;
}

const struct ilimits *ilimits_lookup(const char *name) {
        for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
                if (strcmp(table[i].name, name) == 0)
                        return &table[i];
        return NULL;
}

bool ilimits_nitro(const struct ilimits *t) {
        return strcmp(t->hypervisor, "nitro") == 0 || t->bare_metal;
}

int ilimits_default_card_enis(const struct ilimits *t) {
        return t->max_enis / (t->cards > 0 ? t->cards : 1);
}
