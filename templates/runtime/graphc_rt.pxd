# graphc's runtime ABI, as a model module's Cython sees it (the C is graphc_rt.h beside this).

cdef extern from "Python.h":
    ctypedef struct PyObject


cdef extern from "graphc_rt.h" nogil:
    ctypedef signed int int32_t
    ctypedef signed long long int64_t
    ctypedef struct gc_args:
        void** v
        const Py_ssize_t* z
        const double* f
        const int32_t* a
        int64_t* fail
    ctypedef void (*gc_kernel_fn)(const gc_args* x) noexcept nogil
    ctypedef void (*gc_range_fn)(const void* ctx, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    ctypedef void (*gc_loop_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
    ctypedef void (*gc_block_d_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi, double* terms) noexcept nogil
    ctypedef void (*gc_block_s_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi, float* terms) noexcept nogil
    ctypedef void gc_kernel "GC_KERNEL void"

    ctypedef struct gc_function:
        const char* name
        int nargs, nsym, nparts
        const long long* args
        int nproducts
        const int64_t* products
        int nwritten
        const int32_t* written
        int nout
        const int32_t* outs
        int nsizes
        const int64_t* sizes
        const double* floats
        int nslots
        const int32_t* slots
        int nvalues
        const int32_t* values
        int ncopies
        const int32_t* copies
        int nindex
        const int64_t* index
        int nnonempty
        const int32_t* nonempty
        int nprogram
        const int32_t* program
        const gc_kernel_fn* kernels
        PyObject* names
        PyObject* defaults
        PyObject* spec
        PyObject* outspec
        PyObject* keys
        PyObject* consts
        PyObject* symbols
        PyObject* checks
        void* sized

    ctypedef struct gc_api:
        int abi
        object (*call)(gc_function* fn, object args, object kwargs, object out) with gil
        void (*parallel)(gc_loop_fn fn, const gc_args* x, Py_ssize_t n, Py_ssize_t chunk, Py_ssize_t work) noexcept nogil
        void (*reduce_d)(gc_block_d_fn fn, const gc_args* x, Py_ssize_t n, int nsums, double* sums) noexcept nogil
        void (*reduce_s)(gc_block_s_fn fn, const gc_args* x, Py_ssize_t n, int nsums, float* sums) noexcept nogil
        object (*setup)(gc_function* fn, object data, const gc_kernel_fn* kernels) with gil
        int (*link)(gc_kernel_fn* kernels, int first, object names) except -1 with gil
        void (*scan)(const gc_args* x, const gc_kernel_fn* kernels) noexcept nogil

    const gc_api* gc_api_of(object capsule) except NULL
    enum:
        GC_ABI
        GC_CHUNKS
        GC_BLOCK

    # the math a kernel's loops call (exp, log, tanh and the transcendental functions below:
    # graphc's own, vectorised; graphc_math.h)
    const double INFINITY
    const double NAN
    double exp "gc_exp" (double)
    double log "gc_log" (double)
    double tanh "gc_tanh" (double)
    double expm1 "gc_expm1" (double)
    double log1p "gc_log1p" (double)
    double log2 "gc_log2" (double)
    double exp2 "gc_exp2" (double)
    double sin "gc_sin" (double)
    double cos "gc_cos" (double)
    double tan "gc_tan" (double)
    double asin "gc_asin" (double)
    double acos "gc_acos" (double)
    double atan "gc_atan" (double)
    double atan2 "gc_atan2" (double, double)
    double sinh "gc_sinh" (double)
    double cosh "gc_cosh" (double)
    double asinh "gc_asinh" (double)
    double acosh "gc_acosh" (double)
    double atanh "gc_atanh" (double)
    double floor(double)
    double ceil(double)
    double trunc(double)
    double rint(double)
    double copysign(double, double)
    double fmod "gc_fmod" (double, double)
    double fmodf "gc_fmodf" (float, float)
    long long ifloordiv "gc_ifloordiv" (long long, long long)
    long long imod "gc_imod" (long long, long long)
    long long ipow "gc_ipow" (long long, long long)
    double sqrt(double)
    double erf "gc_erf" (double)
    double erfc "gc_erfc" (double)
    float expf "gc_expf" (float)
    float erff "gc_erff" (float)
    float erfcf "gc_erfcf" (float)
    float sqrtf(float)
    double fabs(double)
    double pow "gc_pow" (double, double)
    float powf "gc_powf" (float, float)
    void gc_fail(const gc_args* x, int64_t value, int64_t bound)
    Py_ssize_t gc_first(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n_out)
    Py_ssize_t gc_end(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n_in, Py_ssize_t n_out)
    Py_ssize_t gc_pairwise_leaf(Py_ssize_t n, Py_ssize_t at)
    Py_ssize_t gc_pairwise_joins(Py_ssize_t n, Py_ssize_t at)
    void* memset(void*, int, size_t)
