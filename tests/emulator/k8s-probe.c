/*
 * k8s-probe: vpc-ipam's Kubernetes client (cloud/k8s.c) inside a node of the
 * emulated VPC, configured in-cluster exactly as in a pod: run by
 * test_k8sapi.py through `vpc-world exec`, which provides the service
 * variables, MY_NODE_NAME and the service-account files at their standard
 * path (a private mount namespace). No option moves anything: this is the
 * path the daemon will take.
 *
 * Prints one JSON object: the server, the Node's fields, and the ENIConfig
 * named by argv[1] (or its error); exit status 0 when both reads succeeded.
 *
 * usage: k8s-probe ENICONFIG_NAME
 */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "k8s.h"

static cJSON *node_json(const struct k8s_node *n) {
        cJSON *o = cJSON_CreateObject(), *labels = cJSON_AddObjectToObject(o, "labels");
        cJSON_AddStringToObject(o, "name", n->name);
        for (size_t i = 0; i < n->n_labels; i++)
                cJSON_AddStringToObject(labels, n->labels[i].key, n->labels[i].value);
        cJSON_AddBoolToObject(o, "unschedulable", n->unschedulable);
        cJSON_AddNumberToObject(o, "capacity_pods", (double)n->capacity_pods);
        cJSON *taints = cJSON_AddArrayToObject(o, "taints");
        for (size_t i = 0; i < n->n_taints; i++)
                cJSON_AddItemToArray(taints, cJSON_CreateString(n->taints[i].key));
        return o;
}

static cJSON *eniconfig_json(const struct k8s_eniconfig *e) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", e->name);
        cJSON_AddStringToObject(o, "subnet", e->subnet);
        cJSON_AddItemToObject(o, "security_groups",
                              cJSON_CreateStringArray(e->security_groups, (int)e->n_security_groups));
        return o;
}

static void add_error(cJSON *out, const char *key, int r, const struct errmsg *err) {
        cJSON *o = cJSON_AddObjectToObject(out, key);
        cJSON_AddNumberToObject(o, "code", r);
        cJSON_AddStringToObject(o, "message", errmsg_text(err, r));
}

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: k8s-probe ENICONFIG_NAME\n");
                return 2;
        }
        cJSON *out = cJSON_CreateObject();
        struct errmsg err = { 0 };
        k8s_client *c = NULL;
        int r = k8s_new(NULL, &c, &err), failed = r < 0;
        if (r < 0) {
                add_error(out, "config_error", r, &err);
        } else {
                cJSON_AddStringToObject(out, "server", k8s_server(c));
                struct k8s_node *n = NULL;
                r = k8s_get_node(c, NULL, &n, &err);
                failed |= r < 0;
                if (r == 0)
                        cJSON_AddItemToObject(out, "node", node_json(n));
                else
                        add_error(out, "node_error", r, &err);
                k8s_node_free(n);
                struct k8s_eniconfig *e = NULL;
                r = k8s_get_eniconfig(c, argv[1], &e, &err);
                failed |= r < 0;
                if (r == 0)
                        cJSON_AddItemToObject(out, "eniconfig", eniconfig_json(e));
                else
                        add_error(out, "eniconfig_error", r, &err);
                k8s_eniconfig_free(e);
                cJSON_AddNumberToObject(out, "token_reads", k8s_token_reads(c));
        }
        char *s = cJSON_PrintUnformatted(out);
        puts(s ? s : "{}");
        free(s);
        cJSON_Delete(out);
        k8s_free(c);
        return failed;
}
