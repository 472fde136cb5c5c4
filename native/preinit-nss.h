/* NSS pinning: glibc's name services kept to what is built into libc. */
#ifndef GONS_PREINIT_NSS_H
#define GONS_PREINIT_NSS_H

#pragma GCC visibility push(hidden)

/*
 * glibc's NSS reads the current root's /etc/nsswitch.conf and dlopen()s the
 * modules it names from the current root's /lib: inside the target's root a
 * container could run its code in this privileged process through
 * dns.lookup() or os.userInfo(). While the root is still the host's, pin every
 * database to the services built into libc (glibc >= 2.34), which also stops
 * glibc from reloading nsswitch.conf. Lookups still read the files of the
 * root they run in (/etc/hosts, /etc/passwd, /etc/resolv.conf).
 * The databases are glibc's own list (nss/databases.def).
 */
void pin_nss(const char *envvar, const char *path);

#pragma GCC visibility pop

#endif
