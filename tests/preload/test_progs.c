/*
 * The project's own stress programs (tests/progs) under the preload: each
 * runs plainly and preloaded and must exit 0 both ways with the same stdout,
 * the preloaded run showing the library live. The detection program must
 * say "no" plainly and "yes" preloaded, which also proves the harness.
 */
#include "spawn.h"

#include <sched.h>

TestSuite(progs);

static void compare_prog(const char *name, const char *const *args)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", PF_PROGS_DIR, name);
    const char *argv[16] = {path};
    size_t n = 1;
    for (; args && args[n - 1]; n++) {
        cr_assert(n < 15);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    cr_assert(access(path, X_OK) == 0, "%s has not been built", path);
    struct pf_run plain, pre;
    pf_compare_runs(argv, NULL, NULL, NULL, NULL, &plain, &pre);
    cr_assert(plain.out_len > 0, "%s printed nothing", name);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(progs, detection_says_no_plainly_and_yes_preloaded)
{
    const char *const argv[] = {PF_PROGS_DIR "/preloaded", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN};
    struct pf_spawn_opts pre_opts = {.mode = PF_PRELOAD};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "preloaded, plain run");
    pf_assert_ok(&pre, "preloaded, preloaded run");
    cr_assert(strstr(plain.out, "preloaded: no\n") != NULL, "%s", plain.out);
    cr_assert(strstr(pre.out, "pf_malloc: found\n") != NULL, "%s", pre.out);
    cr_assert(strstr(pre.out, "malloc comes from: libpfalloc\n") != NULL, "%s", pre.out);
    cr_assert(strstr(pre.out, "preloaded: yes\n") != NULL, "%s", pre.out);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

Test(progs, runner_environment_does_not_leak_preload)
{
    /* Even with LD_PRELOAD and PFALLOC_* set in the runner, a plain run is plain. */
    setenv("LD_PRELOAD", PF_PRELOAD_LIB, 1);
    setenv("PFALLOC_REPORT", "exit", 1);
    const char *const argv[] = {PF_PROGS_DIR "/preloaded", NULL};
    struct pf_spawn_opts o = {.mode = PF_PLAIN};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    unsetenv("LD_PRELOAD");
    unsetenv("PFALLOC_REPORT");
    pf_assert_ok(&r, "preloaded");
    cr_assert(strstr(r.out, "preloaded: no\n") != NULL, "%s", r.out);
    cr_assert(strstr(r.err, PF_REPORT_MARK) == NULL, "%s", r.err);
    pf_run_free(&r);
}

Test(progs, threads)
{
    compare_prog("threads", NULL);
}

Test(progs, threads_many)
{
    static const char *const args[] = {"32", "8000", NULL};
    compare_prog("threads", args);
}

Test(progs, fork_while_allocating)
{
    compare_prog("fork", NULL);
}

Test(progs, aligned)
{
    compare_prog("aligned", NULL);
}

Test(progs, realloc_growth)
{
    compare_prog("realloc", NULL);
}

Test(progs, introspection)
{
    compare_prog("introspect", NULL);
}

Test(progs, errno_discipline)
{
    compare_prog("errno_discipline", NULL);
}

Test(progs, lifecycle)
{
    compare_prog("lifecycle", NULL);
}

Test(progs, libc_users)
{
    compare_prog("libc_users", NULL);
}

Test(progs, cxx_threads)
{
    compare_prog("cxx_threads", NULL);
}

Test(progs, cxx_operators_come_from_pfalloc)
{
    const char *const argv[] = {PF_PROGS_DIR "/cxx_threads", "1", "1", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN};
    struct pf_spawn_opts pre_opts = {.mode = PF_PRELOAD};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "cxx_threads, plain run");
    pf_assert_ok(&pre, "cxx_threads, preloaded run");
    cr_assert(strstr(plain.err, "operators from libpfalloc: none\n") != NULL, "%s", plain.err);
    cr_assert(strstr(pre.err, "operators from libpfalloc: all\n") != NULL, "%s", pre.err);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* operator new of a size no process can have ends in std::bad_alloc (NULL
 * for nothrow) after the new-handler's calls, in every form, aligned ones
 * included: the retry after the handler is the same request as the first
 * try. An alignment that is not a power of two ends in std::bad_alloc at
 * once. Preloaded only: libstdc++'s own aligned new rounds the size up
 * without an overflow check. */
Test(progs, cxx_new_handler_retry_throws_bad_alloc)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/cxx_new_handler", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "cxx_new_handler, preloaded run");
    cr_assert(strstr(r.out, "aligned new (align 64), with handler: bad_alloc after 3 handler calls: ok\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "aligned new[] (align 64), no handler: bad_alloc after 0 handler calls: ok\n"),
              "%s", r.out);
    /* A handler that throws: the nothrow forms return NULL (the exception
     * ended the process, from pfalloc's code where nothing catches). */
    cr_assert(strstr(r.out, "nothrow new (align 16), with throwing handler: NULL after 1 handler calls: ok\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "aligned nothrow new (align 4096), with throwing handler: NULL after 1 handler calls: "
                            "ok\n"),
              "%s", r.out);
    /* An alignment that is not a power of two: bad_alloc (NULL) at once,
     * as libstdc++'s operators, never a block aligned to something else. */
    cr_assert(strstr(r.out, "aligned new of 10 bytes (bad align 24): bad_alloc after 0 handler calls: ok\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "aligned nothrow new of 10 bytes (bad align 3): NULL after 0 handler calls: ok\n"),
              "%s", r.out);
    cr_assert(strstr(r.out, "WRONG") == NULL, "%s", r.out);
    cr_assert(strstr(r.out, "failures: 0\n") != NULL, "%s", r.out);
    pf_run_free(&r);
}

/* A C++ library loaded with RTLD_LOCAL (as Python loads its extensions)
 * keeps its C++ runtime out of the global scope: an operator new that
 * fails in it must still throw std::bad_alloc to the library's catch, as
 * it does plainly. pfalloc looked for the runtime's handler and thrower in
 * the global scope only, found neither, and stopped the process ("operator
 * new: out of memory"). */
Test(progs, cxx_new_failing_in_a_local_plugin_throws_to_its_catch)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/dlopen_local", "--huge", PF_PROGS_DIR "/libcxxplug.so", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN}, pre_opts = {.mode = PF_PRELOAD};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "dlopen_local --huge, plain run");
    cr_assert_str_eq(plain.out, "dlopen_local: caught std::bad_alloc\ndlopen_local: 1\n", "%s", plain.err);
    pf_assert_ok(&pre, "dlopen_local --huge, preloaded run");
    cr_assert_str_eq(pre.out, plain.out, "%s", pre.err);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* The same from 8 threads at once, 4 000 times each: the list of modules
 * searched for the C++ runtime was one static array that every failing
 * operator new cleared and refilled, and a thread whose entries another
 * cleared found no runtime and stopped the process (4 runs of 5). */
Test(progs, cxx_new_failing_in_a_local_plugin_from_many_threads_throws_every_time, .timeout = 240)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/dlopen_local", "--huge-threads", PF_PROGS_DIR "/libcxxplug.so", NULL};
    for (int round = 0; round < 3; round++) {
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        pf_assert_ok(&r, "dlopen_local --huge-threads");
        cr_assert_str_eq(r.out, "dlopen_local: caught 32000 of 32000\ndlopen_local: 1\n", "round %d: %s", round, r.err);
        pf_run_free(&r);
    }
}

/* tests/progs/allocstack: the deepest any malloc, calloc, realloc, aligned
 * allocation, free or malloc_trim went below its caller, over a mix that
 * reaches the slow paths (bin flushes with a collection step, other
 * threads' blocks, large blocks, trims). A handler on an alternate signal
 * stack of the historical SIGSTKSZ (8 KiB) has what the kernel's signal
 * frame (AT_MINSIGSTKSZ, about 3.3 KB with AVX-512) leaves, and its own
 * frames to fit beside the allocator's: 3 KiB for the allocator is what
 * such a stack can spare. pfalloc took 6 024 bytes, with a flush holding two
 * batches of 2 KiB on the stack at once; glibc takes about 600 here,
 * mimalloc 1 300, jemalloc and tcmalloc 3 600. */
Test(progs, allocation_calls_take_little_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/allocstack", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN, .timeout_s = 120};
    struct pf_spawn_opts pre_opts = {.mode = PF_PRELOAD, .timeout_s = 120};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "allocstack, plain run");
    pf_assert_ok(&pre, "allocstack, preloaded run");
    unsigned long libc = 0, ours = 0;
    cr_assert(sscanf(plain.out, "allocstack: %lu bytes below the caller", &libc) == 1, "%s", plain.out);
    cr_assert(sscanf(pre.out, "allocstack: %lu bytes below the caller", &ours) == 1, "%s", pre.out);
    cr_log_info("allocstack: pfalloc's calls went %lu bytes below their caller, the C library's %lu", ours, libc);
    cr_assert(ours <= 3072, "pfalloc's calls went %lu bytes below their caller (the C library's %lu): more than 3 KiB",
              ours, libc);
    /* With call sites recorded: the walk of the caller's stack and the
     * thread's call-site memory are on the way too. */
    const char *const sites_env[] = {"PFALLOC_SITES=1", "PFALLOC_STACK_DEPTH=32", NULL};
    struct pf_spawn_opts sites_opts = {.mode = PF_PRELOAD, .env = sites_env, .timeout_s = 120};
    struct pf_run sites;
    pf_spawn(argv, &sites_opts, &sites);
    pf_assert_ok(&sites, "allocstack, preloaded run with call sites");
    unsigned long with_sites = 0;
    cr_assert(sscanf(sites.out, "allocstack: %lu bytes below the caller", &with_sites) == 1, "%s", sites.out);
    cr_log_info("allocstack: %lu bytes with call sites recorded", with_sites);
    cr_assert(with_sites <= 3072, "with call sites, pfalloc's calls went %lu bytes below their caller: more than 3 KiB",
              with_sites);
    pf_run_free(&sites);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* A handler on an alternate stack of the kernel's signal frame and 4 KiB
 * (7 488 bytes here, less than the historical SIGSTKSZ of 8 KiB), with a
 * guard page below it, runs the mix of tests/progs/allocstack 2 000 times
 * while the main thread frees another thread's blocks. pfalloc's slow path
 * overflowed the stack: SIGSEGV, where glibc (3 448 bytes used), mimalloc
 * (4 280), jemalloc (6 280) and tcmalloc (6 824) run it through. Now
 * 4 784. */
Test(progs, a_handler_on_a_small_alternate_stack_can_allocate)
{
    const char *const args[] = {"altstack", NULL};
    compare_prog("allocstack", args);
}

/* A thread's TLS is carved out of the top of its stack, so every byte of
 * pfalloc's TLS is a byte less of every thread's stack (of 16 KiB on a
 * thread with the smallest stack glibc allows). A thread that only starts
 * and ends took 2 176 bytes more of it under pfalloc, its TLS (the call-site
 * memory and the unwinder's recent rules, 1.3 KB, now in the thread's
 * cache); one that also made a malloc and a free took 5 344 bytes more (its
 * exit gave its cache back through two batches of 1 KiB on the stack).
 * Now about 600 and 1 200; the bounds are 1 KiB and 1.5 KiB. */
Test(progs, a_thread_keeps_most_of_its_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/allocstack", "thread", NULL};
    struct pf_spawn_opts plain_opts = {.mode = PF_PLAIN};
    struct pf_spawn_opts pre_opts = {.mode = PF_PRELOAD};
    struct pf_run plain, pre;
    pf_spawn(argv, &plain_opts, &plain);
    pf_spawn(argv, &pre_opts, &pre);
    pf_assert_ok(&plain, "allocstack thread, plain run");
    pf_assert_ok(&pre, "allocstack thread, preloaded run");
    const char *fmt = "allocstack: a thread used %lu bytes of its stack, %lu with a malloc and a free";
    unsigned long idle_libc, used_libc, idle, used;
    cr_assert(sscanf(plain.out, fmt, &idle_libc, &used_libc) == 2, "%s", plain.out);
    cr_assert(sscanf(pre.out, fmt, &idle, &used) == 2, "%s", pre.out);
    cr_log_info("allocstack thread: %lu and %lu bytes under pfalloc, %lu and %lu under the C library", idle, used,
                idle_libc, used_libc);
    cr_assert(idle <= idle_libc + 1024, "a thread that does nothing used %lu bytes of its stack, %lu without pfalloc",
              idle, idle_libc);
    cr_assert(used <= used_libc + 1536,
              "a thread that allocates once used %lu bytes of its stack, %lu without pfalloc", used, used_libc);
    pf_run_free(&plain);
    pf_run_free(&pre);
}

/* pf_stats_get, pf_report, pf_print_families and pf_print_totals, which
 * pfalloc documents as safe in a signal handler, called 1 000 times in turn
 * by a handler on an alternate stack of the kernel's signal frame and 2 KiB
 * (5 440 bytes here). pf_stats_get kept every class's sums in a table of
 * 2.4 KB on the stack (6 568 bytes used in all, SIGSEGV on this stack; now
 * 4 224: each class is summed when its family is), and pf_report took
 * 8 632 (6 296 with pf_stats_get's fix; now 3 336, the signal frame
 * included: it runs on a stack of pfalloc's own, as the reports do). Then pf_print_family and mm_print_memory_usage on a thread: they
 * used 16 200 bytes of its stack, all of the smallest stack glibc allows
 * (16 KiB); on pfalloc's own stack now, about 5 300, most of it the
 * thread's own (TLS and start-up). */
Test(progs, the_counters_and_printers_take_little_of_the_callers_stack)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/allocstack", "stats", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 60};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "allocstack stats");
    cr_assert(strstr(r.out, " bytes: 1000 ok\n") != NULL, "%s", r.out);
    const char *line = strstr(r.out, "allocstack: the printers used ");
    unsigned long used = 0;
    cr_assert(line && sscanf(line, "allocstack: the printers used %lu bytes of a thread's stack", &used) == 1 &&
                  strstr(line, "of a thread's stack: ok\n") != NULL,
              "%s", r.out);
    cr_log_info("allocstack stats: the printers used %lu bytes of a thread's stack", used);
    cr_assert(used <= 8192, "the printers used %lu bytes of a thread's stack: more than half of 16 KiB", used);
    pf_run_free(&r);
}

/* Threads that never give their cache back the usual way
 * (tests/progs/lost_caches.c): a first allocation in glibc's last round of
 * key destructors, whose key is dropped without a call, and a bare exit
 * system call. Each left its cache in use for good: after 200 such threads
 * one after another the exit report counted 201 threads holding a cache
 * and 21.5 MiB of metadata, and every thread past four per CPU was taken
 * for a crowd. A cache whose thread is gone is taken over by the next
 * thread that finds none free. */
Test(progs, a_thread_gone_without_giving_its_cache_back_leaves_none_lost)
{
    PF_REQUIRE_PRELOAD();
    static const char *const modes[] = {"key", "exit"};
    for (int m = 0; m < 2; m++) {
        const char *const argv[] = {PF_PROGS_DIR "/lost_caches", modes[m], "200", NULL};
        struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
        struct pf_run r;
        pf_spawn(argv, &o, &r);
        pf_assert_ok(&r, modes[m]);
        cr_assert(strstr(r.out, ": ok\n") != NULL, "%s: %s", modes[m], r.out);
        const char *t = strstr(r.err, "\n  threads ");
        cr_assert(t != NULL, "%s: no threads line in the exit report:\n%s", modes[m], r.err);
        long held = strtol(t + strlen("\n  threads "), NULL, 10);
        cr_log_info("%s: %ld threads hold a cache at the exit, after 200", modes[m], held);
        cr_assert_leq(held, 2, "%s: %ld threads hold a cache at the exit, after 200 came and went", modes[m], held);
        pf_run_free(&r);
    }
}

/* A burst of threads, four per CPU and four more, all alive at once, that
 * end with a bare exit system call, then threads that start and end one
 * after another (tests/progs/lost_caches.c, burst). Each of those found
 * the cache its predecessor gave back, so none looked for the caches of
 * the threads gone without giving theirs back: all but one stayed held
 * for good (the exit report counted four per CPU and four more threads
 * holding a cache, with one thread left), and the process was taken for
 * a crowd, its threads owning no span and their bins above 32 KiB
 * closed. While more caches are held than may own spans, a thread that
 * takes one gives back those of threads that are gone. */
Test(progs, a_burst_of_threads_gone_without_giving_their_caches_back_leaves_no_crowd)
{
    PF_REQUIRE_PRELOAD();
    cpu_set_t set;
    cr_assert(sched_getaffinity(0, sizeof set, &set) == 0);
    long limit = 4L * CPU_COUNT(&set); /* PF_OWNERS_PER_CPU per CPU */
    const char *const argv[] = {PF_PROGS_DIR "/lost_caches", "burst", "20", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "burst");
    cr_assert(strstr(r.out, ": ok\n") != NULL, "%s", r.out);
    const char *t = strstr(r.err, "\n  threads ");
    cr_assert(t != NULL, "no threads line in the exit report:\n%s", r.err);
    long held = strtol(t + strlen("\n  threads "), NULL, 10);
    cr_log_info("%ld threads hold a cache at the exit (%s); at most %ld may own spans", held, r.out, limit);
    cr_assert_leq(held, limit, "%ld threads hold a cache at the exit, one thread left (%s): more than the %ld that may own spans",
                  held, r.out, limit);
    pf_run_free(&r);
}

/* In a crowd (more threads holding a cache than may own spans), threads
 * that free blocks above 32 KiB another thread allocated
 * (tests/progs/crowd_frees.c): only a malloc of such a class closed its
 * bin, so a thread that never allocates them kept its bin open and parked
 * up to two of them, each of its flushes sending more to the transfer
 * cache, where no thread of the crowd takes them (its refills of the class
 * take the locked path): four consumers of 100 000-byte blocks, every
 * block freed, left four spans of the class held for slots parked in
 * bins, where one (the empty span a family keeps) was expected. A cache
 * taken in a crowd starts with those bins closed, and a free on the slow
 * path closes one (its slots back to their spans) while crowded. */
Test(progs, in_a_crowd_threads_that_only_free_big_blocks_park_none)
{
    PF_REQUIRE_PRELOAD();
    const char *const argv[] = {PF_PROGS_DIR "/crowd_frees", "4", "200", NULL};
    struct pf_spawn_opts o = {.mode = PF_PRELOAD, .timeout_s = 120};
    struct pf_run r;
    pf_spawn(argv, &o, &r);
    pf_assert_ok(&r, "crowd_frees");
    unsigned long long live, spans, slots;
    cr_assert(sscanf(r.out, "live %llu spans %llu slots %llu", &live, &spans, &slots) == 3, "%s", r.out);
    cr_log_info("%s", r.out);
    cr_assert_eq(live, 0, "%s", r.out);
    cr_assert_leq(spans, 1, "every block freed, %llu spans of the class still held: %s", spans, r.out);
    pf_run_free(&r);
}

/* A library the program links registers fork handlers from its
 * constructor (tests/progs/lib/forklib.c), before pfalloc's, so glibc runs
 * its prepare handler after pfalloc's has taken every lock; it allocates a
 * large block there. The process stopped ("malloc called from a signal
 * handler that interrupted malloc"); the forking thread is lent the locks
 * it holds for the fork now, and the program runs as it does plainly. */
Test(progs, a_fork_handler_older_than_pfalloc_may_allocate)
{
    compare_prog("forklib_user", NULL);
}
