/*
 * cloud-probe: vpc-ipam's own cloud client (cloud/) against the emulated VPC.
 *
 * Run by test_cloud.py inside a node namespace with only
 * AWS_ENDPOINT_URL_EC2 set, exactly as the daemon would run: the region and
 * the credentials come from IMDS (the instance role, with its session
 * token), EC2 is reached through the fabric. It walks one ENI through its
 * life (create with tags and secondaries, attach, delete-on-termination,
 * prefix and address assignment, a limit error, paging, unassign, detach,
 * delete) and checks each EC2 answer and what IMDS then shows. Each step
 * prints one TAP line; the exit status is 1 when any step failed.
 *
 * usage: cloud-probe INSTANCE_ID PRIMARY_IP PRIMARY_MAC SUBNET_ID REGION
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec2.h"
#include "errmsg.h"
#include "imds.h"

struct probe {
        const char *instance, *primary_ip, *primary_mac, *subnet, *region;
        imds *md;
        ec2_client *ec2;
        char eni[IMDS_ID_MAX];
        char mac[IMDS_MAC_LEN];
        char attachment[96];
        char prefix[32];
        unsigned step, failed;
};

static void report(struct probe *p, bool ok, const char *name, const char *detail) {
        p->step++;
        if (!ok)
                p->failed++;
        printf("%sok %u - %s%s%s\n", ok ? "" : "not ", p->step, name, detail ? ": " : "", detail ? detail : "");
        fflush(stdout);
}

static bool ec2_failed(struct probe *p, int r, const char *name, const struct ec2_error *e) {
        char detail[512];

        if (r >= 0)
                return false;
        snprintf(detail, sizeof detail, "r=%d http=%ld code=%s %s", r, e->http_status, e->code, e->message);
        report(p, false, name, detail);
        return true;
}

static void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        nanosleep(&ts, NULL);
}

static void step_imds_identity(struct probe *p) {
        char id[IMDS_ID_MAX] = "", region[IMDS_ID_MAX] = "", mac[IMDS_MAC_LEN] = "";
        struct errmsg err = {0};
        struct imds_eni *eni = NULL;
        char ip[INET_ADDRSTRLEN] = "";
        bool ok;

        ok = imds_instance_id(p->md, id, &err) == 0 && imds_region(p->md, region, &err) == 0 &&
             imds_primary_mac(p->md, mac, &err) == 0 && imds_eni(p->md, mac, &eni, &err) == 0;
        if (ok && eni->n_local_ipv4s > 0)
                inet_ntop(AF_INET, &eni->local_ipv4s[0], ip, sizeof ip);
        ok = ok && strcmp(id, p->instance) == 0 && strcmp(region, p->region) == 0 &&
             strcmp(mac, p->primary_mac) == 0 && eni->device_number == 0 && strcmp(ip, p->primary_ip) == 0 &&
             strcmp(eni->subnet_id, p->subnet) == 0 && eni->n_vpc_cidrs >= 1;
        report(p, ok, "IMDS: identity and the primary ENI", ok ? NULL : err.text);
        imds_eni_free(eni);
}

static void step_describe(struct probe *p) {
        struct ec2_result *r = NULL;
        struct ec2_error e = {0};
        const char *types[] = { "m5.large" };
        int k;

        k = ec2_describe_instance(p->ec2, p->instance, &r, &e);
        if (ec2_failed(p, k, "DescribeInstances", &e))
                return;
        report(p, r->n_instances == 1 && strcmp(r->instances[0].private_ip, p->primary_ip) == 0 &&
                  r->instances[0].n_enis == 1 && r->instances[0].enis[0].attachment.device_index == 0,
               "DescribeInstances", NULL);
        r = ec2_result_free(r);
        k = ec2_describe_instance_types(p->ec2, types, 1, &r, &e);
        if (ec2_failed(p, k, "DescribeInstanceTypes", &e))
                return;
        report(p, r->n_types == 1 && r->types[0].max_enis == 3 && r->types[0].ipv4_per_eni == 10,
               "DescribeInstanceTypes: m5.large is 3 x 10", NULL);
        ec2_result_free(r);
}

static void step_create_attach(struct probe *p) {
        struct ec2_tag tags[] = { { "node.k8s.amazonaws.com/instance_id", p->instance } };
        struct ec2_create_eni req = { .subnet_id = p->subnet, .description = "aws-K8S-probe",
                                      .tags = tags, .n_tags = 1, .secondary_ip_count = 2 };
        struct ec2_result *r = NULL;
        struct ec2_error e = {0};
        int k;

        k = ec2_create_eni(p->ec2, &req, &r, &e);
        if (ec2_failed(p, k, "CreateNetworkInterface", &e))
                return;
        snprintf(p->eni, sizeof p->eni, "%s", r->enis[0].id);
        snprintf(p->mac, sizeof p->mac, "%s", r->enis[0].mac);
        report(p, r->enis[0].n_private_ips == 3 && r->enis[0].n_tags == 1, "CreateNetworkInterface", NULL);
        r = ec2_result_free(r);
        k = ec2_attach_eni(p->ec2, p->eni, p->instance, 1, 0, &r, &e);
        if (ec2_failed(p, k, "AttachNetworkInterface", &e))
                return;
        snprintf(p->attachment, sizeof p->attachment, "%s", r->attachment_id);
        report(p, strncmp(p->attachment, "eni-attach-", 11) == 0, "AttachNetworkInterface", NULL);
        ec2_result_free(r);
        k = ec2_set_delete_on_termination(p->ec2, p->eni, p->attachment, true, &e);
        if (!ec2_failed(p, k, "ModifyNetworkInterfaceAttribute", &e))
                report(p, true, "ModifyNetworkInterfaceAttribute", NULL);
}

/* Poll IMDS (bounded) until the new ENI shows n addresses and n_prefixes prefixes. */
static bool imds_shows(struct probe *p, size_t n, size_t n_prefixes) {
        for (int i = 0; i < 100; i++) {
                struct imds_eni *eni = NULL;
                struct errmsg err = {0};
                bool ok = imds_eni(p->md, p->mac, &eni, &err) == 0 && eni->device_number == 1 &&
                          eni->n_local_ipv4s == n && eni->n_prefixes == n_prefixes;

                imds_eni_free(eni);
                if (ok)
                        return true;
                sleep_ms(50);
        }
        return false;
}

static void step_assign(struct probe *p) {
        struct ec2_result *r = NULL;
        struct ec2_error e = {0};
        bool ok;
        int k;

        k = ec2_assign_private_ips(p->ec2, p->eni, 0, 1, &r, &e);
        if (ec2_failed(p, k, "AssignPrivateIpAddresses (prefix)", &e))
                return;
        if (r->n_prefixes == 1)
                snprintf(p->prefix, sizeof p->prefix, "%s", r->prefixes[0]);
        report(p, r->n_prefixes == 1 && r->n_ips == 0, "AssignPrivateIpAddresses (prefix)", NULL);
        r = ec2_result_free(r);
        report(p, imds_shows(p, 3, 1), "IMDS: the attached ENI with its addresses and prefix", NULL);
        /* 3 addresses + 1 prefix used of m5.large's 10: 7 more do not fit */
        k = ec2_assign_private_ips(p->ec2, p->eni, 7, 0, &r, &e);
        ok = k < 0 && strcmp(e.code, "PrivateIpAddressLimitExceeded") == 0 && e.http_status == 400;
        report(p, ok, "PrivateIpAddressLimitExceeded", ok ? NULL : e.code);
        r = ec2_result_free(r);
}

static void step_page(struct probe *p) {
        const char *values[] = { p->instance };
        struct ec2_filter f = { "attachment.instance-id", values, 1 };
        struct ec2_result *r = NULL;
        struct ec2_error e = {0};
        int k;

        k = ec2_describe_enis_page(p->ec2, &f, 1, 5, NULL, &r, &e);
        if (ec2_failed(p, k, "DescribeNetworkInterfaces (filter, page)", &e))
                return;
        report(p, r->n_enis == 2 && r->next_token == NULL, "DescribeNetworkInterfaces (filter, page)", NULL);
        ec2_result_free(r);
}

static void step_release(struct probe *p) {
        const char *items[] = { p->prefix };
        struct ec2_result *r = NULL;
        struct ec2_error e = {0};
        bool deleted = false;
        int k;

        k = ec2_unassign_private_ips(p->ec2, p->eni, items, 1, true, &e);
        if (!ec2_failed(p, k, "UnassignPrivateIpAddresses (prefix)", &e))
                report(p, imds_shows(p, 3, 0), "UnassignPrivateIpAddresses (prefix), seen by IMDS", NULL);
        k = ec2_detach_eni(p->ec2, p->attachment, false, &e);
        if (ec2_failed(p, k, "DetachNetworkInterface", &e))
                return;
        for (int i = 0; i < 100 && !deleted; i++) {       /* in use until the detach completes */
                deleted = ec2_delete_eni(p->ec2, p->eni, &e) == 0;
                if (!deleted)
                        sleep_ms(50);
        }
        report(p, deleted, "DetachNetworkInterface, then DeleteNetworkInterface", deleted ? NULL : e.code);
        k = ec2_describe_enis(p->ec2, (const char *[]){ p->eni }, 1, &r, &e);
        deleted = k == -ENOENT && strcmp(e.code, "InvalidNetworkInterfaceID.NotFound") == 0;
        report(p, deleted, "the deleted ENI is NotFound", deleted ? NULL : e.code);
        ec2_result_free(r);
}

int main(int argc, char **argv) {
        struct probe p = {0};
        struct imds_options mo = {0};
        struct ec2_options eo = {0};
        struct errmsg err = {0};

        if (argc != 6) {
                fprintf(stderr, "usage: cloud-probe INSTANCE_ID PRIMARY_IP PRIMARY_MAC SUBNET_ID REGION\n");
                return 2;
        }
        p.instance = argv[1], p.primary_ip = argv[2], p.primary_mac = argv[3];
        p.subnet = argv[4], p.region = argv[5];
        if (imds_new(&mo, &p.md, &err) < 0 || ec2_client_new(&eo, &p.ec2, &err) < 0) {
                printf("not ok 1 - clients: %s\n1..1\n", err.text);
                return 1;
        }
        report(&p, strcmp(ec2_client_region(p.ec2), p.region) == 0, "region from IMDS", ec2_client_region(p.ec2));
        step_imds_identity(&p);
        step_describe(&p);
        step_create_attach(&p);
        if (p.attachment[0]) {
                step_assign(&p);
                step_page(&p);
                step_release(&p);
        }
        printf("1..%u\n", p.step);
        ec2_client_free(p.ec2);
        imds_free(p.md);
        return p.failed ? 1 : 0;
}
