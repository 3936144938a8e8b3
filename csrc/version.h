/* The version of as2gateway: the one place it is written. as2gateway._VERSION,
 * `as2g --version` and the default User-Agent come from here; the rockspec's file name
 * and version field must say the same (spec/packaging_spec.lua holds them to it), as
 * must the newest entry of CHANGELOG.md. */
#ifndef A2G_VERSION_H
#define A2G_VERSION_H

#define A2G_VERSION "0.2.0"
#define A2G_USER_AGENT "as2gateway-lua/" A2G_VERSION

#endif
