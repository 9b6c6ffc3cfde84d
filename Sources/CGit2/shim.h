#ifndef PROVENANCE_CGIT2_SHIM_H
#define PROVENANCE_CGIT2_SHIM_H

#include <git2.h>
#include <git2/sys/odb_backend.h>

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

#endif
