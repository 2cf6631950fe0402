/*
 * cxx_new_handler — operator new when memory cannot be had: each form of
 * the operator (plain, array, aligned, aligned array, and their nothrow
 * forms) asked for SIZE_MAX - 10 bytes, with a new-handler installed that
 * returns three times and then removes itself, with one that throws
 * std::bad_alloc at once (as the standard lets it), and with none. Every
 * throwing form must end in std::bad_alloc (nothrow: NULL) after exactly the
 * handler calls, never with a block: a retry after the handler must be the same
 * request as the first try, overflow check included. Then the aligned forms
 * asked for 10 bytes with an alignment that is not a power of two (0, 3,
 * 24, 100), with a handler installed: as libstdc++'s own operators, they
 * throw std::bad_alloc (nothrow: NULL) without calling the handler. Prints
 * one line per case and "failures: N"; exits 1 if any case went wrong.
 */
#include <cstdint>
#include <cstdio>
#include <new>
#include <string_view>

static int calls;
static unsigned long failures;

static void handler()
{
    if (++calls >= 3)
        std::set_new_handler(nullptr);
}

static void throwing_handler()
{
    ++calls;
    throw std::bad_alloc();
}

enum handling { NONE, RETURNS, THROWS };
static const char *const handling_name[] = {"no", "with", "with throwing"};

/* Keeps the compiler from folding the size into the expression. */
static size_t hide(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

enum form { PLAIN, ARRAY, ALIGNED, ALIGNED_ARRAY, NOTHROW, ALIGNED_NOTHROW };
static const char *const form_name[] = {"new",          "new[]",           "aligned new",
                                        "aligned new[]", "nothrow new",     "aligned nothrow new"};

static void *attempt(form f, size_t n, size_t align)
{
    std::align_val_t a = std::align_val_t(align);
    switch (f) {
    case PLAIN:
        return ::operator new(n);
    case ARRAY:
        return new char[n];
    case ALIGNED:
        return ::operator new(n, a);
    case ALIGNED_ARRAY:
        return new (a) char[n];
    case NOTHROW:
        return ::operator new(n, std::nothrow);
    case ALIGNED_NOTHROW:
        return ::operator new(n, a, std::nothrow);
    }
    return nullptr;
}

static void one(form f, size_t align, handling with)
{
    calls = 0;
    std::set_new_handler(with == RETURNS ? handler : with == THROWS ? throwing_handler : nullptr);
    const char *how = "?";
    try {
        void *p = attempt(f, hide(SIZE_MAX - 10), align);
        how = p ? "a block" : "NULL";
    } catch (const std::bad_alloc &) {
        how = "bad_alloc";
    }
    std::set_new_handler(nullptr);
    bool nothrow = f == NOTHROW || f == ALIGNED_NOTHROW;
    bool ok = std::string_view(how) == (nothrow ? "NULL" : "bad_alloc") &&
              calls == (with == RETURNS ? 3 : with == THROWS ? 1 : 0);
    failures += !ok;
    std::printf("%s (align %zu), %s handler: %s after %d handler calls: %s\n", form_name[f], align,
                handling_name[with], how, calls, ok ? "ok" : "WRONG");
}

/* Aligned form f of 10 bytes at alignment `align`, not a power of two. */
static void bad_alignment(form f, size_t align)
{
    calls = 0;
    std::set_new_handler(handler);
    const char *how = "?";
    try {
        void *p = attempt(f, hide(10), align);
        how = p ? "a block" : "NULL";
    } catch (const std::bad_alloc &) {
        how = "bad_alloc";
    }
    std::set_new_handler(nullptr);
    bool ok = std::string_view(how) == (f == ALIGNED_NOTHROW ? "NULL" : "bad_alloc") && calls == 0;
    failures += !ok;
    std::printf("%s of 10 bytes (bad align %zu): %s after %d handler calls: %s\n", form_name[f], align, how,
                calls, ok ? "ok" : "WRONG");
}

int main()
{
    for (int f = PLAIN; f <= ALIGNED_NOTHROW; f++)
        for (size_t align : {(size_t)16, (size_t)64, (size_t)4096, (size_t)1 << 17}) {
            if ((f == PLAIN || f == ARRAY || f == NOTHROW) && align != 16)
                continue;
            one(form(f), align, RETURNS);
            one(form(f), align, THROWS);
            one(form(f), align, NONE);
        }
    for (int f : {ALIGNED, ALIGNED_ARRAY, ALIGNED_NOTHROW})
        for (size_t align : {(size_t)0, (size_t)3, (size_t)24, (size_t)100})
            bad_alignment(form(f), align);
    std::printf("failures: %lu\n", failures);
    return failures ? 1 : 0;
}
