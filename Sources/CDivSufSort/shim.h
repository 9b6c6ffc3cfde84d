#ifndef PROVENANCE_CDIVSUFSORT_SHIM_H
#define PROVENANCE_CDIVSUFSORT_SHIM_H

/* libdivsufsort (Debian's libdivsufsort-dev): suffix arrays with 32-bit indices. */
#include <divsufsort.h>

#endif
