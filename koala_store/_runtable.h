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

typedef struct {
    const unsigned char *at; /* NULL: empty slot */
    Py_ssize_t len;
    uint64_t hash;
    Py_ssize_t count;  /* occurrences so far */
    PyObject *value;   /* the caller's object for the run (a new reference), or NULL */
    uint64_t packed;   /* the caller's compact form of value, or 0 */
} Slot;

typedef struct {
    Slot *slots;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t used;
} Table;

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

/* A table of `capacity` slots (a power of two). 0, or -1 when out of memory. */
static inline int table_init_slots(Table *t, size_t capacity) {
    t->slots = calloc(capacity, sizeof(Slot));
    t->mask = capacity - 1;
    t->used = 0;
    return t->slots == NULL ? -1 : 0;
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
    for (size_t i = 0; i <= t->mask; i++)
        Py_XDECREF(t->slots[i].value);
    free(t->slots);
    t->slots = NULL;
}

static inline int table_grow(Table *t) {
    size_t capacity = (t->mask + 1) * 2;
    Slot *slots = calloc(capacity, sizeof(Slot));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i <= t->mask; i++) {
        Slot *s = &t->slots[i];
        if (s->at == NULL)
            continue;
        size_t j = s->hash & (capacity - 1);
        while (slots[j].at != NULL)
            j = (j + 1) & (capacity - 1);
        slots[j] = *s;
    }
    free(t->slots);
    t->slots = slots;
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
    uint64_t h = hash(p, n, end);
    size_t j = h & t->mask;
    for (;;) {
        Slot *s = &t->slots[j];
        if (s->at == NULL)
            break;
        if (s->hash == h && s->len == n && same(s->at, p, n)) {
            s->count++;
            return s;
        }
        j = (j + 1) & t->mask;
    }
    /* A new run: keep the load under a half (short probe runs), then take its slot. */
    if ((t->used + 1) * 2 > t->mask + 1) {
        if (table_grow(t) < 0)
            return NULL;
        j = h & t->mask;
        while (t->slots[j].at != NULL)
            j = (j + 1) & t->mask;
    }
    Slot *s = &t->slots[j];
    *s = (Slot){p, n, h, 1, NULL, 0};
    t->used++;
    return s;
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
