/*
 * cxxlinked — the same C++ leaks from a program linked with the C++ runtime
 * as a shared library (cxxlinked) and with it inside the executable
 * (cxxlinked_static, g++ -static-libstdc++ -static-libgcc, as gcc's own
 * compilers and many shipped programs are): one string kept in a global,
 * one made and dropped (its object definitely lost, its characters
 * indirectly), and an exception thrown and caught. The leak report must
 * read the same for both: sites in the program's functions (not in
 * operator new), demangled, and the runtime's own objects (its emergency
 * exception pool) apart from the program's.
 */
#include <cstdio>
#include <stdexcept>
#include <string>

namespace store {
struct cache {
    __attribute__((noinline)) static std::string *fill(char c)
    {
        return new std::string(100, c);
    }
};
} // namespace store

std::string *keep;

__attribute__((noinline)) static int thrower(int n)
{
    if (n > 0)
        throw std::runtime_error("thrown on purpose");
    return n;
}

int main(int argc, char **)
{
    keep = store::cache::fill('k');
    std::string *lost = store::cache::fill('l');
    int caught = 0;
    try {
        thrower(argc);
    } catch (const std::exception &e) {
        caught = e.what()[0] == 't';
    }
    std::printf("cxxlinked: %zu %zu %d\n", keep->size(), lost->size(), caught);
    lost = nullptr;
    return 0;
}
