"""Instance types the emulator knows, with their real EC2 network limits.

Figures are DescribeInstanceTypes' NetworkInfo as published by AWS (the same
table aws-vpc-cni generates into vpc_ip_resource_limit.go): maximum ENIs,
IPv4 addresses per ENI (the primary included; each /28 prefix takes one of
these slots), network cards, and the hypervisor (prefix delegation needs
nitro).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    name: str
    enis: int               # MaximumNetworkInterfaces (all cards together)
    ipv4_per_eni: int       # Ipv4AddressesPerInterface, primary included
    ipv6_per_eni: int
    hypervisor: str         # "nitro" or "xen"
    vcpus: int
    memory_mib: int
    performance: str
    cards: int = 1          # MaximumNetworkCards; ENIs split evenly
    bare_metal: bool = False

    @property
    def nitro(self):
        return self.hypervisor == "nitro" or self.bare_metal

    def enis_per_card(self, card):
        return self.enis // self.cards


_TYPES = [
    InstanceType("t3.nano", 2, 2, 2, "nitro", 2, 512, "Up to 5 Gigabit"),
    InstanceType("t3.micro", 2, 2, 2, "nitro", 2, 1024, "Up to 5 Gigabit"),
    InstanceType("t3.small", 3, 4, 4, "nitro", 2, 2048, "Up to 5 Gigabit"),
    InstanceType("t3.medium", 3, 6, 6, "nitro", 2, 4096, "Up to 5 Gigabit"),
    InstanceType("t3.large", 3, 12, 12, "nitro", 2, 8192, "Up to 5 Gigabit"),
    InstanceType("t3.xlarge", 4, 15, 15, "nitro", 4, 16384, "Up to 5 Gigabit"),
    InstanceType("t2.medium", 3, 6, 6, "xen", 2, 4096, "Low to Moderate"),
    InstanceType("m4.large", 2, 10, 10, "xen", 2, 8192, "Moderate"),
    InstanceType("m5.large", 3, 10, 10, "nitro", 2, 8192, "Up to 10 Gigabit"),
    InstanceType("m5.xlarge", 4, 15, 15, "nitro", 4, 16384, "Up to 10 Gigabit"),
    InstanceType("m5.2xlarge", 4, 15, 15, "nitro", 8, 32768, "Up to 10 Gigabit"),
    InstanceType("m5.4xlarge", 8, 30, 30, "nitro", 16, 65536, "Up to 10 Gigabit"),
    InstanceType("m5.8xlarge", 8, 30, 30, "nitro", 32, 131072, "10 Gigabit"),
    InstanceType("m5.24xlarge", 15, 50, 50, "nitro", 96, 393216, "25 Gigabit"),
    InstanceType("m5.metal", 15, 50, 50, "", 96, 393216, "25 Gigabit", bare_metal=True),
    InstanceType("c5.large", 3, 10, 10, "nitro", 2, 4096, "Up to 10 Gigabit"),
    InstanceType("c5.xlarge", 4, 15, 15, "nitro", 4, 8192, "Up to 10 Gigabit"),
    InstanceType("c5.4xlarge", 8, 30, 30, "nitro", 16, 32768, "Up to 10 Gigabit"),
    InstanceType("c5.18xlarge", 15, 50, 50, "nitro", 72, 147456, "25 Gigabit"),
    InstanceType("r5.large", 3, 10, 10, "nitro", 2, 16384, "Up to 10 Gigabit"),
    InstanceType("m6i.large", 3, 10, 10, "nitro", 2, 8192, "Up to 12.5 Gigabit"),
    InstanceType("p4d.24xlarge", 60, 50, 50, "nitro", 96, 1179648, "4x 100 Gigabit", cards=4),
]

TYPES = {t.name: t for t in _TYPES}

# An ENI that is not attached is bounded by the largest per-ENI limit.
MAX_IPV4_PER_ENI = max(t.ipv4_per_eni for t in _TYPES)
