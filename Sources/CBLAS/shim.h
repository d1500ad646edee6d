// OpenBLAS's CBLAS interface plus its threading controls (openblas_set_num_threads).
#ifndef PROTOMODEL_CBLAS_SHIM_H
#define PROTOMODEL_CBLAS_SHIM_H
#include <cblas.h>
#endif
