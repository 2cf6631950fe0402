// cxxplug — a C++ plugin whose constructor ends in a call to the C++
// runtime: built -O2, the call is a jump, so the constructor leaves no
// frame of its own under what the runtime allocates there (a string's
// buffer of 1001 bytes). The string and its buffer are the plugin's, kept
// through a global: the program's own, still reachable. Built twice, the
// second (cxxplug2) with a buffer of 1501 bytes.
// cxxplug_try_huge asks for an array no memory can hold and says whether
// it caught std::bad_alloc (1), got an array (2) or nothing at all (0);
// cxxplug_try_huge_threads does it `rounds` times in each of `threads`
// threads at once and counts the catches.
#include <atomic>
#include <cstdint>
#include <new>
#include <string>
#include <thread>
#include <vector>

#ifndef CXXPLUG_RESERVE
#define CXXPLUG_RESERVE 1000
#endif

std::string *cxxplug_kept;

__attribute__((constructor)) static void cxxplug_init()
{
    cxxplug_kept = new std::string;
    cxxplug_kept->reserve(CXXPLUG_RESERVE);
}

/* Where the array goes: a pair of new and delete the compiler may leave
 * out altogether. */
char *volatile cxxplug_huge;

extern "C" int cxxplug_try_huge(void)
{
    volatile size_t n = SIZE_MAX / 2;
    try {
        cxxplug_huge = new char[n];
        return 2;
    } catch (const std::bad_alloc &) {
        return 1;
    }
}

extern "C" int cxxplug_try_huge_threads(int threads, int rounds)
{
    std::atomic<int> caught{0};
    std::vector<std::thread> running;
    for (int t = 0; t < threads; t++)
        running.emplace_back([&caught, rounds] {
            for (int i = 0; i < rounds; i++)
                if (cxxplug_try_huge() == 1)
                    caught++;
        });
    for (auto &t : running)
        t.join();
    return caught;
}
