/* A model's function as Python sees it (forward, value_and_grad, ...): an object called by
   the vectorcall protocol, so that its arguments arrive as an array, with the names of those
   given by name. A `def f(*args, out=None, **kwargs)` had a tuple and a dict built for every
   call, then the dict read back by name: about a tenth of a small model's call. */
#include <structmember.h>

/* The runtime's binding and call (call.pyx.j2 _vcall): the function's tables, the arguments. */
typedef PyObject* (*gc_vcall_fn)(void* fn, PyObject* const* args, Py_ssize_t nargs,
                                 PyObject* kwnames);
static gc_vcall_fn gc_vcall = NULL;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    void* fn;           /* its gc_function */
    PyObject* capsule;  /* which holds fn (graphc.function) */
    PyObject* name;
    PyObject* doc;
} gc_callable;

static PyObject* gc_callable_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf,
                                        PyObject* kwnames) {
    return gc_vcall(((gc_callable*)self)->fn, args, PyVectorcall_NARGS(nargsf), kwnames);
}

static void gc_callable_dealloc(PyObject* self) {
    gc_callable* c = (gc_callable*)self;
    Py_XDECREF(c->capsule);
    Py_XDECREF(c->name);
    Py_XDECREF(c->doc);
    PyObject_Free(self);
}

static PyObject* gc_callable_repr(PyObject* self) {
    return PyUnicode_FromFormat("<graphc function %S>", ((gc_callable*)self)->name);
}

static PyMemberDef gc_callable_members[] = {
    {"__name__", T_OBJECT, offsetof(gc_callable, name), READONLY, NULL},
    {"__doc__", T_OBJECT, offsetof(gc_callable, doc), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject gc_callable_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "graphc.function",
    .tp_basicsize = sizeof(gc_callable),
    .tp_dealloc = gc_callable_dealloc,
    .tp_vectorcall_offset = offsetof(gc_callable, vectorcall),
    .tp_repr = gc_callable_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_members = gc_callable_members,
};

/* A new function object for the gc_function `fn` that `capsule` holds. */
static PyObject* gc_callable_new(PyObject* capsule, void* fn, PyObject* name, PyObject* doc) {
    if (PyType_Ready(&gc_callable_type) < 0) return NULL;
    gc_callable* c = PyObject_New(gc_callable, &gc_callable_type);
    if (c == NULL) return NULL;
    c->vectorcall = gc_callable_vectorcall;
    c->fn = fn;
    Py_INCREF(capsule);
    Py_INCREF(name);
    Py_INCREF(doc);
    c->capsule = capsule;
    c->name = name;
    c->doc = doc;
    return (PyObject*)c;
}

/* The arguments of a vectorcall (nargs by position, then one for each name of kwnames) in the
   order of `names`, the missing ones from `defaults` (as gc_by_name): a new tuple, or NULL (no
   error) when binding them is Python's to do (a name twice or unknown, one missing, no
   memory). The argument named "out" is not one of them: *out (borrowed) is set to it. */
static PyObject* gc_bind_vector(PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                                PyObject* names, PyObject* defaults, PyObject* out_name,
                                PyObject** out) {
    Py_ssize_t n = PyTuple_GET_SIZE(names), nk = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > n) return NULL;
    PyObject* given = PyTuple_New(n);
    if (given == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(given, i, args[i]);
    }
    for (Py_ssize_t j = 0; j < nk; j++) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, j);
        Py_ssize_t i = nargs;
        if (key != out_name) /* names and keywords are interned strings: the same objects */
            while (i < n && PyTuple_GET_ITEM(names, i) != key) i++;
        if (key == out_name || i == n) {
            if (PyUnicode_Compare(key, out_name) == 0) {
                *out = args[nargs + j];
                continue;
            }
            for (i = nargs; i < n; i++)
                if (PyUnicode_Compare(PyTuple_GET_ITEM(names, i), key) == 0) break;
            if (PyErr_Occurred()) PyErr_Clear();
        }
        if (i == n || PyTuple_GET_ITEM(given, i) != NULL) {
            Py_DECREF(given);
            return NULL;
        }
        Py_INCREF(args[nargs + j]);
        PyTuple_SET_ITEM(given, i, args[nargs + j]);
    }
    for (Py_ssize_t i = nargs; i < n; i++) {
        if (PyTuple_GET_ITEM(given, i) != NULL) continue;
        PyObject* v = PyTuple_GET_SIZE(defaults) ? PyTuple_GET_ITEM(defaults, i) : Py_None;
        if (v == Py_None) {
            Py_DECREF(given);
            return NULL;
        }
        Py_INCREF(v);
        PyTuple_SET_ITEM(given, i, v);
    }
    return given;
}
