/*
 * symtab.h — names for code addresses, from the modules' own symbol tables.
 * For an address: the module (executable or shared library) holding it, the
 * address in the module's file, and the function around it, static ones
 * included (.symtab, or the separate debug file under /usr/lib/debug, or
 * .dynsym). Async-signal-safe: reads files with open/mmap/close, keeps its
 * tables in pfalloc's own mappings, takes no lock (a lookup that finds a
 * table being built by someone else answers without a name).
 */
#ifndef PF_SYMTAB_H
#define PF_SYMTAB_H

#include <stddef.h>
#include <stdint.h>

#include "os.h"

struct pf_sym {
    const char *path;   /* the module's file, "?" when no module holds the address */
    const char *module; /* the base name of path */
    uintptr_t modoff;   /* address - the module's load bias: the address in the file (addr2line's) */
    const char *name;   /* the function as the linker sees it (mangled), or NULL */
    uintptr_t symoff;   /* address - the function's start (valid with name) */
};

/* Fills *out for `addr`; 1 when a module holds it, else 0 (out still valid). */
PF_HIDDEN int pf_sym_name(uintptr_t addr, struct pf_sym *out);
/* The same for the return address of a call: named by the byte before it,
 * which is in the caller's function even when the call is its last
 * instruction (a call to a function that does not return, with another
 * function right after), with the offsets of the return address itself. */
PF_HIDDEN int pf_sym_name_return(uintptr_t ret, struct pf_sym *out);

/* Whether a C++ runtime's shared library (libstdc++, libc++, libc++abi)
 * is loaded. Not async-signal-safe (dl_iterate_phdr). */
PF_HIDDEN int pf_sym_cxx_shared(void);

/* Calls fn(name, lo, hi, ctx) for each function symbol (with a size) of
 * the module that holds `addr`, [lo, hi) in run-time addresses, until fn
 * returns nonzero; builds the module's table if need be. 0 when no module
 * holds addr, or its table is being built by someone else. */
PF_HIDDEN int pf_sym_each(uintptr_t addr, int (*fn)(const char *name, uintptr_t lo, uintptr_t hi, void *ctx),
                          void *ctx);

/* The size of the function `name` that a loaded module defines at `fn`,
 * from that module's dynamic symbol table in memory (a hash lookup, not
 * the loader's dladdr, which reads every symbol of the module); 0 when no
 * module holds fn, or its dynamic table has no such symbol there. */
PF_HIDDEN size_t pf_sym_dynamic_size(const void *fn, const char *name);

/* The address of the symbol `name` that the loaded module holding `in`
 * defines, from its dynamic symbol table in memory (the same lookup, no
 * lock, signal-safe); NULL when no module holds `in` or it defines no such
 * symbol. */
PF_HIDDEN const void *pf_sym_dynamic_addr(const void *in, const char *name);

/* The same lookup against one ELF file mapped in memory at `file`
 * (`size` bytes), for a file address: the function name or NULL. For tests
 * of corrupt files; every read is bounds-checked. */
PF_HIDDEN const char *pf_sym_in_file(const void *file, size_t size, uintptr_t fileaddr, uintptr_t *symoff);

/* C++ names: `name` demangled into buf (at most cap bytes, a longer one cut
 * and ended with "...") when demangling is allowed and the name is a
 * mangled one, else `name` itself. */
PF_HIDDEN const char *pf_sym_demangle(const char *name, char *buf, size_t cap);
/* Allows demangling (on) or forbids it (off). It calls the C++ runtime's
 * __cxa_demangle, which allocates: allowed only outside signal handlers,
 * around the writing of the exit report. */
PF_HIDDEN void pf_sym_allow_demangle(int on);

#endif
