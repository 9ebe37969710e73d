/* The checks of a call's arguments and of its out= arrays, shared by every function of the
   module. They read tables (one per function, made by graphc) instead of being written out
   for each argument, which keeps the C that the compiler must optimise small. Each answers
   only whether a call is fine: when it is not, graphc.runtime.calls looks at the call again
   in Python, converts what it can (lists, other integer types) and words the error. */
#include <numpy/arrayobject.h>

/* The arguments given all by name, in the order of `names` (a tuple of str), those missing
   taken from `defaults` (a tuple of None or a default per name; empty: none has one): a new
   tuple, or NULL (and no error) when `kwargs` lacks one without a default or holds a name
   that is not in `names` (or there is no memory: binding them in Python then says so). */
static PyObject* gc_by_name(PyObject* kwargs, PyObject* names, PyObject* defaults) {
    Py_ssize_t n = PyTuple_GET_SIZE(names), found = 0;
    PyObject* given = PyTuple_New(n);
    if (given == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        /* borrowed; unlike PyDict_GetItem, no saving and restoring of the error state */
        PyObject* v = PyDict_GetItemWithError(kwargs, PyTuple_GET_ITEM(names, i));
        if (v != NULL) {
            found++;
        } else {
            PyErr_Clear();
            v = PyTuple_GET_SIZE(defaults) ? PyTuple_GET_ITEM(defaults, i) : Py_None;
            if (v == Py_None) {
                Py_DECREF(given);
                return NULL;
            }
        }
        Py_INCREF(v);
        PyTuple_SET_ITEM(given, i, v);
    }
    if (found != PyDict_GET_SIZE(kwargs)) { /* a name the function does not take */
        Py_DECREF(given);
        return NULL;
    }
    return given;
}

/* Do the objects of the tuple `given` fit the table `spec`: each an ndarray of its type and
   rank, C-contiguous, aligned and in native byte order, with its sizes? An argument's entry
   in the table is its type number and rank, then a size for each axis: a size >= 0 is fixed,
   -1 - s is symbol s (bound by the first argument that has it). Fills data[i] and sym[s] and
   returns -1 if they fit, else the position of the first argument that does not. */
static int gc_check_args(PyObject* given, const long long* spec, void** data, Py_ssize_t* sym,
                         int nsym) {
    int n = (int)PyTuple_GET_SIZE(given);
    for (int s = 0; s < nsym; s++) sym[s] = -1;
    for (int i = 0; i < n; i++) {
        PyObject* o = PyTuple_GET_ITEM(given, i);
        int typenum = (int)*spec++, ndim = (int)*spec++;
        const long long* dims = spec;
        spec += ndim;
        if (!PyArray_Check(o)) return i;
        PyArrayObject* a = (PyArrayObject*)o;
        if (PyArray_TYPE(a) != typenum || PyArray_NDIM(a) != ndim ||
            !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISBEHAVED_RO(a))
            return i;
        for (int k = 0; k < ndim; k++) {
            npy_intp size = PyArray_DIM(a, k);
            long long d = dims[k];
            if (d >= 0) {
                if (size != d) return i;
            } else if (sym[-1 - d] < 0) {
                sym[-1 - d] = size;
            } else if (sym[-1 - d] != size) {
                return i;
            }
        }
        data[i] = PyArray_DATA(a);
    }
    return -1;
}

/* Do arrays a and b share a byte? */
static int gc_overlap(PyArrayObject* a, PyArrayObject* b) {
    char* pa = (char*)PyArray_DATA(a);
    char* pb = (char*)PyArray_DATA(b);
    npy_intp na = PyArray_NBYTES(a), nb = PyArray_NBYTES(b);
    return na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

/* out=, for a function whose outputs are `outs`, a tuple of (part, key, ...): part -1 when
   out= is one dict, else the position in out= (a tuple of dicts) of the dict that holds the
   key. `table` holds each output's type number, rank and part, then a size per axis (see
   graphc_rt.h), `dims` their sizes one after the other. Returns 0 and sets *arrays to a new
   tuple of the caller's arrays when each is an ndarray of its type and sizes, C-contiguous,
   aligned, writeable and in native byte order, sharing no memory with an input (the tuple
   `inputs`) or another output, and out= holds no other key; 1 (and no error) when that is
   not so; -1 when Python failed (an error is set). */
#define GC_MAX_PARTS 8
static int gc_out_arrays(PyObject* out, PyObject* outs, const int32_t* table, const npy_intp* dims,
                         PyObject* inputs, PyObject** arrays) {
    Py_ssize_t n = PyTuple_GET_SIZE(outs), held[GC_MAX_PARTS], want[GC_MAX_PARTS];
    for (int p = 0; p < GC_MAX_PARTS; p++) held[p] = want[p] = 0;
    PyObject* got = PyTuple_New(n);
    if (got == NULL) return -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject* entry = PyTuple_GET_ITEM(outs, k);
        long part = PyLong_AsLong(PyTuple_GET_ITEM(entry, 0));
        int slot = part < 0 ? 0 : (int)part;
        if (slot >= GC_MAX_PARTS) goto bad;
        PyObject* where = part < 0 ? (Py_INCREF(out), out) : PySequence_GetItem(out, part);
        if (where == NULL) goto bad;
        if (want[slot]++ == 0) held[slot] = PyObject_Length(where);
        PyObject* key = PyTuple_GET_ITEM(entry, 1);
        PyObject* value = held[slot] < 0 ? NULL : PyObject_GetItem(where, key);
        Py_DECREF(where);
        if (value == NULL) goto bad;
        PyTuple_SET_ITEM(got, k, value);
        int typenum = table[0], ndim = table[1];
        table += 3 + ndim;
        if (!PyArray_Check(value)) goto bad;
        PyArrayObject* a = (PyArrayObject*)value;
        if (PyArray_TYPE(a) != typenum || PyArray_NDIM(a) != ndim ||
            !PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISBEHAVED(a))
            goto bad;
        for (int d = 0; d < ndim; d++)
            if (PyArray_DIM(a, d) != dims[d]) goto bad;
        dims += ndim;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(inputs); i++)
            if (gc_overlap(a, (PyArrayObject*)PyTuple_GET_ITEM(inputs, i))) goto bad;
        for (Py_ssize_t j = 0; j < k; j++)
            if (gc_overlap(a, (PyArrayObject*)PyTuple_GET_ITEM(got, j))) goto bad;
    }
    /* each dict holds as many arrays as are filled from it: a misspelt key is not ignored */
    for (int p = 0; p < GC_MAX_PARTS; p++)
        if (held[p] != want[p]) goto bad;
    *arrays = got;
    return 0;
bad:
    Py_DECREF(got);
    if (PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError) && !PyErr_ExceptionMatches(PyExc_IndexError) &&
            !PyErr_ExceptionMatches(PyExc_TypeError))
            return -1;
        PyErr_Clear();
    }
    return 1;
}

/* Are the elements of int array `a` (int64 or int32, as its argument's check made it) all in
   [lo, hi)? One pass, no branch: a vectorised loop. */
static GC_KERNEL int gc_within(PyArrayObject* a, Py_ssize_t lo, Py_ssize_t hi) {
    Py_ssize_t n = PyArray_SIZE(a);
    int ok = 1;
    if (PyArray_TYPE(a) == NPY_INT64) {
        const long long* p = (const long long*)PyArray_DATA(a);
        for (Py_ssize_t i = 0; i < n; i++) ok &= (p[i] >= lo) & (p[i] < hi);
    } else {
        const int* p = (const int*)PyArray_DATA(a);
        for (Py_ssize_t i = 0; i < n; i++) ok &= (p[i] >= lo) & (p[i] < hi);
    }
    return ok;
}
