/*
 * module.c — records of the loaded objects that code addresses belong to.
 * An object is found with the loader's lock-free _dl_find_object; its record
 * (range, loader handle, path) is appended to a table in pfalloc's own
 * memory and never changed or removed, so a record outlives the object.
 * Appending claims an index with one atomic add and publishes the record
 * with a release store of its `ready` flag; readers skip records not ready
 * (at worst an object gets two equal records). Never allocates.
 */
#include "module.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_MODULES 1024

struct slot {
    struct pf_module m;
    _Atomic int ready;
    _Atomic int gone; /* seen unloaded by pf_module_any_gone */
};

static struct slot *table; /* MAX_MODULES entries */
static _Atomic uint32_t count;
_Atomic unsigned pf_module_generation;

void pf_module_unloaded(void)
{
    atomic_fetch_add_explicit(&pf_module_generation, 1, memory_order_release);
}

int pf_module_init(void)
{
    if (!table)
        table = pf_os_map_meta(sizeof(*table) * MAX_MODULES);
    return table ? 0 : -1;
}

const char *pf_module_basename(const char *path)
{
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

/* The object holding addr now: range and handle; 0 when none. */
static int find(uintptr_t addr, uintptr_t *start, uintptr_t *end, struct link_map **map)
{
    struct dl_find_object fo;
    if (_dl_find_object((void *)addr, &fo) != 0)
        return 0;
    *start = (uintptr_t)fo.dlfo_map_start;
    *end = (uintptr_t)fo.dlfo_map_end;
    *map = fo.dlfo_link_map;
    return 1;
}

static const char *path_of(const struct link_map *map)
{
    if (map && map->l_name && map->l_name[0])
        return map->l_name;
    return program_invocation_name ? program_invocation_name : "";
}

size_t pf_module_abs_path(const char *path, char *out, size_t cap)
{
    size_t len = strlen(path), at = 0;
    if (path[0] != '/' && strchr(path, '/')) {
        /* The loader keeps the path it was given: relative to the working
         * directory then, taken to be the working directory now. */
        long n = syscall(SYS_getcwd, out, cap);
        if (n > 1) {
            at = strlen(out);
            if (at == 1)
                at = 0; /* the root: its slash is the one added below */
            while (path[0] == '.' && path[1] == '/') {
                path += 2;
                len -= 2;
            }
            if (at + 1 + len < cap)
                out[at++] = '/';
            else
                at = 0;
        }
    }
    if (at + len > cap - 1)
        len = cap - 1 - at;
    memmove(out + at, path, len);
    out[at + len] = 0;
    return at + len;
}

/* FNV-1a of a name: records are compared by the name the loader has,
 * not by the absolute path made of it, which depends on the working
 * directory of the moment (a program started by a relative path that then
 * changes directory is the same program). */
uint64_t pf_module_name_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int same(const struct pf_module *m, uintptr_t start, uintptr_t end, const struct link_map *map)
{
    return m->start == start && m->end == end && m->map == map && m->name_hash == pf_module_name_hash(path_of(map));
}

uint32_t pf_module_of(uintptr_t addr)
{
    uintptr_t start, end;
    struct link_map *map;
    if (!table || !find(addr, &start, &end, &map))
        return 0;
    uint32_t n = atomic_load_explicit(&count, memory_order_acquire);
    if (n > MAX_MODULES)
        n = MAX_MODULES;
    for (uint32_t i = n; i-- > 0;)
        if (atomic_load_explicit(&table[i].ready, memory_order_acquire) && same(&table[i].m, start, end, map)) {
            /* The same object again (same file, place and handle): its
             * next unload is another one. */
            if (PF_UNLIKELY(atomic_load_explicit(&table[i].gone, memory_order_relaxed)))
                atomic_store_explicit(&table[i].gone, 0, memory_order_relaxed);
            return i + 1;
        }
    uint32_t i = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    if (i >= MAX_MODULES)
        return 0;
    struct pf_module *m = &table[i].m;
    m->start = start;
    m->end = end;
    m->map = map;
    m->name_hash = pf_module_name_hash(path_of(map));
    pf_module_abs_path(path_of(map), m->path, sizeof(m->path));
    atomic_store_explicit(&table[i].ready, 1, memory_order_release);
    return i + 1;
}

int pf_module_any_gone(void)
{
    if (!table)
        return 1;
    uint32_t n = atomic_load_explicit(&count, memory_order_acquire);
    if (n >= MAX_MODULES)
        return 1; /* objects found since have no record */
    int gone = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct slot *s = &table[i];
        if (!atomic_load_explicit(&s->ready, memory_order_acquire) ||
            atomic_load_explicit(&s->gone, memory_order_relaxed))
            continue;
        uintptr_t start, end;
        struct link_map *map;
        if (!find(s->m.start, &start, &end, &map) || !same(&s->m, start, end, map)) {
            atomic_store_explicit(&s->gone, 1, memory_order_relaxed);
            gone = 1;
        }
    }
    return gone;
}

const struct pf_module *pf_module_get(uint32_t id)
{
    if (!table || !id || id > MAX_MODULES || !atomic_load_explicit(&table[id - 1].ready, memory_order_acquire))
        return NULL;
    return &table[id - 1].m;
}

int pf_module_loaded(uint32_t id, uintptr_t addr)
{
    const struct pf_module *m = pf_module_get(id);
    uintptr_t start, end;
    struct link_map *map;
    return m && find(addr, &start, &end, &map) && same(m, start, end, map);
}
