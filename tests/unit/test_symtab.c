/*
 * test_symtab.c — names for code addresses: a static function of this test
 * program (nothing exported) by name and offset, a C library function, the
 * executable's path, an address no module holds; and the ELF reader given
 * corrupt copies of this program (every truncation length near the
 * headers, random bytes written over headers and tables), which must give
 * no name or a name inside the copy, never a fault; and the sizes of the C
 * library's functions from its dynamic symbols, against the loader's, and
 * the start of each of them as named from the library's sorted table.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "symtab.h"

__attribute__((noinline)) static int local_function(int x)
{
    /* Enough code that an offset inside it is not its start. */
    volatile int y = x;
    for (int i = 0; i < 3; i++)
        y += i * x;
    return y;
}

static char *read_self(size_t *len)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    cr_assert(n > 0);
    path[n] = 0;
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size);
    cr_assert(buf && fread(buf, 1, (size_t)size, f) == (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return buf;
}

Test(symtab, static_function_of_the_program)
{
    cr_assert(local_function(2) > 0);
    struct pf_sym s;
    uintptr_t a = (uintptr_t)&local_function + 5;
    cr_assert(pf_sym_name(a, &s) == 1);
    cr_assert(s.name && strcmp(s.name, "local_function") == 0, "%s", s.name ? s.name : "(none)");
    cr_assert(s.symoff == 5);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n] = 0;
    cr_assert(strcmp(s.path, self) == 0, "%s vs %s", s.path, self);
    cr_assert(strcmp(s.module, strrchr(self, '/') + 1) == 0);
    /* Asked again: the cached table gives the same answer. */
    struct pf_sym t;
    cr_assert(pf_sym_name(a, &t) == 1 && t.name == s.name && t.modoff == s.modoff);
}

Test(symtab, library_function)
{
    struct pf_sym s;
    cr_assert(pf_sym_name((uintptr_t)&getppid + 1, &s) == 1);
    cr_assert(strstr(s.module, "libc") == s.module, "%s", s.module);
    cr_assert(s.path[0] == '/', "%s", s.path);
    cr_assert(s.name && strstr(s.name, "getppid"), "%s", s.name ? s.name : "(none)");
}

Test(symtab, address_outside_every_module)
{
    struct pf_sym s;
    cr_assert(pf_sym_name(16, &s) == 0);
    cr_assert(s.name == NULL && strcmp(s.module, "?") == 0);
    cr_assert(pf_sym_name(0, &s) == 0);
}

Test(symtab, reads_the_file_it_is_given)
{
    size_t len;
    char *img = read_self(&len);
    struct pf_sym s;
    cr_assert(pf_sym_name((uintptr_t)&local_function + 3, &s) == 1);
    uintptr_t off;
    const char *name = pf_sym_in_file(img, len, s.modoff, &off);
    cr_assert(name && strcmp(name, "local_function") == 0 && off == 3);
    free(img);
}

/* The name, when there is one, lies inside the image and ends there. */
static void check_inside(const char *name, const char *img, size_t len)
{
    if (!name)
        return;
    cr_assert(name >= img && name < img + len);
    cr_assert(memchr(name, 0, (size_t)(img + len - name)) != NULL);
}

Test(symtab, truncated_copies_never_fault)
{
    size_t len;
    char *img = read_self(&len);
    struct pf_sym s;
    pf_sym_name((uintptr_t)&local_function, &s);
    uintptr_t off;
    /* Every length up to 4 KiB, then lengths across the whole file. */
    for (size_t n = 0; n < len; n += n < 4096 ? 1 : 997) {
        char *cut = malloc(n ? n : 1);
        memcpy(cut, img, n);
        check_inside(pf_sym_in_file(cut, n, s.modoff, &off), cut, n);
        free(cut);
    }
    free(img);
}

Test(symtab, scribbled_copies_never_fault)
{
    size_t len;
    char *img = read_self(&len);
    char *copy = malloc(len);
    struct pf_sym s;
    pf_sym_name((uintptr_t)&local_function, &s);
    uint64_t shoff;
    memcpy(&shoff, img + 0x28, 8); /* e_shoff of an ELF64 header */
    srand(1234);
    uintptr_t off;
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, img, len);
        for (int k = 0; k < 8; k++) {
            /* Half the damage in the ELF header, half in the section headers. */
            size_t at = (round + k) % 2 ? (size_t)rand() % 64 : (size_t)(shoff + (uint64_t)rand() % (len - shoff));
            if (at < len)
                copy[at] = (char)rand();
        }
        check_inside(pf_sym_in_file(copy, len, s.modoff, &off), copy, len);
    }
    free(copy);
    free(img);
}

/* Functions of the C library, some with two versions of one name. */
static const char *const libc_functions[] = {
    "strdup", "strndup", "getline", "getdelim", "fopen", "fdopen", "opendir", "scandir", "regcomp",
    "regexec", "glob", "wordexp", "iconv_open", "getifaddrs", "setenv", "putenv", "strerror",
    "tsearch", "fclose", "fflush", "newlocale", "mbrtowc", "wcstombs", "qsort", "printf", "getaddrinfo",
};

/* A function's size from its module's dynamic symbols is the loader's, for
 * the version at the address asked about; another name, or a name at
 * another address, has none. */
Test(symtab, dynamic_sizes_are_the_loaders)
{
    int checked = 0;
    for (size_t i = 0; i < sizeof(libc_functions) / sizeof(libc_functions[0]); i++) {
        void *fn = dlsym(RTLD_DEFAULT, libc_functions[i]);
        cr_assert(fn != NULL, "%s", libc_functions[i]);
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        cr_assert(dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) && sym);
        if (info.dli_saddr != fn)
            continue; /* an IFUNC's resolved code: no symbol of that name there */
        cr_expect_eq(pf_sym_dynamic_size(fn, libc_functions[i]), sym->st_size, "%s", libc_functions[i]);
        checked++;
    }
    cr_assert(checked >= 20, "only %d functions checked", checked);
    /* realpath has a version of 2.2.5 and the default one of 2.3, at two
     * addresses. */
    void *old = dlvsym(RTLD_DEFAULT, "realpath", "GLIBC_2.2.5");
    void *now = dlsym(RTLD_DEFAULT, "realpath");
    cr_assert(old && now && old != now);
    for (int v = 0; v < 2; v++) {
        void *fn = v ? now : old;
        Dl_info info;
        const ElfW(Sym) *sym = NULL;
        cr_assert(dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && info.dli_saddr == fn);
        cr_expect_eq(pf_sym_dynamic_size(fn, "realpath"), sym->st_size, "version %d", v);
    }
    cr_expect_eq(pf_sym_dynamic_size(dlsym(RTLD_DEFAULT, "strdup"), "strndup"), 0);
    cr_expect_eq(pf_sym_dynamic_size((char *)dlsym(RTLD_DEFAULT, "strndup") + 1, "strndup"), 0);
    cr_expect_eq(pf_sym_dynamic_size((void *)16, "strdup"), 0);
}

/* Every function of the C library that the loader can name inside is named
 * with the same start: the table built from the library's thousands of
 * symbols is in order. */
Test(symtab, the_c_librarys_functions_start_where_the_loader_says)
{
    void *any = dlsym(RTLD_DEFAULT, "qsort");
    struct dl_find_object fo;
    cr_assert(any && _dl_find_object(any, &fo) == 0);
    const struct link_map *m = fo.dlfo_link_map;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *ht = NULL;
    for (const ElfW(Dyn) *d = m->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_SYMTAB)
            symtab = (const ElfW(Sym) *)d->d_un.d_ptr;
        else if (d->d_tag == DT_STRTAB)
            strtab = (const char *)d->d_un.d_ptr;
        else if (d->d_tag == DT_GNU_HASH)
            ht = (const uint32_t *)d->d_un.d_ptr;
    }
    cr_assert(symtab && strtab && ht);
    /* The dynamic symbols end where the GNU hash table's last chain does. */
    uint32_t nbuckets = ht[0], first = ht[1], bloom = ht[2], last = 0;
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(ht + 4) + bloom);
    for (uint32_t b = 0; b < nbuckets; b++)
        if (buckets[b] > last)
            last = buckets[b];
    const uint32_t *chain = buckets + nbuckets;
    while (last >= first && !(chain[last - first] & 1))
        last++;
    int checked = 0;
    for (uint32_t i = first; i <= last; i++) {
        const ElfW(Sym) *s = &symtab[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_size < 2)
            continue;
        uintptr_t start = m->l_addr + s->st_value, inside = start + s->st_size / 2;
        struct pf_sym got;
        cr_assert(pf_sym_name(inside, &got) == 1, "%s", strtab + s->st_name);
        cr_assert(got.name != NULL, "%s", strtab + s->st_name);
        cr_expect_eq(inside - got.symoff, start, "%s named %s+%#lx", strtab + s->st_name, got.name,
                     (unsigned long)got.symoff);
        checked++;
    }
    cr_assert(checked > 1000, "only %d functions", checked);
}
