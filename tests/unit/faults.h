/*
 * faults.h — for the unit tests: the page faults this process takes, as the
 * kernel's software event counts them (faults taken, not the pages a system
 * call such as madvise(MADV_POPULATE_WRITE) makes resident, which
 * getrusage counts too), and whether a page is resident. Include after
 * criterion.h.
 */
#ifndef PF_TEST_FAULTS_H
#define PF_TEST_FAULTS_H

#include <linux/perf_event.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A counter of this process's page faults, or -1 where perf events are
 * not allowed (the caller says so and checks what it can without). */
static inline int fault_counter(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_SOFTWARE;
    a.config = PERF_COUNT_SW_PAGE_FAULTS;
    a.exclude_hv = 1;
    return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

/* Faults counted so far (0 without a counter). */
static inline uint64_t faults(int fd)
{
    uint64_t n = 0;
    if (fd >= 0)
        cr_assert_eq(read(fd, &n, sizeof n), (ssize_t)sizeof n);
    return n;
}

/* Whether the page holding p is resident. */
static inline int page_resident(const void *p)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)((uintptr_t)p & ~(uintptr_t)(ps - 1)), ps, &v), 0);
    return v & 1;
}

#endif
