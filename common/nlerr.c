/*
 * nlerr: libnl error codes back to errnos (see nlerr.h).
 */
#include <errno.h>
#include <stddef.h>

#include <netlink/errno.h>

#include "nlerr.h"

int nlerr_errno(int nlerr) {
        static const struct { int nle, err; } map[] = {
                { NLE_EXIST, EEXIST },       { NLE_OBJ_NOTFOUND, ENOENT },   { NLE_NODEV, ENODEV },
                { NLE_PERM, EPERM },         { NLE_NOMEM, ENOMEM },          { NLE_INVAL, EINVAL },
                { NLE_BUSY, EBUSY },         { NLE_AGAIN, EAGAIN },          { NLE_NOADDR, EADDRNOTAVAIL },
                { NLE_RANGE, ERANGE },       { NLE_OPNOTSUPP, EOPNOTSUPP },  { NLE_NOACCESS, EACCES },
                { NLE_AF_NOSUPPORT, EAFNOSUPPORT }, { NLE_MSGSIZE, EMSGSIZE }, { NLE_INTR, EINTR },
                { NLE_BAD_SOCK, EBADF },     { NLE_MSG_TRUNC, EMSGSIZE },    { NLE_NOATTR, ENODATA },
                { NLE_DUMP_INTR, EINTR },
        };
        int e = nlerr < 0 ? -nlerr : nlerr;
        if (e == 0)
                return 0;
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
                if (map[i].nle == e)
                        return -map[i].err;
        return -EIO;
}
