// symbolsxx — C++ leaks from functions the program does not export, built
// -O2 -g without exported symbols, for the symbol tests:
//   store::cache::fill()        3 x new entry (48 bytes each), a member function
//   (anonymous)::make_tokens()  2 x new token (24 bytes each), in an unnamed namespace
// Its output never depends on addresses.
#include <cstdio>

namespace {
struct token {
    long kind, start, end;
};
static_assert(sizeof(token) == 24, "token is 24 bytes");
}

// Where the leaked pointers go, so the compiler keeps every allocation.
static void *volatile sink[16];

namespace store {
struct entry {
    long key, value[5];
};
static_assert(sizeof(entry) == 48, "entry is 48 bytes");

struct cache {
    __attribute__((noinline)) void fill();
};

void cache::fill()
{
    for (int i = 0; i < 3; i++)
        sink[i] = new entry{i, {0, 1, 2, 3, 4}};
}
} // namespace store

namespace {
__attribute__((noinline)) void make_tokens()
{
    for (int i = 0; i < 2; i++)
        sink[4 + i] = new token{i, 0, 1};
}
} // namespace

int main()
{
    store::cache c;
    c.fill();
    make_tokens();
    std::printf("symbolsxx: 5 objects kept\n");
    return 0;
}
