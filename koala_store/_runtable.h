/* A hash table of byte runs over a text's own bytes, shared by the compiled lexers
 * (matchers/_simlex.c, matchers/_fuzzylex.c, koala_store/query/_terms.c): each distinct run
 * is found once, so a Python object is made once per distinct run instead of once per
 * occurrence. A caller may hash and compare runs its own way (_terms.c folds case).
 *
 * Slots point into the caller's data, which must outlive the table. */
#ifndef KOALA_RUNTABLE_H
#define KOALA_RUNTABLE_H

#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* table_count and table_count_with are inlined into each lexer's loop, where its hash and
 * compare are known (a call per lexeme: fuzzy-prep in bench_instructions.py 343.1M -> 340.0M). */
#if defined(__GNUC__)
#define RUNTABLE_INLINE inline __attribute__((always_inline))
#else
#define RUNTABLE_INLINE inline
#endif

/* One distinct run. */
typedef struct {
    const unsigned char *at;
    Py_ssize_t len;
    uint64_t hash;
    Py_ssize_t count;  /* occurrences so far */
    PyObject *value;   /* the caller's object for the run (a new reference), or NULL */
    uint64_t packed;   /* the caller's compact form of value, or 0 */
} Slot;

/* The runs in `slots`, in the order they first came (`used` of them), found through `index`,
 * an open-addressed array of 8-byte cells: 0 for an empty cell, else the run's hash's high 32
 * bits over its slot's number + 1. A probe reads cells, and a run's slot only when its cell's
 * bits match; a new run is appended. The index of 65,536 cells a 500 x 8 KB fuzzy session
 * grows to is 512 KB, where slots of 48 bytes in place took 3 MB: most of the lexer's stalls
 * were on that first read of a slot for a run seen for the first time (perf). */
typedef struct {
    uint64_t *index;
    Slot *slots;
    size_t mask; /* index capacity - 1, a power of two; slots has room for half of it */
    size_t used;
} Table;

#define RUNTABLE_HIGH 0xFFFFFFFF00000000ULL

/* A run's hash, eight bytes at a time (runs are ids, keys and words: most fit in one or two
 * words), mixed so that its low bits, which pick the slot, depend on every byte. The last
 * part of a run is read as one word and masked when the data holds 8 bytes from there. */
static inline uint64_t hash_run(const unsigned char *p, Py_ssize_t n, const unsigned char *end) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        h = (h ^ word) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    if (n > 0) {
        /* The same value either way: equal runs must hash alike wherever they are. */
        uint64_t word = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (end - p >= 8) {
            memcpy(&word, p, 8);
            word &= ~0ULL >> (64 - 8 * n); /* the run's n bytes: the low ones */
        } else
#endif
            for (Py_ssize_t i = 0; i < n; i++)
                word |= (uint64_t)p[i] << (8 * i);
        h = (h ^ word) * 0xC4CEB9FE1A85EC53ULL;
    }
    return h ^ (h >> 29);
}

/* A table of `capacity` index cells (a power of two, 2 or more) and room for half as many
 * runs. 0, or -1 when out of memory. */
static inline int table_init_slots(Table *t, size_t capacity) {
    t->index = calloc(capacity, sizeof(uint64_t));
    t->slots = malloc(capacity / 2 * sizeof(Slot));
    t->mask = capacity - 1;
    t->used = 0;
    if (t->index == NULL || t->slots == NULL) {
        free(t->index);
        free(t->slots);
        t->index = NULL;
        t->slots = NULL;
        return -1;
    }
    return 0;
}

/* A table sized for the distinct runs `size` bytes usually hold (about one per 25 bytes) at
 * under half load, so most requests never grow it. 0, or -1 when out of memory. */
static inline int table_init(Table *t, Py_ssize_t size) {
    size_t capacity = 256;
    while (capacity < 1u << 20 && (Py_ssize_t)capacity * 12 < size)
        capacity *= 2;
    return table_init_slots(t, capacity);
}

static inline void table_free(Table *t) {
    if (t->slots == NULL)
        return; /* never made */
    for (size_t i = 0; i < t->used; i++)
        Py_XDECREF(t->slots[i].value);
    free(t->slots);
    free(t->index);
    t->slots = NULL;
    t->index = NULL;
}

/* The cell for `hash`'s run in a fresh index: the first empty one from its home. */
static inline size_t table_empty_cell(const uint64_t *index, size_t mask, uint64_t hash) {
    size_t j = hash & mask;
    while (index[j] != 0)
        j = (j + 1) & mask;
    return j;
}

/* Twice the cells and room for twice the runs; the runs stay where they are in order. */
static inline int table_grow(Table *t) {
    size_t capacity = (t->mask + 1) * 2;
    if (capacity / 2 > UINT32_MAX - 1)
        return -1; /* a slot's number + 1 must fit a cell's low 32 bits */
    uint64_t *index = calloc(capacity, sizeof(uint64_t));
    Slot *slots = index == NULL ? NULL : realloc(t->slots, capacity / 2 * sizeof(Slot));
    if (slots == NULL) {
        free(index);
        return -1;
    }
    t->slots = slots;
    for (size_t i = 0; i < t->used; i++)
        index[table_empty_cell(index, capacity - 1, slots[i].hash)] = (slots[i].hash & RUNTABLE_HIGH) | (i + 1);
    free(t->index);
    t->index = index;
    t->mask = capacity - 1;
    return 0;
}

typedef uint64_t (*RunHash)(const unsigned char *p, Py_ssize_t n, const unsigned char *end);
typedef int (*RunSame)(const unsigned char *a, const unsigned char *b, Py_ssize_t n);

static inline int same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t n) { return memcmp(a, b, (size_t)n) == 0; }

/* The slot of the run p[0:n] (runs alike under `hash` and `same` share one), counted once
 * more; a new run gets a slot with count 1 and no value. NULL when out of memory. The
 * pointer is good until the next call. */
static RUNTABLE_INLINE Slot *table_count_with(Table *t, const unsigned char *p, Py_ssize_t n, const unsigned char *end, RunHash hash, RunSame same) {
    uint64_t h = hash(p, n, end), high = h & RUNTABLE_HIGH;
    size_t j = h & t->mask;
    for (;;) {
        uint64_t cell = t->index[j];
        if (cell == 0)
            break;
        if ((cell & RUNTABLE_HIGH) == high) {
            Slot *s = &t->slots[(cell & ~RUNTABLE_HIGH) - 1];
            if (s->hash == h && s->len == n && same(s->at, p, n)) {
                s->count++;
                return s;
            }
        }
        j = (j + 1) & t->mask;
    }
    /* A new run: keep the load under a half (short probe runs), then append its slot. */
    if ((t->used + 1) * 2 > t->mask + 1) {
        if (table_grow(t) < 0)
            return NULL;
        j = table_empty_cell(t->index, t->mask, h);
    }
    Slot *s = &t->slots[t->used];
    *s = (Slot){p, n, h, 1, NULL, 0};
    t->index[j] = high | (t->used + 1);
    t->used++;
    return s;
}

/* Forget the run table_count_with added last, which its caller could not keep: its cell was
 * empty when every other run was placed, so no probe needs it. */
static inline void table_drop_last(Table *t) {
    size_t j = t->slots[t->used - 1].hash & t->mask;
    while ((t->index[j] & ~RUNTABLE_HIGH) != t->used)
        j = (j + 1) & t->mask;
    t->index[j] = 0;
    t->used--;
}

/* Whether runs of n bytes with equal hash_run values are the same bytes. Up to 8 bytes they
 * must be: hash_run reads them as one word and only xors in constants, multiplies by odd
 * ones and xors in its own shifted bits, each a one-to-one map of 64-bit words, so equal
 * hashes of equal lengths come from equal words. Most runs are that short: no memcmp. */
static inline int same_run_hashed(const unsigned char *a, const unsigned char *b, Py_ssize_t n) { return n <= 8 || memcmp(a, b, (size_t)n) == 0; }

/* table_count_with, runs alike when their bytes are. */
static RUNTABLE_INLINE Slot *table_count(Table *t, const unsigned char *p, Py_ssize_t n, const unsigned char *end) {
    return table_count_with(t, p, n, end, hash_run, same_run_hashed);
}

#endif
