/*
 * vpc-ipamctl: what the node's pool holds, for an admin at a terminal.
 *
 *   vpc-ipamctl [--socket PATH] [--json] [--max-stall SECONDS] pool|enis|pods|intents|status|live
 *   vpc-ipamctl [--socket PATH] [--json] max-pods [--instance-type T] [--prefix-delegation | --ipv6]
 *               [--custom-networking] [--max-eni N] [--cni-version V]
 *
 * `live` is the liveness probe: it exits 1 when the daemon does not answer
 * or has made no progress (a reconciler pass over a store that commits) for
 * --max-stall seconds (default 300), so kubelet restarts a stuck daemon.
 *
 * It asks vpc-ipamd over its socket (read-only queries) and prints aligned
 * tables, or the daemon's JSON with --json for scripts. Commands come from a
 * table, like wg's subcommands. max-pods is EKS's max-pods-calculator over
 * the compiled-in instance-type table; it asks the daemon only for the
 * node's instance type, when --instance-type is not given.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "instance-limits.h"
#include "planner.h"
#include "protocol.h"

struct column {
        const char *title;
        const char *key;
};

static const char *cell(const cJSON *row, const char *key, char buf[64]) {
        const cJSON *v = cJSON_GetObjectItem(row, key);
        if (cJSON_IsString(v))
                return v->valuestring;
        if (cJSON_IsBool(v))
                return cJSON_IsTrue(v) ? "yes" : "no";
        if (cJSON_IsNumber(v)) {
                snprintf(buf, 64, "%.0f", v->valuedouble);
                return buf;
        }
        return "-";
}

/* Print rows as a table whose columns are as wide as their widest cell. */
static void table(const cJSON *rows, const struct column *cols, size_t n_cols) {
        size_t width[16] = { 0 };
        char buf[64];
        for (size_t c = 0; c < n_cols; c++)
                width[c] = strlen(cols[c].title);
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
                for (size_t c = 0; c < n_cols; c++) {
                        size_t w = strlen(cell(row, cols[c].key, buf));
                        width[c] = w > width[c] ? w : width[c];
                }
        /* The last column is not padded: no trailing blanks. */
        for (size_t c = 0; c < n_cols; c++)
                printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, cols[c].title, c + 1 < n_cols ? "  " : "\n");
        cJSON_ArrayForEach(row, rows)
                for (size_t c = 0; c < n_cols; c++)
                        printf("%-*s%s", c + 1 < n_cols ? (int)width[c] : 0, cell(row, cols[c].key, buf),
                               c + 1 < n_cols ? "  " : "\n");
}

/* The pool's counts; on an IPv6 node (ipv6_prefixes present) without the IPv4 address counts, always 0 there. */
static void show_pool(const cJSON *result) {
        const cJSON *p = cJSON_GetObjectItem(result, "pool");
        char buf[64];
        static const struct {
                const char *title, *key;
                bool v4;
        } rows[] = {
                { "ENIs attached", "enis", false }, { "addresses", "total", true },
                { "assigned to pods", "assigned", true }, { "available now", "available", true },
                { "cooling down", "cooldown", true }, { "being released", "releasing", true },
                { "ADDs waiting", "waiting_adds", false }, { "ready", "ready", false }, { "note", "reason", false },
                /* IPv6 mode only (absent otherwise) */
                { "IPv6 prefixes", "ipv6_prefixes", false }, { "IPv6 assigned", "ipv6_assigned", false },
                { "IPv6 cooling", "ipv6_cooldown", false }, { "IPv4 egress held", "egress_assigned", false },
                /* IPv4 mode with ENABLE_V6_EGRESS */
                { "IPv6 egress held", "egress6_assigned", false },
        };
        bool v6 = cJSON_GetObjectItem(p, "ipv6_prefixes") != NULL;
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
                const char *v = cell(p, rows[i].key, buf);
                if ((strcmp(rows[i].key, "reason") == 0 && !*v) || !cJSON_GetObjectItem(p, rows[i].key) ||
                    (v6 && rows[i].v4))
                        continue;
                printf("%-17s %s\n", rows[i].title, v);
        }
}

/* One row of the blocks table: a block (or an ENI's /32s together) and the use of its addresses. */
static void block_row(cJSON *rows, const char *eni, const char *block, const char *kind, const cJSON *use) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "eni", eni);
        cJSON_AddStringToObject(r, "block", block);
        cJSON_AddStringToObject(r, "kind", kind);
        static const char *const keys[] = { "assigned", "free", "cooldown", "releasing" };
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
                cJSON_AddItemToObject(r, keys[i], cJSON_Duplicate(cJSON_GetObjectItem(use, keys[i]), true));
        cJSON_AddItemToArray(rows, r);
}

/* Per ENI, each /28 prefix and its use, then its /32 secondaries together. */
static void show_blocks(const cJSON *enis) {
        static const struct column cols[] = {
                { "ENI", "eni" }, { "BLOCK", "block" }, { "KIND", "kind" }, { "USED", "assigned" },
                { "FREE", "free" }, { "COOLING", "cooldown" }, { "RELEASING", "releasing" },
        };
        cJSON *rows = cJSON_CreateArray();
        const cJSON *e, *p;
        cJSON_ArrayForEach(e, enis) {
                const char *id = cJSON_GetStringValue(cJSON_GetObjectItem(e, "id"));
                cJSON_ArrayForEach(p, cJSON_GetObjectItem(e, "prefix_use"))
                        block_row(rows, id ? id : "-", cJSON_GetStringValue(cJSON_GetObjectItem(p, "cidr")),
                                  "prefix /28", p);
                const cJSON *ips = cJSON_GetObjectItem(e, "ip_use");
                int n = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(ips, "blocks"));
                char what[32];
                snprintf(what, sizeof what, "%d address%s", n, n == 1 ? "" : "es");
                if (n > 0)
                        block_row(rows, id ? id : "-", what, "secondary /32", ips);
        }
        if (cJSON_GetArraySize(rows) > 0) {
                printf("\n");
                table(rows, cols, sizeof cols / sizeof cols[0]);
        }
        cJSON_Delete(rows);
}

static void show_enis(const cJSON *result) {
        static const struct column cols[] = {
                { "ENI", "id" }, { "DEV", "device_index" }, { "MAC", "mac" }, { "PRIMARY IP", "primary_ip" },
                { "SUBNET", "subnet_cidr" }, { "TABLE", "route_table" }, { "STATE", "state" },
                { "FREE", "free" }, { "USED", "assigned" }, { "COOLING", "cooldown" },
                { "/28S", "prefixes" }, { "/32S", "ips" },
        };
        const cJSON *enis = cJSON_GetObjectItem(result, "enis"), *row;
        table(enis, cols, sizeof cols / sizeof cols[0]);
        show_blocks(enis);
        cJSON_ArrayForEach(row, enis) {         /* IPv6 mode: each ENI's /80s */
                const cJSON *p, *pfx = cJSON_GetObjectItem(row, "ipv6_prefixes");
                cJSON_ArrayForEach(p, pfx)
                        printf("%s IPv6 prefix %s\n", cell(row, "id", (char[64]){ 0 }), cJSON_GetStringValue(p));
        }
}

/* Whether any row has key (the IPv6 columns show only on an IPv6 node). */
static bool any_has(const cJSON *rows, const char *key) {
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
                if (cJSON_GetObjectItem(row, key))
                        return true;
        return false;
}

static void show_pods(const cJSON *result) {
        static const struct column cols[] = {
                { "IP", "ip" }, { "ENI", "eni_id" }, { "NAMESPACE", "pod_namespace" }, { "POD", "pod_name" },
                { "IFNAME", "ifname" }, { "CONTAINER", "container_id" },
        };
        static const struct column cols6[] = {
                { "IP", "ip" }, { "EGRESS IPV4", "egress_ip" }, { "ENI", "eni_id" }, { "NAMESPACE", "pod_namespace" },
                { "POD", "pod_name" }, { "IFNAME", "ifname" }, { "CONTAINER", "container_id" },
        };
        static const struct column cols4[] = {  /* IPv4 pods with ENABLE_V6_EGRESS */
                { "IP", "ip" }, { "EGRESS IPV6", "egress_ip" }, { "ENI", "eni_id" }, { "NAMESPACE", "pod_namespace" },
                { "POD", "pod_name" }, { "IFNAME", "ifname" }, { "CONTAINER", "container_id" },
        };
        const cJSON *rows = cJSON_GetObjectItem(result, "pods"), *first = cJSON_GetArrayItem(rows, 0);
        const cJSON *ip = first ? cJSON_GetObjectItem(first, "ip") : NULL;
        bool v4 = cJSON_IsString(ip) && !strchr(ip->valuestring, ':');
        _Static_assert(sizeof cols4 == sizeof cols6, "one column count for both egress tables");
        if (any_has(rows, "egress_ip"))
                table(rows, v4 ? cols4 : cols6, sizeof cols6 / sizeof cols6[0]);
        else
                table(rows, cols, sizeof cols / sizeof cols[0]);
}

static void show_intents(const cJSON *result) {
        static const struct column cols[] = {
                { "ID", "id" }, { "KIND", "kind" }, { "ENI", "eni_id" }, { "TOKEN", "client_token" },
        };
        const cJSON *rows = cJSON_GetObjectItem(result, "intents");
        if (cJSON_GetArraySize(rows) == 0) {
                printf("no EC2 operation in flight\n");
                return;
        }
        table(rows, cols, sizeof cols / sizeof cols[0]);
}

struct command {
        const char *name;
        enum proto_op op;
        void (*show)(const cJSON *result);
        const char *help;
};

static const struct command commands[] = {
        { "pool", PROTO_OP_POOL, show_pool, "the pool's counts and whether it can serve" },
        { "enis", PROTO_OP_ENIS, show_enis, "the node's ENIs, their blocks (/28 or /32) and their use" },
        { "pods", PROTO_OP_PODS, show_pods, "the addresses held by pods" },
        { "intents", PROTO_OP_INTENTS, show_intents, "EC2 operations begun and not yet settled" },
        { "status", PROTO_OP_STATUS, NULL, "the plugin's readiness check" },
        { "live", PROTO_OP_POOL, NULL, "liveness: 1 when no progress for --max-stall s (300)" },
};

static const struct command *find_command(const char *name) {
        for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++)
                if (strcmp(name, commands[c].name) == 0)
                        return &commands[c];
        return NULL;
}

static int usage(FILE *f) {
        fprintf(f, "usage: vpc-ipamctl [--socket PATH] [--json] [--max-stall SECONDS] COMMAND\n\ncommands:\n");
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
        fprintf(f, "  %-8s %s\n", "max-pods", "kubelet's max-pods as EKS computes it (default: the daemon's node):");
        fprintf(f, "           max-pods [--instance-type T] [--prefix-delegation | --ipv6] [--custom-networking]\n"
                   "                    [--max-eni N] [--cni-version V]\n");
        return f == stderr ? 2 : 0;
}

/* "1.9", "v1.12.6-eksbuild.2": is it older than 1.9? -EINVAL when not a version. */
static int cni_before_1_9(const char *v, bool *ret) {
        unsigned major, minor;
        if (*v == 'v')
                v++;
        if (sscanf(v, "%u.%u", &major, &minor) != 2)
                return -EINVAL;
        *ret = major < 1 || (major == 1 && minor < 9);
        return 0;
}

__attribute__((format(printf, 1, 2))) static int max_pods_fail(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "vpc-ipamctl max-pods: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        return 2;
}

static void print_max_pods(const struct ilimits *t, const struct plan_maxpods_in *m, bool ipv6, int pods, bool json) {
        if (!json) {
                printf("%d\n", pods);
                return;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "instance_type", t->name);
        cJSON_AddNumberToObject(o, "max_pods", pods);
        cJSON_AddNumberToObject(o, "enis", m->max_enis);
        cJSON_AddNumberToObject(o, "ipv4_per_eni", m->ipv4_per_eni);
        cJSON_AddNumberToObject(o, "vcpus", m->vcpus);
        cJSON_AddBoolToObject(o, "nitro", m->nitro);
        cJSON_AddBoolToObject(o, "prefix_delegation", m->prefix_delegation && m->nitro && !m->cni_before_1_9);
        cJSON_AddBoolToObject(o, "ipv6", ipv6);
        char *s = cJSON_Print(o);
        printf("%s\n", s ? s : "null");
        free(s);
        cJSON_Delete(o);
}

/*
 * IPv6: EKS computes it as for prefix delegation (the /80 holds far more than
 * the cap, so the 110/250 cap decides on any type with enough slots); a node
 * aws-node would not start in IPv6 mode has no answer.
 */
static int ipv6_refusal(const struct ilimits *t, const struct plan_maxpods_in *m) {
        if (m->custom_networking)
                return max_pods_fail("--ipv6 with --custom-networking: custom networking is not supported in IPv6 mode");
        if (!m->nitro)
                return max_pods_fail("--ipv6: %s is not nitro; IPv6 needs prefix delegation, which needs nitro "
                                     "(aws-node does not start)", t->name);
        if (m->cni_before_1_9)
                return max_pods_fail("--ipv6: CNI before 1.9 has no prefix delegation, which IPv6 needs");
        return 0;
}

/* The node's instance type, as the daemon at `sock` reports it in its pool reply. */
static int node_instance_type(const char *sock, char *buf, size_t len) {
        struct proto_request req = { .op = PROTO_OP_POOL };
        struct proto_reply rep = { 0 };
        struct errmsg err = { 0 };
        int r = proto_call(sock, &req, 5000, &rep, &err);
        if (r < 0)
                return max_pods_fail("--instance-type T is needed, or a vpc-ipamd to ask for its node's: %s (--socket "
                                     "PATH)", errmsg_text(&err, r));
        const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(rep.result, "pool"), "instance_type");
        r = rep.ok && cJSON_IsString(t) && t->valuestring[0] ? 0 : 2;
        if (r == 0)
                snprintf(buf, len, "%s", t->valuestring);
        proto_reply_done(&rep);
        return r ? max_pods_fail("vpc-ipamd did not report its node's instance type: --instance-type T is needed") : 0;
}

/* vpc-ipamctl max-pods: the calculator's flags, spelled as in the issue. */
static int cmd_max_pods(int argc, char **argv, bool json, const char *sock) {
        struct plan_maxpods_in m = { 0 };
        const char *type = NULL;
        char node_type[64];
        bool ipv6 = false;
        for (int i = 0; i < argc; i++) {
                char *end;
                if (strcmp(argv[i], "--instance-type") == 0 && i + 1 < argc)
                        type = argv[++i];
                else if (strcmp(argv[i], "--prefix-delegation") == 0)
                        m.prefix_delegation = true;
                else if (strcmp(argv[i], "--json") == 0)
                        json = true;
                else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
                        sock = argv[++i];
                else if (strcmp(argv[i], "--ipv6") == 0)
                        ipv6 = m.prefix_delegation = true;     /* IPv6 is prefix delegation only (aws-node) */
                else if (strcmp(argv[i], "--custom-networking") == 0)
                        m.custom_networking = true;
                else if (strcmp(argv[i], "--max-eni") == 0 && i + 1 < argc) {
                        long n = strtol(argv[++i], &end, 10);
                        if (*end || end == argv[i] || n < 1 || n > 1000)
                                return max_pods_fail("--max-eni %s: expected a whole number from 1", argv[i]);
                        m.max_eni = (int)n;
                } else if (strcmp(argv[i], "--cni-version") == 0 && i + 1 < argc) {
                        if (cni_before_1_9(argv[++i], &m.cni_before_1_9) < 0)
                                return max_pods_fail("--cni-version %s: expected MAJOR.MINOR[...], e.g. 1.19.2", argv[i]);
                } else
                        return max_pods_fail("unexpected argument \"%s\"", argv[i]);
        }
        if (!type) {
                int r = node_instance_type(sock, node_type, sizeof node_type);
                if (r)
                        return r;
                type = node_type;
        }
        const struct ilimits *t = ilimits_lookup(type);
        if (!t)
                return max_pods_fail("%s: not in the built-in table of common instance types", type);
        m.max_enis = ilimits_default_card_enis(t);
        m.ipv4_per_eni = t->ipv4_per_eni;
        m.vcpus = t->vcpus;
        m.nitro = ilimits_nitro(t);
        int r = ipv6 ? ipv6_refusal(t, &m) : 0;
        if (r)
                return r;
        if (m.prefix_delegation && !m.nitro)
                fprintf(stderr, "vpc-ipamctl max-pods: %s is not nitro: no prefix delegation there "
                                "(aws-node falls back to secondary IPs)\n", t->name);
        else if (m.prefix_delegation && m.cni_before_1_9)
                fprintf(stderr, "vpc-ipamctl max-pods: CNI before 1.9 has no prefix delegation\n");
        int pods = plan_max_pods_for(&m);
        if (pods < 0)
                return max_pods_fail("%s: the table's limits are unusable", type);
        print_max_pods(t, &m, ipv6, pods, json);
        return 0;
}

static int show_status(const struct proto_reply *rep, bool json) {
        if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddBoolToObject(o, "ready", rep->ready);
                cJSON_AddNumberToObject(o, "available", rep->available);
                cJSON_AddStringToObject(o, "reason", rep->reason);
                char *s = cJSON_Print(o);
                printf("%s\n", s ? s : "null");
                free(s);
                cJSON_Delete(o);
        } else
                printf("%s: %u addresses available%s%s\n", rep->ready ? "ready" : "not ready", rep->available,
                       rep->reason[0] ? "; " : "", rep->reason);
        return rep->ready ? 0 : 1;
}

/* live: the daemon answered; has it made progress lately? */
static int show_live(const cJSON *result, long max_stall_s, bool json) {
        const cJSON *p = cJSON_GetObjectItem(result, "pool");
        const cJSON *st = cJSON_GetObjectItem(p, "stalled_ms");
        const cJSON *why = cJSON_GetObjectItem(p, "reason");
        double stalled_s = cJSON_IsNumber(st) ? st->valuedouble / 1000 : 0;
        bool live = stalled_s <= (double)max_stall_s;
        const char *reason = cJSON_IsString(why) ? why->valuestring : "";
        if (json)
                printf("{\"live\": %s, \"stalled_s\": %.0f, \"reason\": \"%s\"}\n", live ? "true" : "false",
                       stalled_s, live ? "" : "no progress");
        else if (live)
                printf("live: last progress %.0f s ago\n", stalled_s);
        else
                printf("not live: no progress for %.0f s (bound %ld s)%s%s\n", stalled_s, max_stall_s,
                       reason[0] ? ": " : "", reason);
        return live ? 0 : 1;
}

int main(int argc, char **argv) {
        const char *sock = getenv("VPC_IPAM_SOCKET") ? getenv("VPC_IPAM_SOCKET") : PROTO_SOCKET_DEFAULT;
        bool json = false;
        long max_stall_s = 300;
        const struct command *cmd = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--json") == 0)
                        json = true;
                else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
                        sock = argv[++i];
                else if (strcmp(argv[i], "--max-stall") == 0 && i + 1 < argc) {
                        char *end = NULL;
                        max_stall_s = strtol(argv[++i], &end, 10);
                        if (!end || *end || max_stall_s < 1) {
                                fprintf(stderr, "vpc-ipamctl: --max-stall wants a number of seconds >= 1\n");
                                return 2;
                        }
                }
                else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
                        return usage(stdout);
                else if (!cmd && strcmp(argv[i], "max-pods") == 0)
                        return cmd_max_pods(argc - i - 1, argv + i + 1, json, sock);
                else if (cmd || !(cmd = find_command(argv[i]))) {
                        fprintf(stderr, "vpc-ipamctl: unexpected argument \"%s\"\n", argv[i]);
                        return usage(stderr);
                }
        }
        if (!cmd)
                return usage(stderr);
        struct proto_request req = { .op = cmd->op };
        struct proto_reply rep = { 0 };
        struct errmsg err = { 0 };
        int r = proto_call(sock, &req, 5000, &rep, &err);
        if (r < 0) {
                fprintf(stderr, "vpc-ipamctl: %s%s\n", errmsg_text(&err, r),
                        r == -ENOENT || r == -ECONNREFUSED ? " (is vpc-ipamd running? --socket PATH)" : "");
                return 1;
        }
        if (!rep.ok) {
                fprintf(stderr, "vpc-ipamctl: %s: %s\n", rep.error.code, rep.error.msg);
                proto_reply_done(&rep);
                return 1;
        }
        if (strcmp(cmd->name, "live") == 0)
                r = show_live(rep.result, max_stall_s, json);
        else if (!cmd->show)
                r = show_status(&rep, json);
        else if (json) {
                char *s = cJSON_Print(cJSON_GetObjectItem(rep.result, cmd->name));
                printf("%s\n", s ? s : "null");
                free(s);
        } else
                cmd->show(rep.result);
        proto_reply_done(&rep);
        return r;
}
