// OpenMPI's handles are macros over global symbols, which Swift cannot import.
// Each is exposed here as a static inline function.
#ifndef PROTOMODEL_CMPI_SHIM_H
#define PROTOMODEL_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm pm_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype pm_type_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype pm_type_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype pm_type_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype pm_type_int64(void) { return MPI_INT64_T; }
static inline MPI_Op pm_op_sum(void) { return MPI_SUM; }
static inline MPI_Op pm_op_max(void) { return MPI_MAX; }
static inline MPI_Op pm_op_min(void) { return MPI_MIN; }
static inline MPI_Request pm_request_null(void) { return MPI_REQUEST_NULL; }
static inline void *pm_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Errhandler pm_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int pm_any_source(void) { return MPI_ANY_SOURCE; }
static inline int pm_any_tag(void) { return MPI_ANY_TAG; }
static inline int pm_success(void) { return MPI_SUCCESS; }
static inline int pm_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int pm_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int pm_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
/* Number of ranks on this node (those that share memory with this one). */
static inline int pm_local_size(void) {
    MPI_Comm node; int n = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) != MPI_SUCCESS) return 1;
    MPI_Comm_size(node, &n);
    MPI_Comm_free(&node);
    return n;
}
/* Source of a completed receive's status; callers pass a pointer to a local status. */
static inline int pm_status_source(const MPI_Status *s) { return s->MPI_SOURCE; }
static inline int pm_status_tag(const MPI_Status *s) { return s->MPI_TAG; }
#endif
