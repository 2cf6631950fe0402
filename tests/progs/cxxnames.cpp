// cxxnames — C++ allocations the leak report must read right:
//   keep_zero    new S[0] kept in a global: the array cookie (one word of
//                0) and the pointer past it, at the block's end
//   keep_three   new S[3] kept in a global: the pointer past the cookie
//   drop_two     new S[2] whose pointer is dropped: lost
//   keep_big     new S[30000] kept in a global (a large block, 240 008
//                bytes): the pointer past the cookie
//   keep_by_base an object of a class with two bases, kept in a global by
//                a pointer to its second base (inside the object, at that
//                base's virtual table pointer)
//   keep_named<..> / keep_longer<..>: allocation sites whose demangled
//                names are about 400 and 32 000 characters long
// Its output never depends on addresses.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

struct S {
    long v;
    S() : v(7) {}
    ~S() { v = 0; }
};

struct Tail_of_the_name {
    int x;
};

void *volatile cxxnames_sink[8];

__attribute__((noinline)) void keep_zero() { cxxnames_sink[0] = new S[0]; }
__attribute__((noinline)) void keep_three() { cxxnames_sink[1] = new S[3]; }
__attribute__((noinline)) void drop_two()
{
    S *a = new S[2];
    cxxnames_sink[2] = a;
    cxxnames_sink[2] = nullptr;
}

__attribute__((noinline)) void keep_big() { cxxnames_sink[5] = new S[30000]; }

struct Named {
    virtual ~Named() {}
    virtual const char *name() const { return "named"; }
    long serial = 1;
};
struct Listener {
    virtual ~Listener() {}
    virtual void on_event(int) = 0;
};
struct Widget : Named, Listener {
    int hits = 0;
    void on_event(int) override { ++hits; }
};

__attribute__((noinline)) void keep_by_base()
{
    Listener *l = new Widget;
    l->on_event(1);
    cxxnames_sink[6] = l;
}

using Str = std::string;
using Map = std::map<Str, std::vector<Str>>;

template <class A>
__attribute__((noinline)) void keep_named(const A &, Tail_of_the_name)
{
    cxxnames_sink[3] = new long[4];
}

template <class A, class B, class C>
__attribute__((noinline)) void keep_longer(const A &, const B &, const C &)
{
    cxxnames_sink[4] = new long[5];
}

int main()
{
    keep_zero();
    keep_three();
    drop_two();
    keep_big();
    keep_by_base();
    keep_named(std::vector<Str>{}, Tail_of_the_name{1});
    keep_longer(std::map<Map, Map>{}, std::vector<std::map<Map, Map>>{}, std::map<std::vector<Map>, Map>{});
    std::printf("cxxnames: done\n");
    return 0;
}
