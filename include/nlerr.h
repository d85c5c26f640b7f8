/*
 * nlerr: libnl's error codes as errnos, for every module that speaks netlink
 * through libnl (the daemon's host networking and egress rule, the plugin's
 * dataplane).
 *
 * libnl folds kernel errnos into its own NLE_* codes; nlerr_errno() maps
 * them back so callers see the usual -ENOENT/-EEXIST/... (what libnl cannot
 * express becomes -EIO).
 */
#pragma once

/* A libnl result (0 or a negative NLE_*) as 0 or a negative errno. */
int nlerr_errno(int nlerr);
