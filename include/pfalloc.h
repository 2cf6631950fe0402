/*
 * pfalloc.h — the public API of pfalloc, a page-family allocator.
 *
 * Every allocation belongs to a family: untyped requests (pf_malloc and
 * friends) go to one family per size class, typed requests (PF_NEW) to one
 * family per type, and blocks above the largest class to the "large" family.
 * Each family has its own pages and counters, which pf_stats_get() copies
 * into a plain struct and the pf_print_* functions write to a file
 * descriptor without stdio and without allocating.
 */
#ifndef PFALLOC_H
#define PFALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PF_API __attribute__((visibility("default")))
#define PF_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define PF_API
#define PF_MALLOC_ATTR
#endif

/* ---- untyped allocation: exactly libc's semantics ---------------------- */
PF_API void *pf_malloc(size_t size) PF_MALLOC_ATTR;
PF_API void *pf_calloc(size_t n, size_t size) PF_MALLOC_ATTR;
PF_API void *pf_realloc(void *p, size_t size);
PF_API void *pf_reallocarray(void *p, size_t n, size_t size);
PF_API void pf_free(void *p);
PF_API int pf_posix_memalign(void **out, size_t align, size_t size);
PF_API void *pf_aligned_alloc(size_t align, size_t size) PF_MALLOC_ATTR;
PF_API void *pf_memalign(size_t align, size_t size) PF_MALLOC_ATTR;
PF_API void *pf_valloc(size_t size) PF_MALLOC_ATTR;
PF_API void *pf_pvalloc(size_t size) PF_MALLOC_ATTR;
PF_API size_t pf_malloc_usable_size(const void *p);

/* Releases every free span and cached large block to the OS, and the
 * pages that free slots cover whole inside spans still in use.
 * Returns the number of bytes given back. */
PF_API size_t pf_trim(void);

/* ---- typed allocation --------------------------------------------------- */
typedef struct pf_family pf_family_t;

/* The family named `name` holding objects of `size` bytes, created on first
 * use. A name already registered with a different size, or one of pfalloc's
 * own ("malloc-<n>", "large"), gets NULL, EINVAL.
 * A name is compared whole, however long: two names that differ anywhere
 * are two families, though reports show only their first PF_NAME_MAX - 1
 * characters. Families live as long as the process. */
PF_API pf_family_t *pf_family_get(const char *name, size_t size);

/* n zeroed objects of the family's type (one contiguous array).
 * n == 0 or n * size overflowing: NULL with errno EINVAL / ENOMEM. */
PF_API void *pf_family_alloc(pf_family_t *f, size_t n) PF_MALLOC_ATTR;

/* The typed door used by PF_NEW: `key` is a string literal whose address is
 * cached, so repeated calls from one site never compare strings. The
 * objects go to the family named `key` when it holds objects of `size`
 * bytes or does not exist yet. When that name belongs to a family of
 * another size (two translation units with different `struct node`s) or
 * to pfalloc's own, they go to the family "<key>/<size>", and when that
 * name too is taken by a family of another size, to "<key>/<size>#2",
 * "#3", ...: a family only ever holds objects of its own size. */
PF_API void *pf_typed_alloc(const char *key, size_t size, size_t align, size_t n) PF_MALLOC_ATTR;

/* n zeroed objects of `type`, from the family named by the type as written. */
#define PF_NEW(type, n) ((type *)pf_typed_alloc(#type, sizeof(type), _Alignof(type), (n)))
/* Any pointer from pfalloc, typed or not, is released with pf_free. */
#define PF_DELETE(p) pf_free(p)

/* ---- statistics --------------------------------------------------------- */
#define PF_STATS_VERSION 2
#define PF_NAME_MAX 64
#define PF_STATS_FAMILIES_MAX 512

enum pf_family_kind {
    PF_KIND_CLASS = 0, /* untyped requests of one size class */
    PF_KIND_TYPED = 1, /* objects of one named type */
    PF_KIND_LARGE = 2, /* blocks above the largest class, one mapping each */
};

struct pf_family_stats {
    char name[PF_NAME_MAX];   /* "malloc-64", "struct order", "large" */
    uint32_t kind;            /* enum pf_family_kind */
    uint32_t id;              /* registration order, stable for the process */
    uint64_t slot_size;       /* class: slot bytes; typed: object bytes; large: 0 */
    uint64_t live_objects;    /* live allocations, == allocs - frees (typed: arrays) */
    uint64_t live_bytes;      /* slot (or mapping) bytes held by live allocations */
    uint64_t live_requested;  /* bytes the program asked for, of the live allocations */
    uint64_t spans;           /* spans (large: mappings) the family holds */
    uint64_t mapped_bytes;    /* bytes of those spans */
    /* Peak held: the largest bytes of slots out of the family's spans at
     * once. For a class family that is live bytes plus free slots parked
     * in thread caches (the fast path counts per thread, so no exact
     * family-wide live figure exists at each malloc); for typed and large
     * families, whose frees never go through a thread cache, it is the
     * exact peak of live_bytes. Never below live_bytes. */
    uint64_t peak_live_bytes;
    uint64_t allocs;          /* allocations ever */
    uint64_t frees;           /* frees ever */
    /* Since version 2. */
    uint64_t live_elements;   /* typed: objects of the type live (an array of n counts n,
                                 == live_requested / slot_size); others: == live_objects */
};

struct pf_totals {
    uint64_t live_objects;      /* sum over families */
    uint64_t live_bytes;        /* sum over families */
    uint64_t live_requested;    /* sum over families */
    uint64_t allocs;            /* sum over families */
    uint64_t frees;             /* sum over families */
    uint64_t mapped_bytes;      /* address space pfalloc has mapped read-write now (reserved,
                                   not memory: see resident_bytes), metadata included */
    uint64_t peak_mapped_bytes; /* largest mapped_bytes seen */
    uint64_t metadata_bytes;    /* part of mapped_bytes reserved for pfalloc's own bookkeeping */
    uint64_t cached_bytes;      /* empty spans and large blocks kept for reuse */
    uint64_t mmap_calls;        /* syscalls made so far */
    uint64_t munmap_calls;
    uint64_t madvise_calls;
    uint64_t mremap_calls;
    uint64_t families;          /* families registered */
    uint64_t threads;           /* threads holding a thread cache now */
    /* Since version 2. */
    uint64_t resident_bytes;          /* pages of mapped_bytes in memory now (mincore) */
    uint64_t metadata_resident_bytes; /* part of resident_bytes holding bookkeeping */
};

struct pf_stats {
    uint32_t version;   /* PF_STATS_VERSION of the library that filled it */
    uint32_t nfamilies; /* entries filled in fam[] (families with any activity) */
    uint32_t truncated; /* 1 when more families existed than fam[] holds */
    uint32_t reserved;
    struct pf_totals totals;
    struct pf_family_stats fam[PF_STATS_FAMILIES_MAX];
};

/* Fills *out; safe to call from a signal handler (no lock, no allocation).
 * Returns 0, or -1 with EINVAL for NULL. */
PF_API int pf_stats_get(struct pf_stats *out);

/* Printers: write to fd with write(2), no stdio, no allocation.
 * Each returns 0, or -1 with errno from write (EBADF for a negative fd),
 * or -1 with EAGAIN when another report of this process is being written
 * at that moment (a one-line notice is written instead; nothing waits).
 * None of them, nor pf_report, is a cancellation point: a thread cancelled
 * while it prints ends at its next cancellation point after the printer. */
PF_API int pf_print_families(int fd);                  /* one row per family */
PF_API int pf_print_family(int fd, const char *name);  /* one family's spans */
PF_API int pf_print_totals(int fd);                    /* process totals */

/* The full report (header, totals, families; reason "request") to where
 * PFALLOC_OUT and PFALLOC_FORMAT say (stderr, text by default).
 * Async-signal-safe. Returns 0, or -1 with errno: from write, or EAGAIN
 * when another report of this process is being written at that moment (a
 * one-line notice is written instead; nothing waits). */
PF_API int pf_report(void);

#ifdef __cplusplus
}
#endif
#endif /* PFALLOC_H */
