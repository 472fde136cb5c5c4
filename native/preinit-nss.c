/* NSS pinning (preinit-nss.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <nss.h>
#include <string.h>

#include "preinit-nss.h"
#include "preinit-state.h"

void pin_nss(const char *envvar, const char *path)
{
    static const char *const dbs[] = {"aliases", "ethers", "group", "gshadow", "hosts", "initgroups", "netgroup",
                                      "networks", "passwd", "protocols", "publickey", "rpc", "services", "shadow"};
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        const char *services = strcmp(dbs[i], "hosts") == 0 ? "files dns" : "files";
        if (__nss_configure_lookup(dbs[i], services) != 0) {
            int err = errno;
            fail(envvar, path, "__nss_configure_lookup", err,
                 "package gons: cannot restrict the %s name service database to \"%s\"", dbs[i], services);
            return;
        }
    }
}
