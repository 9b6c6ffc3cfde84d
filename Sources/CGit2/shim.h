#ifndef PROVENANCE_CGIT2_SHIM_H
#define PROVENANCE_CGIT2_SHIM_H

#include <git2.h>
#include <git2/sys/odb_backend.h>
/* zlib (a dependency of libgit2 itself) compresses the entries of packs GitKit writes. */
#include <zlib.h>

/* Macros and struct initialisers Swift cannot call directly. */
static inline int provenance_git_fetch_options_init(git_fetch_options *opts) {
    return git_fetch_options_init(opts, GIT_FETCH_OPTIONS_VERSION);
}

static inline int provenance_git_repository_init_options_init(git_repository_init_options *opts) {
    return git_repository_init_options_init(opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
}

static inline int provenance_git_blame_options_init(git_blame_options *opts) {
    return git_blame_options_init(opts, GIT_BLAME_OPTIONS_VERSION);
}

static inline int provenance_git_diff_options_init(git_diff_options *opts) {
    return git_diff_options_init(opts, GIT_DIFF_OPTIONS_VERSION);
}

/* deflateInit2 is a macro that passes zlib's version and the stream's size. */
static inline int provenance_deflate_init2(z_streamp stream, int level, int windowBits, int memLevel) {
    return deflateInit2(stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY);
}

#endif
