/* The distinct full-text terms of a text, for the SQLite store's term vocabulary: the hot part
 * of koala_store/query/text.py `add_terms`, which keeps the same code in Python as the
 * reference (and the fallback where this does not build).
 *
 * ascii_terms(texts, into) -> [wide run, ...]
 *
 * Each text (a str) is read as UTF-8. Runs are split at ASCII bytes that are not letters or digits.
 * A run of ASCII letters and digits is a term: it is added to the set `into`, lowercased.
 * A run holding any other byte (a non-ASCII character) is returned, decoded: the SQLite store
 * has FTS5 itself split it, since FTS5's Unicode tables are not Python's. ASCII bytes are
 * always whole characters in UTF-8, so each run is a
 * whole piece of the text.
 *
 * Why: the Python version (translate, lower, split, then a set of every word) costs ~40 us
 * for a session of ~2 KB; here every run of a batch of texts goes into one hash table over the
 * texts' own bytes, and a str is made once per distinct term of the batch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../_runtable.h"

static unsigned char alnum[256];

/* Letters and digits OR 0x20 are their lowercase: runs hash and compare case-folded. */
static uint64_t hash_folded(const unsigned char *p, Py_ssize_t n, const unsigned char *end) {
    (void)end; /* read within the run only */
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        h = (h ^ (word | 0x2020202020202020ULL)) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    uint64_t word = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        word |= (uint64_t)(p[i] | 0x20) << (8 * i);
    h = (h ^ word) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

static int same_folded(const unsigned char *a, const unsigned char *b, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if ((a[i] | 0x20) != (b[i] | 0x20))
            return 0;
    return 1;
}

static int add_term(PyObject *into, const unsigned char *at, Py_ssize_t len) {
    PyObject *term = PyUnicode_New(len, 127);
    if (term == NULL)
        return -1;
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(term);
    for (Py_ssize_t i = 0; i < len; i++)
        out[i] = (Py_UCS1)(at[i] | 0x20);
    int failed = PySet_Add(into, term);
    Py_DECREF(term);
    return failed;
}

/* The runs of one text: ASCII ones into the table, the others appended to `wide`. */
static int scan(PyObject *text, Table *table, PyObject *wide) {
    Py_ssize_t size;
    const unsigned char *data;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "ascii_terms() takes texts as str");
        return -1;
    }
    if (PyUnicode_IS_ASCII(text)) {
        data = PyUnicode_1BYTE_DATA(text);
        size = PyUnicode_GET_LENGTH(text);
    } else if ((data = (const unsigned char *)PyUnicode_AsUTF8AndSize(text, &size)) == NULL) {
        return -1; /* the UTF-8 stays cached in the str, alive as long as the caller's list */
    }
    Py_ssize_t i = 0;
    while (i < size) {
        if (data[i] < 0x80 && !alnum[data[i]]) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        int ascii = 1;
        for (; i < size && (data[i] >= 0x80 || alnum[data[i]]); i++)
            ascii &= data[i] < 0x80;
        if (ascii) {
            if (table_count_with(table, data + start, i - start, data + size, hash_folded, same_folded) == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            continue;
        }
        PyObject *run = PyUnicode_DecodeUTF8((const char *)data + start, i - start, "strict");
        int appended = run != NULL ? PyList_Append(wide, run) : -1;
        Py_XDECREF(run);
        if (appended < 0)
            return -1;
    }
    return 0;
}

static PyObject *ascii_terms(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyList_Check(args[0]) || !PySet_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "ascii_terms() takes a list of str and a set");
        return NULL;
    }
    PyObject *texts = args[0], *into = args[1];
    PyObject *wide = PyList_New(0);
    if (wide == NULL)
        return NULL;
    /* One table for every text: a term is made into a str once per call, however often the
     * texts repeat it. The list keeps every text (and so every run) alive. */
    Py_INCREF(texts);
    Table table;
    if (table_init_slots(&table, 4096) < 0) {
        PyErr_NoMemory();
        goto failed;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(texts); k++)
        if (scan(PyList_GET_ITEM(texts, k), &table, wide) < 0)
            goto failed;
    for (size_t j = 0; j < table.used; j++)
        if (add_term(into, table.slots[j].at, table.slots[j].len) < 0)
            goto failed;
    table_free(&table);
    Py_DECREF(texts);
    return wide;

failed:
    table_free(&table);
    Py_DECREF(texts);
    Py_DECREF(wide);
    return NULL;
}

static PyMethodDef methods[] = {
    {"ascii_terms", (PyCFunction)(void (*)(void))ascii_terms, METH_FASTCALL,
     "ascii_terms(texts, into) -> [wide run, ...]: add the texts' ASCII terms to `into`, lowercased; "
     "return their runs with other characters (see koala_store.query.text.add_terms)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_terms",
    .m_doc = "Compiled term listing for the SQLite store's term vocabulary (query/text.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__terms(void) {
    for (int c = 0; c < 256; c++)
        alnum[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    return PyModule_Create(&module);
}
