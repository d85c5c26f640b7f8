/*
 * fakeec2: the model behind fakeec2.h. One handler serves both faces: a POST
 * is an EC2 Query call (form body decoded, dispatched on Action, answered in
 * EC2's XML), a GET or PUT under /latest/ is IMDS listing the attached ENIs
 * of the instance. fakesrv calls the handler once per request; the model's own
 * mutex is taken around it so a test thread can look in at the same time.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "fakeec2.h"

/* --- a growing string ----------------------------------------------------- */

struct sb {
        char *s;
        size_t len, cap;
};

__attribute__((format(printf, 2, 3)))
static void sb_printf(struct sb *b, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (b->len + (size_t)n + 1 > b->cap) {
                b->cap = (b->len + (size_t)n + 1) * 2;
                b->s = realloc(b->s, b->cap);
                if (!b->s)
                        abort();
        }
        va_start(ap, fmt);
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
}

static void sb_text(struct sb *b, const char *tag, const char *v) {
        sb_printf(b, "<%s>", tag);
        for (; *v; v++)
                switch (*v) {
                case '&': sb_printf(b, "&amp;"); break;
                case '<': sb_printf(b, "&lt;"); break;
                case '>': sb_printf(b, "&gt;"); break;
                default: sb_printf(b, "%c", *v);
                }
        sb_printf(b, "</%s>", tag);
}

/* --- the form ------------------------------------------------------------- */

static int hexval(char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void url_decode(const char *s, size_t n, char *out, size_t size) {
        size_t o = 0;
        for (size_t i = 0; i < n && o + 1 < size; i++) {
                if (s[i] == '+')
                        out[o++] = ' ';
                else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
                        out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
                        i += 2;
                } else
                        out[o++] = s[i];
        }
        out[o] = '\0';
}

/* The decoded value of key in the form body; false when absent. */
static bool form_get(const char *body, const char *key, char *out, size_t size) {
        for (const char *p = body; *p;) {
                const char *amp = strchr(p, '&'), *end = amp ? amp : p + strlen(p);
                const char *eq = memchr(p, '=', (size_t)(end - p));
                char k[256];
                if (eq) {
                        url_decode(p, (size_t)(eq - p), k, sizeof k);
                        if (strcmp(k, key) == 0) {
                                url_decode(eq + 1, (size_t)(end - eq - 1), out, size);
                                return true;
                        }
                }
                p = amp ? amp + 1 : end;
        }
        return false;
}

/* The i-th (1-based) member of a list parameter: Prefix.1, Prefix.2, ... */
static bool form_item(const char *body, const char *prefix, int i, char *out, size_t size) {
        char key[96];
        snprintf(key, sizeof key, "%s.%d", prefix, i);
        return form_get(body, key, out, size);
}

static int form_int(const char *body, const char *key, int dflt) {
        char v[32];
        return form_get(body, key, v, sizeof v) ? atoi(v) : dflt;
}

/* --- the model ------------------------------------------------------------ */

struct fakeec2_eni *fakeec2_find(struct fakeec2 *f, const char *id) {
        for (size_t i = 0; i < f->n_enis; i++)
                if (strcmp(f->enis[i].id, id) == 0)
                        return &f->enis[i];
        return NULL;
}

static void new_ip(struct fakeec2 *f, char out[16]) {
        unsigned h = f->next_host++;
        snprintf(out, 16, "10.0.%u.%u", 1 + h / 200, 10 + h % 200);
}

/* Aligned /28s from 10.0.240.0 up, apart from the /32s. */
static void new_prefix(struct fakeec2 *f, char out[20]) {
        unsigned h = f->next_prefix++;
        snprintf(out, 20, "10.0.%u.%u/28", 240 + h / 16, (h % 16) * 16);
}

/* IPv6: addresses 2600:1f14:abc:de00::a:N and /80s 2600:1f14:abc:de00:N::/80, all in the subnet's /64. */
static void new_ipv6(struct fakeec2 *f, char out[46]) {
        snprintf(out, 46, "2600:1f14:abc:de00::a:%x", ++f->next_v6);
}

static void new_ipv6_prefix(struct fakeec2 *f, char out[44]) {
        snprintf(out, 44, "2600:1f14:abc:de00:%x::/80", 0x1000 + ++f->next_v6);
}

const char *fakeec2_add_ipv6_prefix(struct fakeec2 *f, const char *eni_id) {
        struct fakeec2_eni *e = fakeec2_find(f, eni_id);
        if (!e || e->n_ipv6_prefixes == FAKEEC2_MAX_V6)
                return NULL;
        new_ipv6_prefix(f, e->ipv6_prefixes[e->n_ipv6_prefixes]);
        return e->ipv6_prefixes[e->n_ipv6_prefixes++];
}

static void add_tag(struct fakeec2_eni *e, const char *key, const char *value) {
        if (e->n_tags == FAKEEC2_MAX_TAGS)
                abort();
        struct fakeec2_tag *t = &e->tags[e->n_tags++];
        snprintf(t->key, sizeof t->key, "%s", key);
        snprintf(t->value, sizeof t->value, "%s", value);
}

static struct fakeec2_eni *new_eni(struct fakeec2 *f, const char *id) {
        if (f->n_enis == FAKEEC2_MAX_ENIS)
                abort();
        struct fakeec2_eni *e = &f->enis[f->n_enis++];
        memset(e, 0, sizeof *e);
        unsigned n = ++f->next_id;
        if (id)
                snprintf(e->id, sizeof e->id, "%s", id);
        else
                snprintf(e->id, sizeof e->id, "eni-0fake%012u", n);
        snprintf(e->mac, sizeof e->mac, "02:fa:00:00:%02x:%02x", (n >> 8) & 0xff, n & 0xff);
        snprintf(e->subnet_id, sizeof e->subnet_id, "%s", FAKEEC2_SUBNET);
        new_ip(f, e->primary_ip);
        if (f->ipv6)
                new_ipv6(f, e->ipv6s[e->n_ipv6s++]);
        return e;
}

struct fakeec2_eni *fakeec2_add_eni(struct fakeec2 *f, const char *id, const char *instance, int device_index,
                                    size_t n_ips, bool tagged) {
        struct fakeec2_eni *e = new_eni(f, id);
        for (size_t i = 0; i < n_ips; i++)
                new_ip(f, e->ips[e->n_ips++]);
        if (tagged)
                add_tag(e, "node.k8s.amazonaws.com/instance_id", f->instance_id);
        if (instance) {
                snprintf(e->attachment_id, sizeof e->attachment_id, "eni-attach-0fake%08u", f->next_id);
                snprintf(e->instance_id, sizeof e->instance_id, "%s", instance);
                e->device_index = device_index;
                e->delete_on_termination = true;
        }
        return e;
}

bool fakeec2_take_ip(struct fakeec2 *f, const char *eni_id, const char *ip) {
        struct fakeec2_eni *e = fakeec2_find(f, eni_id);
        for (size_t i = 0; e && i < e->n_ips; i++)
                if (strcmp(e->ips[i], ip) == 0) {
                        memmove(e->ips[i], e->ips[i + 1], (e->n_ips - i - 1) * sizeof e->ips[0]);
                        e->n_ips--;
                        return true;
                }
        return false;
}

bool fakeec2_take_prefix(struct fakeec2 *f, const char *eni_id, const char *prefix) {
        struct fakeec2_eni *e = fakeec2_find(f, eni_id);
        for (size_t i = 0; e && i < e->n_prefixes; i++)
                if (strcmp(e->prefixes[i], prefix) == 0) {
                        memmove(e->prefixes[i], e->prefixes[i + 1], (e->n_prefixes - i - 1) * sizeof e->prefixes[0]);
                        e->n_prefixes--;
                        return true;
                }
        return false;
}

bool fakeec2_detach(struct fakeec2 *f, const char *eni_id) {
        struct fakeec2_eni *e = fakeec2_find(f, eni_id);
        if (!e || !e->attachment_id[0])
                return false;
        e->attachment_id[0] = e->instance_id[0] = '\0';
        return true;
}

static const char *tag_value(const struct fakeec2_eni *e, const char *key) {
        for (size_t i = 0; i < e->n_tags; i++)
                if (strcmp(e->tags[i].key, key) == 0)
                        return e->tags[i].value;
        return NULL;
}

/* --- replies -------------------------------------------------------------- */

struct call {
        struct fakeec2 *f;
        const char *body;
        enum ec2_action action;
        struct sb out;
        int status;
        unsigned delay_ms;
};

static void error(struct call *c, int status, const char *code, const char *message) {
        c->status = status;
        c->out.len = 0;
        sb_printf(&c->out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>");
        sb_text(&c->out, "Code", code);
        sb_text(&c->out, "Message", message);
        sb_printf(&c->out, "</Error></Errors><RequestID>fake-%zu</RequestID></Response>", c->f->n_bodies);
}

static void open_response(struct call *c) {
        sb_printf(&c->out, "<%sResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>fake-%zu</requestId>",
                  ec2_action_name(c->action), c->f->n_bodies);
}

static void close_response(struct call *c) {
        sb_printf(&c->out, "</%sResponse>", ec2_action_name(c->action));
}

static void ok_return(struct call *c) {
        open_response(c);
        sb_printf(&c->out, "<return>true</return>");
        close_response(c);
}

static void eni_xml(struct sb *b, const struct fakeec2_eni *e) {
        sb_text(b, "networkInterfaceId", e->id);
        sb_text(b, "subnetId", e->subnet_id);
        sb_printf(b, "<vpcId>vpc-0fake</vpcId><availabilityZone>us-west-2a</availabilityZone>");
        sb_text(b, "description", e->description);
        sb_text(b, "status", e->attachment_id[0] ? "in-use" : "available");
        sb_text(b, "macAddress", e->mac);
        sb_text(b, "privateIpAddress", e->primary_ip);
        sb_printf(b, "<groupSet><item><groupId>%s</groupId><groupName>nodes</groupName></item></groupSet>", FAKEEC2_SG);
        if (e->attachment_id[0]) {
                sb_printf(b, "<attachment>");
                sb_text(b, "attachmentId", e->attachment_id);
                sb_text(b, "instanceId", e->instance_id);
                sb_printf(b, "<deviceIndex>%d</deviceIndex><networkCardIndex>0</networkCardIndex><status>attached</status>"
                          "<deleteOnTermination>%s</deleteOnTermination></attachment>", e->device_index,
                          e->delete_on_termination ? "true" : "false");
        }
        sb_printf(b, "<tagSet>");
        for (size_t i = 0; i < e->n_tags; i++) {
                sb_printf(b, "<item>");
                sb_text(b, "key", e->tags[i].key);
                sb_text(b, "value", e->tags[i].value);
                sb_printf(b, "</item>");
        }
        sb_printf(b, "</tagSet><privateIpAddressesSet><item><privateIpAddress>%s</privateIpAddress>"
                  "<primary>true</primary></item>", e->primary_ip);
        for (size_t i = 0; i < e->n_ips; i++)
                sb_printf(b, "<item><privateIpAddress>%s</privateIpAddress><primary>false</primary></item>", e->ips[i]);
        sb_printf(b, "</privateIpAddressesSet><interfaceType>interface</interfaceType>");
        if (e->n_prefixes) {
                sb_printf(b, "<ipv4PrefixSet>");
                for (size_t i = 0; i < e->n_prefixes; i++)
                        sb_printf(b, "<item><ipv4Prefix>%s</ipv4Prefix></item>", e->prefixes[i]);
                sb_printf(b, "</ipv4PrefixSet>");
        }
        sb_printf(b, "<ipv6AddressesSet>");
        for (size_t i = 0; i < e->n_ipv6s; i++)
                sb_printf(b, "<item><ipv6Address>%s</ipv6Address><isPrimaryIpv6>false</isPrimaryIpv6></item>",
                          e->ipv6s[i]);
        sb_printf(b, "</ipv6AddressesSet>");
        if (e->n_ipv6_prefixes) {
                sb_printf(b, "<ipv6PrefixSet>");
                for (size_t i = 0; i < e->n_ipv6_prefixes; i++)
                        sb_printf(b, "<item><ipv6Prefix>%s</ipv6Prefix></item>", e->ipv6_prefixes[i]);
                sb_printf(b, "</ipv6PrefixSet>");
        }
}

/* --- the actions ---------------------------------------------------------- */

/* Does the ENI pass Filter.N (N = 1..)? Supported: attachment.instance-id, status, tag:KEY. */
static bool filter_passes(const struct call *c, const struct fakeec2_eni *e, int n) {
        char key[64], name[128], want[256];
        snprintf(key, sizeof key, "Filter.%d.Name", n);
        if (!form_get(c->body, key, name, sizeof name))
                return true;
        for (int v = 1;; v++) {
                snprintf(key, sizeof key, "Filter.%d.Value.%d", n, v);
                if (!form_get(c->body, key, want, sizeof want))
                        return false;
                const char *have = strcmp(name, "attachment.instance-id") == 0 ? e->instance_id
                                 : strcmp(name, "status") == 0 ? (e->attachment_id[0] ? "in-use" : "available")
                                 : strncmp(name, "tag:", 4) == 0 ? tag_value(e, name + 4) : NULL;
                if (!have && strncmp(name, "tag:", 4) != 0)
                        abort();        /* a filter the model does not know: the test must not pass by accident */
                if (have && strcmp(have, want) == 0)
                        return true;
        }
}

static bool selected(const struct call *c, const struct fakeec2_eni *e) {
        char id[64];
        bool by_id = form_item(c->body, "NetworkInterfaceId", 1, id, sizeof id), named = !by_id;
        for (int i = 1; by_id && form_item(c->body, "NetworkInterfaceId", i, id, sizeof id); i++)
                named |= strcmp(id, e->id) == 0;
        for (int n = 1; named && n <= 8; n++)
                if (!filter_passes(c, e, n))
                        return false;
        return named;
}

static void describe(struct call *c) {
        struct fakeec2 *f = c->f;
        char id[64];
        for (int i = 1; form_item(c->body, "NetworkInterfaceId", i, id, sizeof id); i++)
                if (!fakeec2_find(f, id))
                        return error(c, 400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID does not exist");
        unsigned page = (unsigned)form_int(c->body, "MaxResults", 0);
        if (f->page_size && (!page || page > f->page_size))
                page = f->page_size;
        size_t start = (size_t)form_int(c->body, "NextToken", 0), shown = 0, i;
        open_response(c);
        sb_printf(&c->out, "<networkInterfaceSet>");
        for (i = start; i < f->n_enis && (!page || shown < page); i++)
                if (selected(c, &f->enis[i])) {
                        sb_printf(&c->out, "<item>");
                        eni_xml(&c->out, &f->enis[i]);
                        sb_printf(&c->out, "</item>");
                        shown++;
                }
        sb_printf(&c->out, "</networkInterfaceSet>");
        if (i < f->n_enis)
                sb_printf(&c->out, "<nextToken>%zu</nextToken>", i);
        close_response(c);
}

static void create(struct call *c) {
        struct fakeec2 *f = c->f;
        char token[65] = "", key[64], k[128], v[256];
        form_get(c->body, "ClientToken", token, sizeof token);
        struct fakeec2_eni *e = NULL;
        for (size_t i = 0; token[0] && i < f->n_enis && !e; i++)
                if (strcmp(f->enis[i].client_token, token) == 0)
                        e = &f->enis[i];
        int count = form_int(c->body, "SecondaryPrivateIpAddressCount", 0);
        int n_prefixes = form_int(c->body, "Ipv4PrefixCount", 0);
        if (!e && count + n_prefixes + 1 > f->ipv4_per_eni)
                return error(c, 400, "PrivateIpAddressLimitExceeded", "too many addresses for an ENI");
        if (!e) {
                e = new_eni(f, NULL);
                snprintf(e->client_token, sizeof e->client_token, "%s", token);
                form_get(c->body, "SubnetId", e->subnet_id, sizeof e->subnet_id);
                form_get(c->body, "Description", e->description, sizeof e->description);
                for (int i = 0; i < count; i++)
                        new_ip(f, e->ips[e->n_ips++]);
                for (int i = 0; i < n_prefixes; i++)
                        new_prefix(f, e->prefixes[e->n_prefixes++]);
                for (int t = 1;; t++) {
                        snprintf(key, sizeof key, "TagSpecification.1.Tag.%d.Key", t);
                        if (!form_get(c->body, key, k, sizeof k))
                                break;
                        snprintf(key, sizeof key, "TagSpecification.1.Tag.%d.Value", t);
                        form_get(c->body, key, v, sizeof v);
                        add_tag(e, k, v);
                }
        }
        open_response(c);
        sb_printf(&c->out, "<networkInterface>");
        eni_xml(&c->out, e);
        sb_printf(&c->out, "</networkInterface>");
        sb_text(&c->out, "clientToken", token);
        close_response(c);
}

static struct fakeec2_eni *eni_arg(struct call *c) {
        char id[64] = "";
        form_get(c->body, "NetworkInterfaceId", id, sizeof id);
        struct fakeec2_eni *e = fakeec2_find(c->f, id);
        if (!e)
                error(c, 400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID does not exist");
        return e;
}

static void attach(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        char inst[32] = "";
        form_get(c->body, "InstanceId", inst, sizeof inst);
        int dev = form_int(c->body, "DeviceIndex", -1);
        if (!e)
                return;
        if (e->attachment_id[0])
                return error(c, 400, "InvalidParameterValue", "Interface is currently in use");
        for (size_t i = 0; i < c->f->n_enis; i++)
                if (strcmp(c->f->enis[i].instance_id, inst) == 0 && c->f->enis[i].device_index == dev)
                        return error(c, 400, "InvalidParameterValue", "Instance already has an interface at that device index");
        snprintf(e->attachment_id, sizeof e->attachment_id, "eni-attach-0fake%08u", ++c->f->next_id);
        snprintf(e->instance_id, sizeof e->instance_id, "%s", inst);
        e->device_index = dev;
        e->delete_on_termination = false;
        if (c->f->take_ip_at_attach && e->n_ips > 0)
                e->n_ips--;
        open_response(c);
        sb_text(&c->out, "attachmentId", e->attachment_id);
        sb_printf(&c->out, "<networkCardIndex>0</networkCardIndex>");
        close_response(c);
}

static void modify(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        char att[48] = "", dot[8] = "";
        form_get(c->body, "Attachment.AttachmentId", att, sizeof att);
        form_get(c->body, "Attachment.DeleteOnTermination", dot, sizeof dot);
        if (!e)
                return;
        if (!dot[0] || strcmp(att, e->attachment_id) != 0)
                return error(c, 400, "InvalidAttachmentID.NotFound", "no such attachment on this interface");
        e->delete_on_termination = strcmp(dot, "true") == 0;
        ok_return(c);
}

/* AssignPrivateIpAddresses Ipv4PrefixCount: prefixes share the ENI's slots with /32s. */
static void assign_prefixes(struct call *c, struct fakeec2_eni *e, int count) {
        if (1 + (int)(e->n_ips + e->n_prefixes) + count > c->f->ipv4_per_eni)
                return error(c, 400, "PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.");
        open_response(c);
        sb_text(&c->out, "networkInterfaceId", e->id);
        sb_printf(&c->out, "<assignedPrivateIpAddressesSet/><assignedIpv4PrefixSet>");
        for (int i = 0; i < count; i++) {
                new_prefix(c->f, e->prefixes[e->n_prefixes]);
                sb_printf(&c->out, "<item><ipv4Prefix>%s</ipv4Prefix></item>", e->prefixes[e->n_prefixes++]);
        }
        sb_printf(&c->out, "</assignedIpv4PrefixSet><return>true</return>");
        close_response(c);
}

static void assign(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        int count = form_int(c->body, "SecondaryPrivateIpAddressCount", 0);
        int n_prefixes = form_int(c->body, "Ipv4PrefixCount", 0);
        if (!e)
                return;
        if (n_prefixes > 0 && count == 0)
                return assign_prefixes(c, e, n_prefixes);
        if (count < 1 || 1 + (int)(e->n_ips + e->n_prefixes) + count > c->f->ipv4_per_eni)
                return error(c, 400, "PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.");
        open_response(c);
        sb_text(&c->out, "networkInterfaceId", e->id);
        sb_printf(&c->out, "<assignedPrivateIpAddressesSet>");
        for (int i = 0; i < count; i++) {
                new_ip(c->f, e->ips[e->n_ips]);
                sb_printf(&c->out, "<item><privateIpAddress>%s</privateIpAddress></item>", e->ips[e->n_ips++]);
        }
        sb_printf(&c->out, "</assignedPrivateIpAddressesSet><return>true</return>");
        close_response(c);
}

static void unassign(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        char ip[32];
        if (!e)
                return;
        /* all or nothing, as EC2: check every address first */
        for (int i = 1; form_item(c->body, "PrivateIpAddress", i, ip, sizeof ip); i++) {
                bool has = false;
                for (size_t k = 0; k < e->n_ips; k++)
                        has |= strcmp(e->ips[k], ip) == 0;
                if (!has)
                        return error(c, 400, "InvalidParameterValue", "Some of the specified addresses are not assigned to interface");
        }
        for (int i = 1; form_item(c->body, "Ipv4Prefix", i, ip, sizeof ip); i++) {
                bool has = false;
                for (size_t k = 0; k < e->n_prefixes; k++)
                        has |= strcmp(e->prefixes[k], ip) == 0;
                if (!has)
                        return error(c, 400, "InvalidParameterValue", "Some of the specified prefixes are not assigned to interface");
        }
        for (int i = 1; form_item(c->body, "PrivateIpAddress", i, ip, sizeof ip); i++)
                fakeec2_take_ip(c->f, e->id, ip);
        for (int i = 1; form_item(c->body, "Ipv4Prefix", i, ip, sizeof ip); i++)
                fakeec2_take_prefix(c->f, e->id, ip);
        ok_return(c);
}

/* AssignIpv6Addresses: counts (Ipv6AddressCount | Ipv6PrefixCount) or items (Ipv6Addresses.N | Ipv6Prefix.N). */
static bool v6_has(char (*list)[46], size_t n, const char *v) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], v) == 0)
                        return true;
        return false;
}

static bool v6p_has(char (*list)[44], size_t n, const char *v) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(list[i], v) == 0)
                        return true;
        return false;
}

static void assign_v6_reply(struct call *c, struct fakeec2_eni *e, size_t ip0, size_t p0) {
        open_response(c);
        sb_printf(&c->out, "<assignedIpv6Addresses>");
        for (size_t i = ip0; i < e->n_ipv6s; i++)
                sb_printf(&c->out, "<item>%s</item>", e->ipv6s[i]);
        sb_printf(&c->out, "</assignedIpv6Addresses><assignedIpv6PrefixSet>");
        for (size_t i = p0; i < e->n_ipv6_prefixes; i++)
                sb_printf(&c->out, "<item>%s</item>", e->ipv6_prefixes[i]);
        sb_printf(&c->out, "</assignedIpv6PrefixSet>");
        sb_text(&c->out, "networkInterfaceId", e->id);
        close_response(c);
}

static void assign_v6(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        if (!e)
                return;
        int n_ips = form_int(c->body, "Ipv6AddressCount", 0), n_pfx = form_int(c->body, "Ipv6PrefixCount", 0);
        char item[64];
        bool ip_items = form_item(c->body, "Ipv6Addresses", 1, item, sizeof item);
        bool pfx_items = form_item(c->body, "Ipv6Prefix", 1, item, sizeof item);
        if (!c->f->ipv6)
                return error(c, 400, "InvalidParameterValue", "The subnet does not have an IPv6 CIDR block");
        if ((n_ips > 0) + (n_pfx > 0) + ip_items + pfx_items != 1)
                return error(c, 400, "InvalidParameterCombination", "Specify exactly one of the IPv6 options");
        size_t want = (size_t)(n_ips + n_pfx);
        for (int i = 1; form_item(c->body, ip_items ? "Ipv6Addresses" : "Ipv6Prefix", i, item, sizeof item); i++)
                want++;
        size_t have = (ip_items || n_ips) ? e->n_ipv6s : e->n_ipv6_prefixes;
        if (have + want > FAKEEC2_MAX_V6)
                return error(c, 400, "PrivateIpAddressLimitExceeded", "Number of IPv6 addresses will exceed limit.");
        size_t ip0 = e->n_ipv6s, p0 = e->n_ipv6_prefixes;
        for (int i = 0; i < n_ips; i++)
                new_ipv6(c->f, e->ipv6s[e->n_ipv6s++]);
        for (int i = 0; i < n_pfx; i++)
                new_ipv6_prefix(c->f, e->ipv6_prefixes[e->n_ipv6_prefixes++]);
        for (int i = 1; ip_items && form_item(c->body, "Ipv6Addresses", i, item, sizeof item); i++)
                snprintf(e->ipv6s[e->n_ipv6s++], 46, "%s", item);
        for (int i = 1; pfx_items && form_item(c->body, "Ipv6Prefix", i, item, sizeof item); i++)
                snprintf(e->ipv6_prefixes[e->n_ipv6_prefixes++], 44, "%s", item);
        assign_v6_reply(c, e, ip0, p0);
}

/* UnassignIpv6Addresses: all or nothing, as EC2. */
static void unassign_v6(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        char item[64];
        if (!e)
                return;
        for (int i = 1; form_item(c->body, "Ipv6Addresses", i, item, sizeof item); i++)
                if (!v6_has(e->ipv6s, e->n_ipv6s, item))
                        return error(c, 400, "InvalidParameterValue", "Some of the specified addresses are not assigned to interface");
        for (int i = 1; form_item(c->body, "Ipv6Prefix", i, item, sizeof item); i++)
                if (!v6p_has(e->ipv6_prefixes, e->n_ipv6_prefixes, item))
                        return error(c, 400, "InvalidParameterValue", "Some of the specified prefixes are not assigned to interface");
        open_response(c);
        sb_text(&c->out, "networkInterfaceId", e->id);
        sb_printf(&c->out, "<unassignedIpv6Addresses>");
        for (int i = 1; form_item(c->body, "Ipv6Addresses", i, item, sizeof item); i++) {
                for (size_t k = 0; k < e->n_ipv6s; k++)
                        if (strcmp(e->ipv6s[k], item) == 0) {
                                memmove(e->ipv6s[k], e->ipv6s[k + 1], (e->n_ipv6s - k - 1) * sizeof e->ipv6s[0]);
                                e->n_ipv6s--;
                                break;
                        }
                sb_printf(&c->out, "<item>%s</item>", item);
        }
        sb_printf(&c->out, "</unassignedIpv6Addresses><unassignedIpv6PrefixSet>");
        for (int i = 1; form_item(c->body, "Ipv6Prefix", i, item, sizeof item); i++) {
                for (size_t k = 0; k < e->n_ipv6_prefixes; k++)
                        if (strcmp(e->ipv6_prefixes[k], item) == 0) {
                                memmove(e->ipv6_prefixes[k], e->ipv6_prefixes[k + 1],
                                        (e->n_ipv6_prefixes - k - 1) * sizeof e->ipv6_prefixes[0]);
                                e->n_ipv6_prefixes--;
                                break;
                        }
                sb_printf(&c->out, "<item>%s</item>", item);
        }
        sb_printf(&c->out, "</unassignedIpv6PrefixSet>");
        close_response(c);
}

static void detach(struct call *c) {
        char att[48] = "";
        form_get(c->body, "AttachmentId", att, sizeof att);
        for (size_t i = 0; att[0] && i < c->f->n_enis; i++)
                if (strcmp(c->f->enis[i].attachment_id, att) == 0) {
                        fakeec2_detach(c->f, c->f->enis[i].id);
                        return ok_return(c);
                }
        error(c, 400, "InvalidAttachmentID.NotFound", "The attachment ID does not exist");
}

static void delete(struct call *c) {
        struct fakeec2_eni *e = eni_arg(c);
        if (!e)
                return;
        if (e->attachment_id[0])
                return error(c, 400, "InvalidNetworkInterface.InUse", "The network interface is currently in use");
        size_t i = (size_t)(e - c->f->enis);
        memmove(&c->f->enis[i], &c->f->enis[i + 1], (c->f->n_enis - i - 1) * sizeof *e);
        c->f->n_enis--;
        ok_return(c);
}

static void apply(struct call *c) {
        switch (c->action) {
        case EC2_DESCRIBE_NETWORK_INTERFACES: return describe(c);
        case EC2_CREATE_NETWORK_INTERFACE: return create(c);
        case EC2_ATTACH_NETWORK_INTERFACE: return attach(c);
        case EC2_MODIFY_NETWORK_INTERFACE_ATTRIBUTE: return modify(c);
        case EC2_ASSIGN_PRIVATE_IP_ADDRESSES: return assign(c);
        case EC2_UNASSIGN_PRIVATE_IP_ADDRESSES: return unassign(c);
        case EC2_DETACH_NETWORK_INTERFACE: return detach(c);
        case EC2_DELETE_NETWORK_INTERFACE: return delete(c);
        case EC2_ASSIGN_IPV6_ADDRESSES: return assign_v6(c);
        case EC2_UNASSIGN_IPV6_ADDRESSES: return unassign_v6(c);
        default: return error(c, 400, "InvalidAction", "the fake EC2 does not model this action");
        }
}

/* SIGKILL the process and wait (without reaping it) until it is dead, so it
 * can never read the answer. ECHILD: the test's thread has reaped it already. */
static void crash(struct fakeec2 *f) {
        siginfo_t si;
        f->crashed = true;
        if (kill(f->crash_pid, SIGKILL) < 0 ||
            (waitid(P_PID, (id_t)f->crash_pid, &si, WEXITED | WNOWAIT) < 0 && errno != ECHILD))
                abort();
}

/* Under the lock: a Create arrives; with create_delay_ms its answer is held that long
 * (outside the lock), and the gap since the previous Create is noted. */
static void create_arrives(struct fakeec2 *f, struct call *c) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
        long long gap = now - f->last_create_ms;
        if (f->n_creates_timed++ > 0 && (f->n_creates_timed == 2 || gap < f->min_create_gap_ms))
                f->min_create_gap_ms = gap;
        f->last_create_ms = now;
        c->delay_ms = f->create_delay_ms;
}

static void ec2_call(struct fakeec2 *f, const struct fakesrv_req *req, struct call *c) {
        char name[64] = "";
        form_get(req->body, "Action", name, sizeof name);
        c->action = _EC2_ACTION_MAX;
        for (int a = 0; a < _EC2_ACTION_MAX; a++)
                if (strcmp(ec2_action_name((enum ec2_action)a), name) == 0)
                        c->action = (enum ec2_action)a;
        if (c->action == _EC2_ACTION_MAX)
                return error(c, 400, "InvalidAction", name);
        f->calls[c->action]++;
        bool crash_now = f->crash_pid > 0 && !f->crashed && c->action == f->crash_action;
        if (crash_now && !f->crash_after_apply) {
                crash(f);
                return error(c, 500, "InternalError", "nobody reads this: the caller is dead");
        }
        bool fail = f->fail_times > 0 && c->action == f->fail_action;
        if (fail && !f->fail_after_apply) {
                f->fail_times--;
                return error(c, f->fail_status, f->fail_code, "scripted failure");
        }
        if (c->action == EC2_CREATE_NETWORK_INTERFACE && f->create_delay_ms)
                create_arrives(f, c);
        apply(c);
        if (fail && c->status == 0) {   /* applied, but the answer says it failed */
                f->fail_times--;
                error(c, f->fail_status, f->fail_code, "scripted failure after the call was applied");
        }
        if (crash_now && f->crash_after_apply)
                crash(f);
}

/* --- IMDS: what the instance's attached ENIs look like from inside -------- */

/* The IPv6 keys: absent (404) on a VPC without IPv6, and a list key on an ENI with none of it. */
static bool imds_eni_file6(struct fakeec2 *f, const struct fakeec2_eni *e, const char *what, struct call *c) {
        if (!f->ipv6)
                return false;
        if (strcmp(what, "subnet-ipv6-cidr-blocks") == 0)
                sb_printf(&c->out, "%s", FAKEEC2_SUBNET_CIDR6);
        else if (strcmp(what, "vpc-ipv6-cidr-blocks") == 0)
                sb_printf(&c->out, "%s", FAKEEC2_VPC_CIDR6);
        else if (strcmp(what, "ipv6s") == 0 && e->n_ipv6s)
                for (size_t i = 0; i < e->n_ipv6s; i++)
                        sb_printf(&c->out, "%s%s", i ? "\n" : "", e->ipv6s[i]);
        else if (strcmp(what, "ipv6-prefix") == 0 && e->n_ipv6_prefixes)
                for (size_t i = 0; i < e->n_ipv6_prefixes; i++)
                        sb_printf(&c->out, "%s%s", i ? "\n" : "", e->ipv6_prefixes[i]);
        else
                return false;
        return true;
}

static void imds_eni_file(struct fakeec2 *f, const struct fakeec2_eni *e, const char *what, struct call *c) {
        if (strcmp(what, "device-number") == 0)
                sb_printf(&c->out, "%d", e->device_index);
        else if (strcmp(what, "interface-id") == 0)
                sb_printf(&c->out, "%s", e->id);
        else if (strcmp(what, "subnet-id") == 0)
                sb_printf(&c->out, "%s", e->subnet_id);
        else if (strcmp(what, "subnet-ipv4-cidr-block") == 0 || strcmp(what, "vpc-ipv4-cidr-blocks") == 0)
                sb_printf(&c->out, "%s", FAKEEC2_SUBNET_CIDR);
        else if (strcmp(what, "security-group-ids") == 0)
                sb_printf(&c->out, "%s", FAKEEC2_SG);
        else if (strcmp(what, "local-ipv4s") == 0) {
                sb_printf(&c->out, "%s", e->primary_ip);
                for (size_t i = 0; i < e->n_ips; i++)
                        sb_printf(&c->out, "\n%s", e->ips[i]);
        } else if (strcmp(what, "ipv4-prefix") == 0 && e->n_prefixes) {
                for (size_t i = 0; i < e->n_prefixes; i++)
                        sb_printf(&c->out, "%s%s", i ? "\n" : "", e->prefixes[i]);
        } else if (!imds_eni_file6(f, e, what, c))
                c->status = 404;
}

/* The instance's identity, as a daemon's start reads it (an m5.large in us-west-2a). */
static bool imds_identity(struct fakeec2 *f, const char *url, struct call *c) {
        static const char md[] = "/latest/meta-data/";
        if (strncmp(url, md, strlen(md)) != 0)
                return false;
        const char *k = url + strlen(md);
        if (strcmp(k, "instance-id") == 0)
                sb_printf(&c->out, "%s", f->instance_id);
        else if (strcmp(k, "instance-type") == 0)
                sb_printf(&c->out, "m5.large");
        else if (strcmp(k, "placement/region") == 0)
                sb_printf(&c->out, "us-west-2");
        else if (strcmp(k, "placement/availability-zone") == 0)
                sb_printf(&c->out, "us-west-2a");
        else if (strcmp(k, "local-ipv4") == 0 && f->n_enis)
                sb_printf(&c->out, "%s", f->enis[0].primary_ip);
        else
                return false;
        return true;
}

static void imds_call(struct fakeec2 *f, const struct fakesrv_req *req, struct call *c) {
        static const char macs[] = "/latest/meta-data/network/interfaces/macs/";
        if (strcmp(req->url, "/latest/api/token") == 0)
                return sb_printf(&c->out, "fake-imds-token");
        if (strcmp(req->url, "/latest/meta-data/mac") == 0 && f->n_enis)
                return sb_printf(&c->out, "%s", f->enis[0].mac);       /* the first ENI added is the primary */
        if (strcmp(req->url, "/latest/meta-data/ipv6") == 0 && f->n_enis && f->enis[0].n_ipv6s)
                return sb_printf(&c->out, "%s", f->enis[0].ipv6s[0]);
        if (imds_identity(f, req->url, c))
                return;
        if (strncmp(req->url, macs, strlen(macs)) != 0) {
                c->status = 404;
                return;
        }
        const char *rest = req->url + strlen(macs);
        for (size_t i = 0; i < f->n_enis; i++) {
                const struct fakeec2_eni *e = &f->enis[i];
                if (strcmp(e->instance_id, f->instance_id) != 0)
                        continue;
                if (!*rest)
                        sb_printf(&c->out, "%s%s/", c->out.len ? "\n" : "", e->mac);
                else if (strncmp(rest, e->mac, strlen(e->mac)) == 0 && rest[strlen(e->mac)] == '/')
                        return imds_eni_file(f, e, rest + strlen(e->mac) + 1, c);
        }
        if (*rest)
                c->status = 404;
}

static void handler(void *ud, const struct fakesrv_req *req, struct fakesrv_reply *rep) {
        struct fakeec2 *f = ud;
        struct call c = { .f = f, .body = req->body };
        pthread_mutex_lock(&f->lock);
        bool is_imds = strncmp(req->url, "/latest/", 8) == 0;
        if (is_imds)
                imds_call(f, req, &c);
        else
                ec2_call(f, req, &c);
        sb_printf(&c.out, "%s", "");
        char **nb = realloc(f->bodies, (f->n_bodies + 1) * sizeof *nb);
        if (!nb)
                abort();
        f->bodies = nb;
        f->bodies[f->n_bodies++] = c.out.s;
        pthread_mutex_unlock(&f->lock);
        rep->status = c.status;
        rep->delay_ms = c.delay_ms;
        rep->body = c.out.s;
        rep->content_type = is_imds ? "text/plain" : NULL;
}

/* --- set-up --------------------------------------------------------------- */

void fakeec2_start(struct fakeec2 *f) {
        if (!f->instance_id[0])
                snprintf(f->instance_id, sizeof f->instance_id, "%s", FAKEEC2_INSTANCE);
        if (!f->ipv4_per_eni)
                f->ipv4_per_eni = 10;
        pthread_mutex_init(&f->lock, NULL);
        f->srv = fakesrv_start(handler, f);
}

void fakeec2_stop(struct fakeec2 *f) {
        fakesrv_stop(f->srv);
        for (size_t i = 0; i < f->n_bodies; i++)
                free(f->bodies[i]);
        free(f->bodies);
        pthread_mutex_destroy(&f->lock);
}

const char *fakeec2_url(struct fakeec2 *f) {
        return fakesrv_url(f->srv);
}

void fakeec2_lock(struct fakeec2 *f) {
        pthread_mutex_lock(&f->lock);
}

void fakeec2_unlock(struct fakeec2 *f) {
        pthread_mutex_unlock(&f->lock);
}

unsigned fakeec2_calls(struct fakeec2 *f, enum ec2_action a) {
        fakeec2_lock(f);
        unsigned n = f->calls[a];
        fakeec2_unlock(f);
        return n;
}

/* The real clock, but retries' backoff does not sleep: the model answers at once anyway. */
static uint64_t mono_ns(void *ud) {
        (void)ud;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static time_t wall(void *ud) {
        (void)ud;
        return time(NULL);
}
static void no_sleep(void *ud, uint64_t ns) {
        (void)ud, (void)ns;
}
static const struct cloud_clock quick_clock = { mono_ns, wall, no_sleep, NULL };

ec2_client *fakeec2_client(struct fakeec2 *f) {
        setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
        unsetenv("AWS_SESSION_TOKEN");
        struct ec2_options o = { .region = "us-west-2", .endpoint = fakeec2_url(f), .clock = &quick_clock };
        ec2_client *c = NULL;
        if (ec2_client_new(&o, &c, NULL) < 0)
                abort();
        return c;
}

imds *fakeec2_imds(struct fakeec2 *f) {
        struct imds_options o = { .endpoint = fakeec2_url(f) };
        imds *m = NULL;
        if (imds_new(&o, &m, NULL) < 0)
                abort();
        return m;
}
