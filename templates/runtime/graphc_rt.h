/* graphc's runtime ABI: what the runtime (one extension, built once per graphc version,
   compiler, flags and CPU) and every model module share. A model module holds only its own
   code: its kernels, and each function's tables (arguments, outputs, memory, program). It
   takes the runtime's `gc_api` from a capsule when it is imported, hands each function's
   tables to `api->setup`, and offers the function object the runtime makes of them
   (function.h), whose calls check the arguments, lay out the call's memory, run the
   program's steps and return the outputs.

   A step's kernel gets `gc_args`: the call's values (a pointer per value), sizes and floats,
   and the step's operands, indices into those three, in the order the kernel documents. */
#ifndef GRAPHC_RT_H
#define GRAPHC_RT_H

#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GC_ABI 5 /* raised whenever anything below changes meaning (5: gather's stride) */

/* Kernels, the functions that do the arithmetic, are GC_KERNEL: a build may optimise them
   harder than the Python-facing rest (graphc/runtime/build.py says how), and a module that
   defines GC_PRE before including this header harder still, when the build gives GC_KERNEL_PRE
   (its loops call erf, which needs partial redundancy elimination to run fast). */
#if defined(GC_PRE) && defined(GC_KERNEL_PRE)
#undef GC_KERNEL
#define GC_KERNEL GC_KERNEL_PRE
#endif
#ifndef GC_KERNEL
#define GC_KERNEL
#endif
/* Math functions too long for the compiler to inline of its own accord at -O1: inlined all
   the same, or the loops calling them would not vectorise. */
#if defined(__GNUC__)
#define GC_INLINE __attribute__((always_inline))
#else
#define GC_INLINE
#endif

typedef struct {
    void* const* v;       /* the call's values */
    const Py_ssize_t* z;  /* the call's sizes */
    const double* f;      /* the function's float constants */
    const int32_t* a;     /* this step's operands: indices into v, then z, then f */
    int64_t* fail;        /* set by gc_fail: the call stops after the step and raises */
} gc_args;

/* A kernel met an index it may not use (`value`, for an axis of `bound`): the call stops after
   this step and raises an error naming the step; the kernel goes on, touching nothing outside
   its arrays. The first of several (threads) is the one reported. */
static inline GC_KERNEL void gc_fail(const gc_args* x, int64_t value, int64_t bound) {
    if (__atomic_exchange_n(&x->fail[0], 1, __ATOMIC_RELAXED) == 0) {
        x->fail[1] = value;
        x->fail[2] = bound;
    }
}
typedef void (*gc_kernel_fn)(const gc_args* x);
typedef void (*gc_range_fn)(const void* ctx, Py_ssize_t lo, Py_ssize_t hi); /* the pool's */
/* A kernel's parallel loop: its iterations lo to hi. */
typedef void (*gc_loop_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi);
/* A Reduce's block: elements lo to hi (at most GC_BLOCK), their terms of sum k stored at
   terms[k * GC_BLOCK + i - lo]. */
typedef void (*gc_block_d_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi, double* terms);
typedef void (*gc_block_s_fn)(const gc_args* x, Py_ssize_t lo, Py_ssize_t hi, float* terms);

/* What a value of a function is, per call: `kind` and `ref` in its table of values. */
enum {
    GC_ARG = 0,   /* argument ref's array */
    GC_OUT = 1,   /* output ref's array */
    GC_SLOT = 2,  /* slot ref of the arena */
    GC_CONST = 3, /* constant ref of the module (an array) */
    GC_ALIAS = 4  /* the bytes of value ref (a reshape): set after ref */
};
/* A step of a program, in its int32 table: kernel, operand count, work (a size index; -1:
   never run beside another step), flags, then the operands. */
enum { GC_ALONE = 1, GC_BESIDE = 2 }; /* one thread whatever its size; runs beside the next */

#define GC_CHUNKS 64   /* a Reduce runs as this many chunks */
#define GC_BLOCK 64    /* elements whose terms are stored, then added in order */
#define GC_MAX_SUMS 32 /* sums of one Reduce at most */

/* A function of a model module (forward, value_and_grad, ...): what a call reads. The
   size expressions are rows `coef, div, n, s1 .. sn`: coef * sym[s1] * .. * sym[sn] / div. */
typedef struct {
    const char* name;
    int nargs, nsym, nparts; /* nparts: the dicts returned (1: one dict, not a tuple) */
    const long long* args;   /* gc_check_args's table */
    int nproducts;
    const int64_t* products; /* per argument axis that is a product of symbols ("B*T"): the
                                symbol (after the symbols) it binds, coef, n, the n symbols;
                                then per derived symbol (a checkpointed loop's T // k, ...):
                                the symbol, -1 - its kind, 2, its source, k */
    int nwritten;
    const int32_t* written;  /* the arguments the function writes over (train_step) */
    int nout;
    const int32_t* outs;     /* per output: type number, rank, part, then a size per axis */
    int nsizes;
    const int64_t* sizes;
    const double* floats;
    int nslots;
    const int32_t* slots;    /* per slot: layouts, then (size, itemsize) per layout */
    int nvalues;
    const int32_t* values;   /* per value: kind, ref */
    int ncopies;
    const int32_t* copies;   /* per copy: output, value, size, itemsize (an output that is an
                                input, a constant, or another output) */
    int nindex;
    const int64_t* index;    /* per index check: leaves, lo size, hi size, then per leaf the
                                argument (>= 0), or -1 and a constant's min and max */
    int nnonempty;
    const int32_t* nonempty; /* sizes that must not be 0 (a max over them) */
    int nprogram;
    const int32_t* program;
    const gc_kernel_fn* kernels; /* the module's, then the runtime's it uses */
    /* Python data, set when the module is imported (references the module keeps) */
    PyObject* names;    /* the arguments' names */
    PyObject* defaults; /* a default (or None) per argument, or () */
    PyObject* spec;     /* each argument's (name, dtype, shape, sizes, integer): messages */
    PyObject* outspec;  /* each output's (part, key, dtype, rank): messages */
    PyObject* keys;     /* each output's key */
    PyObject* consts;   /* the constants' arrays */
    PyObject* symbols;  /* the symbols' names */
    PyObject* checks;   /* per index check (uses, argument names); per nonempty size, the
                           message */
    void* sized;        /* the runtime's: the sizes of the last call's symbols (see _setup) */
} gc_function;

/* A module's function `f` from its tables gc_f_args, gc_f_written, ..., each led by its number
   of rows (the program by its number of entries); `api->setup` reads the counts when the
   module is imported, and sets the rest. */
#define GC_FUNCTION(f)                                                                          \
    {.name = #f, .args = gc_##f##_args, .products = gc_##f##_products,                          \
     .written = gc_##f##_written, .outs = gc_##f##_outs,                                          \
     .sizes = gc_##f##_sizes, .floats = gc_##f##_floats, .slots = gc_##f##_slots,               \
     .values = gc_##f##_values, .copies = gc_##f##_copies, .index = gc_##f##_index,             \
     .nonempty = gc_##f##_nonempty, .program = gc_##f##_program}

typedef struct {
    int abi;
    /* fn(x, lo, hi) over 0 <= lo < hi <= n, in pieces of `chunk` shared among the threads
       when `work` (elements) is large */
    void (*parallel)(gc_loop_fn fn, const gc_args* x, Py_ssize_t n, Py_ssize_t chunk,
                     Py_ssize_t work);
    /* The sums of a Reduce over n elements (graphc/codegen/kir.py), by blocks `fn` */
    void (*reduce_d)(gc_block_d_fn fn, const gc_args* x, Py_ssize_t n, int nsums, double* sums);
    void (*reduce_s)(gc_block_s_fn fn, const gc_args* x, Py_ssize_t n, int nsums, float* sums);
    /* Function `fn`'s counts from its tables, its Python data (nparts, names, defaults, spec,
       outspec, keys, checks, consts, symbols) and its kernels; its capsule ("graphc.function",
       by which the runtime's `profile` runs it), or NULL with an error set */
    PyObject* (*setup)(gc_function* fn, PyObject* data, const gc_kernel_fn* kernels);
    /* kernels[first + k] = the runtime kernel names[k], for each; -1 (an ImportError) when
       this runtime has not one of them */
    int (*link)(gc_kernel_fn* kernels, int first, PyObject* names);
    /* A loop's step (x: its operands, see templates/runtime/scan.pyx.j2): its body's steps
       once per trip, with the module's `kernels` */
    void (*scan)(const gc_args* x, const gc_kernel_fn* kernels);
} gc_api;

/* The runtime's API from its capsule, or NULL with an ImportError set. */
static const gc_api* gc_api_of(PyObject* capsule) {
    const gc_api* api = (const gc_api*)PyCapsule_GetPointer(capsule, "graphc.runtime.api");
    if (api != NULL && api->abi != GC_ABI) {
        PyErr_Format(PyExc_ImportError, "graphc's runtime has ABI %d, this module %d: build "
                     "the module again", api->abi, GC_ABI);
        return NULL;
    }
    return api;
}

/* ---- exp, log and tanh as straight-line C (no branches, no calls, no tables) that the C
   compiler vectorises like any other arithmetic. Because the same instructions run in every
   vector lane and in a loop's scalar remainder, an element's value never depends on its
   position, the number of threads, or how loops were fused. Measured against long double
   references (tests/codegen/test_vecmath.py): exp and log within 1 ulp, tanh within 2 ulp.

   exp: x = k ln2 + r with |r| <= ln2/2 (Cody and Waite's two-part ln2, so k ln2 is exact);
     exp(r) = 1 + r + r c / (2 - c), c = r - r^2 P(r^2) (the Remez polynomial of fdlibm's e_exp);
     2^k applied as two exact powers of two, so results that are subnormal round once.
   log: x = 2^k m with m in [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f),
     log(m) = f - s (f - R(s^2)) arranged as in fdlibm's e_log (its Remez polynomial R).
   tanh: with m = expm1(2|x|) = 2^k (1 + expm1(r)) - 1, expm1(r) = r + r c / (2 - c) (no
     cancellation), tanh|x| = m / (m + 2) below 0.55 and 1 - 2 / (m + 2) above. */
static inline GC_KERNEL int64_t gc_bits(double d) { int64_t i; memcpy(&i, &d, 8); return i; }
static inline GC_KERNEL double gc_from_bits(int64_t i) { double d; memcpy(&d, &i, 8); return d; }
#define GC_SHIFT 0x1.8p52 /* adding it rounds to an integer held in the low bits */
/* 2^k for an integer-valued k in [-1022, 1023] */
static inline GC_KERNEL double gc_pow2(double k) {
    return gc_from_bits((gc_bits(k + GC_SHIFT) - gc_bits(GC_SHIFT) + 1023) << 52);
}
#define GC_LN2_HI 6.93147180369123816490e-01
#define GC_LN2_LO 1.90821492927058770002e-10
#define GC_INV_LN2 1.44269504088896338700e+00
static inline GC_KERNEL double gc_exp_c(double r) {
    double t = r * r;
    return r - t * (1.66666666666666019037e-01 + t * (-2.77777777770155933842e-03
        + t * (6.61375632143793436117e-05 + t * (-1.65339022054652515390e-06
        + t * 4.13813679705723846039e-08))));
}
static inline GC_KERNEL double gc_exp(double x) {
    double xc = x > 709.8 ? 709.8 : x;
    xc = xc < -745.2 ? -745.2 : xc; /* NaN passes both */
    double k = (xc * GC_INV_LN2 + GC_SHIFT) - GC_SHIFT;
    double hi = xc - k * GC_LN2_HI; /* exact */
    double lo = k * GC_LN2_LO;
    double r = hi - lo;
    double c = gc_exp_c(r);
    double y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi);
    double k1 = (k * 0.5 + GC_SHIFT) - GC_SHIFT;
    return y * gc_pow2(k1) * gc_pow2(k - k1);
}
/* expm1(y) for 0 <= y <= 700 */
static inline GC_KERNEL double gc_expm1_pos(double y) {
    double k = (y * GC_INV_LN2 + GC_SHIFT) - GC_SHIFT;
    double hi = y - k * GC_LN2_HI;
    double lo = k * GC_LN2_LO;
    double r = hi - lo;
    double c = gc_exp_c(r);
    double em = r + (((hi - r) - lo) + (r * c) / (2.0 - c));
    double p = gc_pow2(k);
    return p * em + (p - 1.0);
}
static inline GC_KERNEL double gc_tanh(double x) {
    double a = fabs(x);
    double m = gc_expm1_pos(a > 20.0 ? 40.0 : 2.0 * a); /* tanh(20) rounds to 1 */
    double t = a < 0.55 ? m / (m + 2.0) : 1.0 - 2.0 / (m + 2.0);
    return copysign(t, x);
}
static inline GC_KERNEL double gc_log(double x) {
    double xs = x < 0x1p-1022 ? x * 0x1p54 : x; /* subnormals scaled up */
    double ks = x < 0x1p-1022 ? 54.0 : 0.0;
    int64_t b = gc_bits(xs);
    double e = gc_from_bits((int64_t)(((uint64_t)b >> 52) & 0x7ff) | gc_bits(GC_SHIFT)) - GC_SHIFT;
    double m = gc_from_bits((b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL); /* [1, 2) */
    double big = m > 1.4142135623730951 ? 1.0 : 0.0;
    m = big > 0.0 ? m * 0.5 : m;
    double k = e - 1023.0 - ks + big;
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double t1 = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
        + w * 1.531383769920937332e-01));
    double t2 = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
        + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
    double R = t2 + t1;
    double hfsq = 0.5 * f * f;
    double y = k * GC_LN2_HI - ((hfsq - (s * (hfsq + R) + k * GC_LN2_LO)) - f);
    return x > 0.0 && x < INFINITY ? y : (x == 0.0 ? -INFINITY : (x > 0.0 ? x : (x == x ? NAN : x)));
}

/* ---- erf and erfc, straight-line like the above. Below 0.5, erf(a) = a P(a^2). From 0.5 on,
   with t = 2 / (2 + a), erfc(a) = t exp(-a^2 + Q(4t - 2)), one polynomial Q for the whole
   range (as Numerical Recipes' erfc), -a^2 + Q summed exactly as z + dz: t exp(z) (1 + dz).
   erf = 1 - erfc and erfc = 1 - erf where the difference loses nothing; odd, or reflected,
   for negative arguments. Fits by tests/codegen/fit_vecmath.py; measured against long double
   (tests/codegen/test_vecmath_erf.py): erf within 3 ulp, erfc within 6. */
static const double GC_ERF_SMALL[10] = {
    1.0830752376761712, -0.04364205888669792, 0.0016130716680617073, -4.7623369344685e-05,
    1.1516037795233155e-06, -2.3472291634930292e-08, 4.12702515200825e-10,
    -6.3744180598158025e-12, 8.777607134619479e-14, -1.089126864842651e-15,
};
#define GC_ERFC_MID -0.2666666666666666
#define GC_ERFC_INV_HALF 0.6818181818181818
static const double GC_ERFC_BIG[23] = {
    -0.7605305090234711, 0.482257791213048, 0.03487470250824973, -0.015841843864873976,
    -0.004366761479667836, 0.001397369665406245, 0.0005815061396650045, -0.0001998427607234341,
    -7.966889188793025e-05, 3.684069161926762e-05, 9.671423777328227e-06, -7.26226352465268e-06,
    -6.554087096268183e-07, 1.3387222167810168e-06, -1.2102275042057778e-07,
    -2.0416151858969862e-07, 6.259352190168924e-08, 2.082870007101911e-08,
    -1.48303425018763e-08, -4.5241872786106345e-10, 2.1589249589263866e-09,
    -1.516171818551869e-10, -1.5649791265478424e-10,
};
static inline GC_KERNEL GC_INLINE double gc_erf_small(double a) { /* erf(a), 0 <= a < 0.5 */
    const double* c = GC_ERF_SMALL;
    double u = (a * a - 0.125) * 8.0;
    double p = ((((((((c[9] * u + c[8]) * u + c[7]) * u + c[6]) * u + c[5]) * u + c[4]) * u
        + c[3]) * u + c[2]) * u + c[1]) * u + c[0];
    return a * p;
}
static inline GC_KERNEL GC_INLINE double gc_erfc_big(double a) { /* erfc(a), a >= 0.5 */
    double x = a < 28.0 ? a : 28.0; /* erfc(28) underflows; NaN too: the caller selects it out */
    x = x > 0.5 ? x : 0.5;
    const double* c = GC_ERFC_BIG;
    double t = 2.0 / (2.0 + x);
    double u = ((4.0 * t - 2.0) - GC_ERFC_MID) * GC_ERFC_INV_HALF;
    /* Estrin's scheme: a few short chains instead of one of 22 steps, so that the loop's
       iterations overlap in the processor */
    double u2 = u * u, u4 = u2 * u2, u8 = u4 * u4, u16 = u8 * u8;
    double p0 = c[0] + c[1] * u, p1 = c[2] + c[3] * u, p2 = c[4] + c[5] * u;
    double p3 = c[6] + c[7] * u, p4 = c[8] + c[9] * u, p5 = c[10] + c[11] * u;
    double p6 = c[12] + c[13] * u, p7 = c[14] + c[15] * u, p8 = c[16] + c[17] * u;
    double p9 = c[18] + c[19] * u, p10 = c[20] + c[21] * u;
    double q0 = p0 + p1 * u2, q1 = p2 + p3 * u2, q2 = p4 + p5 * u2, q3 = p6 + p7 * u2;
    double q4 = p8 + p9 * u2, q5 = p10 + c[22] * u2;
    double r0 = q0 + q1 * u4, r1 = q2 + q3 * u4, r2 = q4 + q5 * u4;
    double q = (r0 + r1 * u8) + r2 * u16;
    double s = x * 134217729.0; /* Dekker's split: x = xh + xl, each of 26 bits */
    double xh = s - (s - x), xl = x - xh;
    double hi = x * x;
    double lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl;
    double r = q - lo;
    double z = r - hi; /* -a^2 + Q = z + dz exactly (Knuth's two-sum) */
    double zb = z - r;
    double dz = (r - (z - zb)) + (-hi - zb);
    return t * gc_exp(z) * (1.0 + dz);
}
static inline GC_KERNEL GC_INLINE double gc_erf(double x) {
    double a = fabs(x);
    double r = a < 0.5 ? gc_erf_small(a) : 1.0 - gc_erfc_big(a);
    return x == x ? copysign(r, x) : x;
}
static inline GC_KERNEL GC_INLINE double gc_erfc(double x) {
    double a = fabs(x);
    double s = gc_erf_small(a), e = gc_erfc_big(a);
    double pos = a < 0.5 ? 1.0 - s : e;
    double neg = a < 0.5 ? 1.0 + s : 2.0 - e;
    return x == x ? (x < 0.0 ? neg : pos) : x;
}

/* ---- float versions for float32 kernels: the same methods in float arithmetic, with
   polynomials of float accuracy, so a vector holds twice the elements. erf needs no erfc of
   relative accuracy: from 0.75 on it is 1 - exp(-a^2) R(a), R a polynomial in a (no division,
   no exact -a^2), and below, a P(a^2) as for double. erfc is double's formula for every
   a >= 0, t exp(-a^2 + Q(4t - 2)): no second branch below 0.5 for the loop to compute too.
   -a^2 is -h^2 - l (a + h), h = a rounded to a multiple of 2^-8 (h^2 exact) and l = a - h, and
   the exp is inlined so that -h^2 enters its reduced argument exactly (-h^2 - k ln2 is exact,
   the rest a small sum) instead of through a two-sum and a correction (1 + dz). Measured
   against long double (tests/codegen/test_vecmath_erf.py, 2^15 points a function): expf within
   1 ulp (float), erff within 2.1, erfcf 6; against libm's double on 2^20 points (2^26 floats
   for expf): expf 1.04, erff 2.3, erfcf 6.2. */
static const float GC_ERF_SMALL_F[7] = {
    1.03095281124115f, -0.08960376679897308f, 0.007314485032111406f, -0.0004808710655197501f,
    2.5991688744397834e-05f, -1.1894074987139902e-06f, 4.6815312515491314e-08f,
};
static const float GC_ERF_TAIL_F[12] = {
    0.2237904667854309f, -0.13199511170387268f, 0.07370305806398392f, -0.039220746606588364f,
    0.019981402903795242f, -0.00981335062533617f, 0.0047159940004348755f,
    -0.002132658613845706f, 0.0008115895907394588f, -0.00038167386082932353f,
    0.000285684218397364f, -0.0001058617199305445f,
};
#define GC_ERFC_U1_F 2.3809523582458496f /* u = t U1 + U0 = (4t - 2 - mid) / half */
#define GC_ERFC_U0_F -1.3809523582458496f
static const float GC_ERFC_F[12] = {
    -0.56315678358078f, 0.5746099948883057f, 0.01671626605093479f, -0.030147699639201164f,
    -0.001233160961419344f, 0.0038775266148149967f, -0.0002566029434092343f,
    -0.0005884519778192043f, 0.00013251174823381007f, 7.611374167026952e-05f,
    -2.4017719624680467e-05f, -5.674413841916248e-06f,
};
static const float GC_EXPF[5] = { /* (exp(r) - 1 - r) / r^2, |r| <= log(2)/2 */
    0.5f, 0.16666577756404877f, 0.041666943579912186f, 0.00836312584578991f,
    0.0013893831055611372f,
};
static inline GC_KERNEL int32_t gc_bitsf(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
static inline GC_KERNEL float gc_from_bitsf(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
#define GC_SHIFTF 0x1.8p23f
static inline GC_KERNEL float gc_pow2f(float k) { /* 2^k, k an integer in [-126, 127] */
    return gc_from_bitsf((gc_bitsf(k + GC_SHIFTF) - gc_bitsf(GC_SHIFTF) + 127) << 23);
}
static inline GC_KERNEL GC_INLINE float gc_expf_r(float r) { /* exp(r), |r| <= log(2)/2 */
    const float* c = GC_EXPF;
    float r2 = r * r; /* Estrin's scheme: shorter chains than Horner's */
    float p = (c[0] + c[1] * r) + r2 * ((c[2] + c[3] * r) + r2 * c[4]);
    return 1.0f + (r + r2 * p);
}
static inline GC_KERNEL GC_INLINE float gc_expf(float x) {
    float xc = x > 88.8f ? 88.8f : x;
    xc = xc < -104.0f ? -104.0f : xc; /* NaN passes both */
    float k = (xc * 1.44269504f + GC_SHIFTF) - GC_SHIFTF;
    float r = (xc - k * 0.693145751953125f) - k * 1.428606765330187e-06f; /* Cody and Waite */
    float y = gc_expf_r(r);
    float k1 = (k * 0.5f + GC_SHIFTF) - GC_SHIFTF;
    return y * gc_pow2f(k1) * gc_pow2f(k - k1);
}
static inline GC_KERNEL GC_INLINE float gc_erff_small(float a) { /* erf(a), 0 <= a < 0.75 */
    const float* c = GC_ERF_SMALL_F;
    float u = (a * a - 0.28125f) * 3.5555555555555554f;
    return a * ((((((c[6] * u + c[5]) * u + c[4]) * u + c[3]) * u + c[2]) * u + c[1]) * u + c[0]);
}
static inline GC_KERNEL GC_INLINE float gc_erff_tail(float a) { /* erf(a), a >= 0.75 */
    /* erf(3.92) rounds to 1; below 0.75 (R's u below -1) the caller selects the result out */
    float b = a < 3.92f ? a : 3.92f;
    const float* c = GC_ERF_TAIL_F;
    float u = (b - 2.335f) * 0.6309148264984227f;
    float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4;
    float r = ((c[0] + c[1] * u) + (c[2] + c[3] * u) * u2)
        + ((c[4] + c[5] * u) + (c[6] + c[7] * u) * u2) * u4
        + ((c[8] + c[9] * u) + (c[10] + c[11] * u) * u2) * u8;
    return 1.0f - gc_expf(-(a * a)) * r;
}
static inline GC_KERNEL GC_INLINE float gc_erff(float x) {
    float a = fabsf(x);
    float r = a < 0.75f ? gc_erff_small(a) : gc_erff_tail(a); /* NaN: the tail's exp's NaN */
    return copysignf(r, x);
}
static inline GC_KERNEL GC_INLINE float gc_erfcf(float x) {
    float a = fabsf(x);
    a = a > 10.5f ? 10.5f : a; /* erfc(10.5) underflows; NaN stays NaN, and so is the result */
    const float* c = GC_ERFC_F;
    float t = 2.0f / (2.0f + a);
    float u = t * GC_ERFC_U1_F + GC_ERFC_U0_F;
    float u2 = u * u, u4 = u2 * u2, u8 = u4 * u4; /* Estrin's scheme */
    float q = (((c[0] + c[1] * u) + (c[2] + c[3] * u) * u2)
        + ((c[4] + c[5] * u) + (c[6] + c[7] * u) * u2) * u4)
        + ((c[8] + c[9] * u) + (c[10] + c[11] * u) * u2) * u8;
    float h = (a + 0x1.8p15f) - 0x1.8p15f; /* a to a multiple of 2^-8: h * h is exact */
    float l = a - h, hh = h * h;
    float w = q - l * (a + h); /* -a^2 + q = -hh + w */
    /* exp(-hh + w) as gc_expf: hh and k * 0.693145751953125 are multiples of 2^-16 below 2^8,
       so their difference is exact */
    float k = ((w - hh) * 1.44269504f + GC_SHIFTF) - GC_SHIFTF; /* -165 <= k <= 0 */
    float r = ((-hh - k * 0.693145751953125f) + w) - k * 1.428606765330187e-06f;
    float s = gc_from_bitsf((gc_bitsf(k + GC_SHIFTF) - gc_bitsf(GC_SHIFTF) + 127 + 64) << 23);
    float e = ((t * gc_expf_r(r)) * s) * 0x1p-64f; /* s = 2^(k + 64): the one rounding to a
                                                      subnormal is the last */
    return x < 0.0f ? 2.0f - e : e;
}

/* The first output index t (clamped to [0, n_out]) whose tap t*s + off is >= 0, and one past
   the last whose tap is < n_in (convolution and pooling windows). */
static inline GC_KERNEL Py_ssize_t gc_first(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n_out) {
    Py_ssize_t t = off >= 0 ? 0 : (-off + s - 1) / s;
    return t < n_out ? t : n_out;
}
static inline GC_KERNEL Py_ssize_t gc_end(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n_in,
                                          Py_ssize_t n_out) {
    Py_ssize_t t = n_in - off <= 0 ? 0 : (n_in - off + s - 1) / s;
    return t < n_out ? t : n_out;
}

/* NumPy's pairwise summation of n > 128 terms (pairwise_sum, numpy/_core/src/umath/
   loops_utils.h.src) adds the sum of the first n/2 (rounded down to a multiple of 8) and the
   sum of the rest, each split so in turn down to runs of at most 128, its leaves. For the leaf
   that starts at term `at`: its length, and how many sums end with it (the additions of
   partial sums once it is summed: codegen/loops.py row_sums). */
static inline GC_KERNEL Py_ssize_t gc_pairwise_leaf(Py_ssize_t n, Py_ssize_t at) {
    Py_ssize_t lo = 0;
    while (n > 128) {
        Py_ssize_t half = n / 2 - n / 2 % 8;
        if (at < lo + half) n = half;
        else { lo += half; n -= half; }
    }
    return n;
}
static inline GC_KERNEL Py_ssize_t gc_pairwise_joins(Py_ssize_t n, Py_ssize_t at) {
    Py_ssize_t lo = 0, joins = 0;
    while (n > 128) {
        Py_ssize_t half = n / 2 - n / 2 % 8;
        if (at < lo + half) { n = half; joins = 0; }
        else { lo += half; n -= half; joins += 1; }
    }
    return joins;
}

/* The runtime's kernels along contiguous rows (softmax, log-softmax, logsumexp, layer norm:
   their templates). gc_row_max: the largest of n values, NaN if any is NaN (n = 0: -inf); eight
   running maxima, one vector, each taking a value greater than its own or a NaN, then the
   eight compared so: a maximum is exact whatever the order (+0 and -0, equal, may come out
   either way, as from np.max; the kernels' results do not depend on that sign).
   gc_pairwise_sum: NumPy's pairwise summation of n terms (pairwise_sum, numpy/_core/src/umath/
   loops_utils.h.src), so np.sum's bits for a contiguous row but for np.sum's initial 0.0,
   which the caller adds: fewer than 8 terms in order from 0; up to 128, eight accumulators
   (one vector) then ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) then the last n % 8 in order; more,
   the first n/2 (rounded down to a multiple of 8) and the rest, each summed so. The same
   order as the rows that fused loops sum (codegen/loops.py row_sum); gc_pairwise_leaf: the
   same for n <= 128, inlined. */
#define GC_ROW_KERNELS(S, T)                                                                       \
    static inline GC_KERNEL T gc_row_max_##S(const T* x, Py_ssize_t n) {                           \
        T m[8];                                                                                    \
        Py_ssize_t j = 0;                                                                          \
        for (int c = 0; c < 8; c++) m[c] = -INFINITY;                                              \
        for (; j + 8 <= n; j += 8)                                                                 \
            for (int c = 0; c < 8; c++) {                                                          \
                T v = x[j + c];                                                                    \
                m[c] = ((v > m[c]) | (v != v)) ? v : m[c];                                         \
            }                                                                                      \
        for (; j < n; j++) m[0] = ((x[j] > m[0]) | (x[j] != x[j])) ? x[j] : m[0];                  \
        T top = m[0];                                                                              \
        for (int c = 1; c < 8; c++) top = ((m[c] > top) | (m[c] != m[c])) ? m[c] : top;            \
        return top;                                                                                \
    }                                                                                              \
    static inline GC_KERNEL GC_INLINE T gc_pairwise_leaf_##S(const T* a, Py_ssize_t n) {       \
        if (n < 8) {                                                                               \
            T res = 0;                                                                             \
            for (Py_ssize_t i = 0; i < n; i++) res += a[i];                                        \
            return res;                                                                            \
        }                                                                                          \
        T r[8];                                                                                    \
        Py_ssize_t i = 8, stop = n - n % 8;                                                        \
        for (int c = 0; c < 8; c++) r[c] = a[c];                                                   \
        for (; i < stop; i += 8)                                                                   \
            for (int c = 0; c < 8; c++) r[c] += a[i + c];                                          \
        T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));                 \
        for (; i < n; i++) res += a[i];                                                            \
        return res;                                                                                \
    }                                                                                              \
    static inline GC_KERNEL T gc_pairwise_sum_##S(const T* a, Py_ssize_t n) {                      \
        if (n <= 128) return gc_pairwise_leaf_##S(a, n);                                           \
        Py_ssize_t half = n / 2 - n / 2 % 8;                                                       \
        return gc_pairwise_sum_##S(a, half) + gc_pairwise_sum_##S(a + half, n - half);             \
    }
GC_ROW_KERNELS(d, double)
GC_ROW_KERNELS(s, float)
/* NAME(x, c, n): the pairwise sum (in U, of suffix US) of TERM(x[i], c) over a row x of n Ts,
   each leaf's terms computed into a buffer first (one vectorised loop), never all of them at
   once: np.sum's order over the array of the terms. */
#define GC_PAIRWISE_OF(NAME, T, U, US, TERM)                                                    \
    static inline GC_KERNEL U NAME(const T* x, U c, Py_ssize_t n) {                             \
        if (n > 128) {                                                                          \
            Py_ssize_t half = n / 2 - n / 2 % 8;                                                \
            return NAME(x, c, half) + NAME(x + half, c, n - half);                              \
        }                                                                                       \
        U e[128];                                                                               \
        for (Py_ssize_t i = 0; i < n; i++) e[i] = TERM(x[i], c);                                \
        return gc_pairwise_sum_##US(e, n);                                                      \
    }
#define GC_EXP_TERM(v, c) gc_exp((v) - (c))
#define GC_EXPF_TERM(v, c) gc_expf((v) - (c))
#define GC_WIDE_TERM(v, c) ((double)(v))
#define GC_SQUARE_TERM(v, c) (((double)(v) - (c)) * ((double)(v) - (c)))
/* softmax's and logsumexp's exp(x - top); layer norm's x and (x - mean)^2, in double */
GC_PAIRWISE_OF(gc_pairwise_exp_sum_d, double, double, d, GC_EXP_TERM)
GC_PAIRWISE_OF(gc_pairwise_exp_sum_s, float, float, s, GC_EXPF_TERM)
GC_PAIRWISE_OF(gc_pairwise_wide_sum_d, double, double, d, GC_WIDE_TERM)
GC_PAIRWISE_OF(gc_pairwise_wide_sum_s, float, double, d, GC_WIDE_TERM)
GC_PAIRWISE_OF(gc_pairwise_square_sum_d, double, double, d, GC_SQUARE_TERM)
GC_PAIRWISE_OF(gc_pairwise_square_sum_s, float, double, d, GC_SQUARE_TERM)

/* Contiguous rows of softmax (log-softmax when take_log), each shifted by its maximum, its
   exps added pairwise from np.sum's initial 0, each divided by their sum (or x - top -
   log(sum)). Rows of at most 128 go eight at a time: all their exps are stored before the
   first is read back (read at once, a vector load waits for the store it overlaps). x and
   out are distinct (restrict: no overlap checks in the loops). */
#define GC_SOFTMAX_ROW(S, T, EXP)                                                               \
    static inline GC_KERNEL void gc_softmax_rows_##S(const T* restrict x, T* restrict out,     \
                                                     Py_ssize_t rows, Py_ssize_t n,            \
                                                     int take_log) {                           \
        Py_ssize_t block = n <= 128 ? 8 : 1;                                                    \
        T tops[8];                                                                              \
        for (Py_ssize_t o = 0; o < rows; o += block) {                                          \
            Py_ssize_t b = rows - o < block ? rows - o : block;                                 \
            for (Py_ssize_t r = 0; r < b; r++) {                                                \
                const T* xr = x + (o + r) * n;                                                  \
                T* yr = out + (o + r) * n;                                                      \
                T top = gc_row_max_##S(xr, n);                                                  \
                tops[r] = top;                                                                  \
                for (Py_ssize_t j = 0; j < n; j++) yr[j] = EXP(xr[j] - top);                    \
            }                                                                                   \
            for (Py_ssize_t r = 0; r < b; r++) {                                                \
                const T* xr = x + (o + r) * n;                                                  \
                T* yr = out + (o + r) * n;                                                      \
                T top = tops[r], total = 0;                                                     \
                total = total + (n <= 128 ? gc_pairwise_leaf_##S(yr, n)                         \
                                          : gc_pairwise_sum_##S(yr, n));                        \
                if (take_log) {                                                                 \
                    T lt = (T)gc_log(total);                                                    \
                    for (Py_ssize_t j = 0; j < n; j++) yr[j] = (xr[j] - top) - lt;              \
                } else {                                                                        \
                    for (Py_ssize_t j = 0; j < n; j++) yr[j] = yr[j] / total;                   \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }
GC_SOFTMAX_ROW(d, double, gc_exp)
GC_SOFTMAX_ROW(s, float, gc_expf)

/* A small matrix product c[m, n] = op(a) @ op(b), all row-major, op transposing an operand
   stored transposed (ta: a is [k, m]; tb: b is [n, k]): each c[i, j] the sum over p of
   op(a)[i, p] * op(b)[p, j] added in order of p from 0, one rounding per operation (not
   BLAS's order, which differs by BLAS and CPU). op(b) is copied to k rows of whole vectors of W
   (its columns past n zero), and c is computed four rows by W columns at a time in
   accumulators the compiler keeps in vector registers; 0 (nothing done) when that copy would
   pass GC_SMALL_GEMM_B elements. For the products too small for BLAS's call to pay (attention's,
   per head). gc_plain_gemm sums each element alone in the same order, copying nothing, at
   any size: for tiny products, and those too large for a BLAS of 32-bit sizes. */
#define GC_SMALL_GEMM_B 2048
#if defined(__GNUC__)
#define GC_VECTORS 1
typedef double gc_vec_d __attribute__((vector_size(64)));
typedef float gc_vec_s __attribute__((vector_size(64)));
#define GC_SMALL_GEMM_BLOCKS(S, T, W)                                                           \
    Py_ssize_t rs = ta ? 1 : k, ps = ta ? m : 1; /* a's strides: between rows, along p */       \
    for (Py_ssize_t i0 = 0; i0 < m; i0 += 4) {                                                  \
        Py_ssize_t rows = m - i0 < 4 ? m - i0 : 4;                                              \
        Py_ssize_t r1 = rows > 1 ? rs : 0, r2 = rows > 2 ? 2 * rs : 0, r3 = rows > 3 ? 3 * rs : 0; \
        for (Py_ssize_t j0 = 0; j0 < nw; j0 += W) {                                             \
            gc_vec_##S c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, bv;                              \
            const T* ap = a + i0 * rs;                                                          \
            const T* bp = bs + j0;                                                              \
            for (Py_ssize_t p = 0; p < k; p++, ap += ps, bp += ldb) {                           \
                __builtin_memcpy(&bv, bp, sizeof bv);                                           \
                c0 = c0 + ap[0] * bv;                                                           \
                c1 = c1 + ap[r1] * bv;                                                          \
                c2 = c2 + ap[r2] * bv;                                                          \
                c3 = c3 + ap[r3] * bv;                                                          \
            }                                                                                   \
            Py_ssize_t w = n - j0 < W ? n - j0 : W;                                             \
            T* cr = c + i0 * n + j0;                                                            \
            for (Py_ssize_t q = 0; q < w; q++) cr[q] = c0[q];                                   \
            for (Py_ssize_t q = 0; q < w && rows > 1; q++) cr[n + q] = c1[q];                   \
            for (Py_ssize_t q = 0; q < w && rows > 2; q++) cr[2 * n + q] = c2[q];               \
            for (Py_ssize_t q = 0; q < w && rows > 3; q++) cr[3 * n + q] = c3[q];               \
        }                                                                                       \
    }
#else /* no vector types: BLAS computes these products (gc_small_gemm declines them) */
#define GC_VECTORS 0
#define GC_SMALL_GEMM_BLOCKS(S, T, W)
#endif
#define GC_SMALL_GEMM(S, T, W)                                                                  \
    static inline GC_KERNEL void gc_plain_gemm_##S(int ta, int tb, Py_ssize_t m, Py_ssize_t n,  \
                                                   Py_ssize_t k, const T* restrict a,          \
                                                   const T* restrict b, T* restrict c) {       \
        /* a's and b's strides along p and across i or j: a loop of the same shape whatever the \
           flags, with nothing tested inside it */                                              \
        Py_ssize_t ap = ta ? m : 1, ai = ta ? 1 : k, bp = tb ? 1 : n, bj = tb ? k : 1;          \
        for (Py_ssize_t i = 0; i < m; i++)                                                      \
            for (Py_ssize_t j = 0; j < n; j++) {                                                \
                const T* x = a + i * ai;                                                        \
                const T* y = b + j * bj;                                                        \
                T t = 0;                                                                        \
                for (Py_ssize_t p = 0; p < k; p++) t = t + x[p * ap] * y[p * bp];               \
                c[i * n + j] = t;                                                               \
            }                                                                                   \
    }                                                                                           \
    static inline GC_KERNEL int gc_small_gemm_##S(int ta, int tb, Py_ssize_t m, Py_ssize_t n,   \
                                                  Py_ssize_t k, const T* restrict a,           \
                                                  const T* restrict b, T* restrict c) {        \
        Py_ssize_t nw = (n + W - 1) / W * W;                                                    \
        if (!GC_VECTORS || k * nw > GC_SMALL_GEMM_B) return 0;                                  \
        T bw[GC_SMALL_GEMM_B];                                                                  \
        const T* bs = b; /* op(b) with rows ldb apart, each a whole number of vectors */        \
        Py_ssize_t ldb = n;                                                                     \
        if (tb || n != nw) {                                                                    \
            memset(bw, 0, k * nw * sizeof(T));                                                  \
            if (tb)                                                                             \
                for (Py_ssize_t j = 0; j < n; j++)                                              \
                    for (Py_ssize_t p = 0; p < k; p++) bw[p * nw + j] = b[j * k + p];           \
            else                                                                                \
                for (Py_ssize_t p = 0; p < k; p++)                                              \
                    memcpy(bw + p * nw, b + p * n, n * sizeof(T));                              \
            bs = bw;                                                                            \
            ldb = nw;                                                                           \
        }                                                                                       \
        GC_SMALL_GEMM_BLOCKS(S, T, W)                                                           \
        return 1;                                                                               \
    }
GC_SMALL_GEMM(d, double, 8)
GC_SMALL_GEMM(s, float, 16)

#include "graphc_math.h" /* the other elementary functions, as branch-free as these */

#endif
