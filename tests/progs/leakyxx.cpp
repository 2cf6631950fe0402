// leakyxx — leaks through operator new, for the leak report tests:
//   leak_records  7 x new record (40 bytes each)
//   leak_text     1 x new std::string of 200 characters (the string object
//                 through new, its 201-byte buffer through the C++ runtime)
// and frees what it allocates elsewhere. Its output never depends on addresses.
#include <cstdio>
#include <string>
#include <vector>

struct record {
    long id;
    long values[4];
};
static_assert(sizeof(record) == 40, "record is 40 bytes");

// Where the leaked pointers go, so the compiler keeps every allocation.
void *volatile leakyxx_sink[16];

__attribute__((noinline)) void leak_records()
{
    for (int i = 0; i < 7; i++) {
        record *r = new record{i, {1, 2, 3, 4}};
        leakyxx_sink[i] = r;
    }
}

__attribute__((noinline)) void leak_text()
{
    std::string *s = new std::string(200, 'x');
    leakyxx_sink[7] = s;
}

__attribute__((noinline)) static unsigned long churn()
{
    std::vector<std::string> v;
    for (int i = 0; i < 500; i++)
        v.push_back(std::string(static_cast<size_t>(i % 90) + 20, 'a'));
    unsigned long sum = 0;
    for (const auto &s : v)
        sum += s.size();
    for (int i = 0; i < 100; i++) {
        record *r = new record{i, {0, 0, 0, 0}};
        sum += static_cast<unsigned long>(r->id);
        delete r;
    }
    return sum;
}

int main()
{
    unsigned long sum = churn();
    leak_records();
    leak_text();
    std::printf("leakyxx: churn %lu\n", sum);
    return 0;
}
