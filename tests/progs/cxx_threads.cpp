/*
 * cxx_threads — C++ workers on std::thread using the standard containers,
 * strings, shared and unique pointers, plain, array, nothrow and aligned
 * new/delete (alignas(64) and alignas(4096) types, explicit align_val_t),
 * bad_alloc on an impossible request, and objects made on one thread and
 * destroyed on another through a queue. Every checksum comes from the
 * workers' own random streams, so output does not depend on the allocator
 * or on timing. Exit 0 when every check passed. Stderr tells whether the
 * operators the program calls come from libpfalloc.
 *
 * usage: cxx_threads [threads] [rounds]
 */
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace
{

std::atomic<unsigned long> errors{0};

void fail(const char *what)
{
    std::fprintf(stderr, "cxx_threads: %s\n", what);
    errors++;
}

struct alignas(64) Line {
    unsigned char bytes[64];
    std::uint64_t tag;
};

struct alignas(4096) Page {
    unsigned char bytes[4096];
};

struct Node {
    std::string name;
    std::vector<int> values;
    std::uint64_t sum;
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v)
{
    return (h ^ v) * 1099511628211ull;
}

std::uint64_t hash_str(const std::string &s)
{
    std::uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s)
        h = mix(h, c);
    return h;
}

/* One queue per consumer: producers push nodes, the consumer checks and
 * destroys them, so their memory is freed on another thread. */
struct Queue {
    std::mutex lock;
    std::condition_variable ready;
    std::deque<std::unique_ptr<Node>> items;
    bool closed = false;
};

std::uint64_t consume(Queue &q)
{
    std::uint64_t total = 0;
    for (;;) {
        std::unique_lock<std::mutex> hold(q.lock);
        q.ready.wait(hold, [&] { return !q.items.empty() || q.closed; });
        if (q.items.empty())
            return total;
        std::unique_ptr<Node> n = std::move(q.items.front());
        q.items.pop_front();
        hold.unlock();
        std::uint64_t sum = 0;
        for (int v : n->values)
            sum += static_cast<std::uint64_t>(v);
        if (sum != n->sum || n->name.compare(0, 5, "node-") != 0)
            fail("a node arrived damaged");
        total += sum;
    }
}

std::string random_string(std::mt19937_64 &rng)
{
    std::size_t len = rng() % (rng() % 8 == 0 ? 3000 : 40);
    std::string s;
    for (std::size_t i = 0; i < len; i++)
        s.push_back(static_cast<char>('a' + rng() % 26));
    return s;
}

struct Result {
    std::uint64_t checksum = 0;
    unsigned long objects = 0;
    std::uint64_t sent = 0;
};

void aligned_news(std::mt19937_64 &rng, Result &r)
{
    std::vector<Line *> lines;
    for (int i = 0; i < 200; i++) {
        Line *l = new Line;
        if (reinterpret_cast<std::uintptr_t>(l) % alignof(Line) != 0)
            fail("new Line is not 64-byte aligned");
        std::memset(l->bytes, i, sizeof l->bytes);
        l->tag = rng();
        lines.push_back(l);
    }
    std::size_t n = 1 + rng() % 50;
    Line *arr = new Line[n];
    if (reinterpret_cast<std::uintptr_t>(arr) % alignof(Line) != 0)
        fail("new Line[] is not 64-byte aligned");
    for (std::size_t i = 0; i < n; i++)
        arr[i].tag = i;
    Page *pg = new Page;
    if (reinterpret_cast<std::uintptr_t>(pg) % alignof(Page) != 0)
        fail("new Page is not 4096-byte aligned");
    std::memset(pg->bytes, 3, sizeof pg->bytes);
    Page *pgs = new (std::nothrow) Page[3];
    if (!pgs || reinterpret_cast<std::uintptr_t>(pgs) % alignof(Page) != 0)
        fail("nothrow new Page[3] failed or is misaligned");
    void *raw = ::operator new(1000, std::align_val_t(256));
    if (reinterpret_cast<std::uintptr_t>(raw) % 256 != 0)
        fail("operator new(1000, align 256) is misaligned");
    std::memset(raw, 5, 1000);
    ::operator delete(raw, 1000, std::align_val_t(256));
    raw = ::operator new[](3000, std::align_val_t(1024), std::nothrow);
    if (!raw || reinterpret_cast<std::uintptr_t>(raw) % 1024 != 0)
        fail("operator new[](3000, align 1024, nothrow) failed or is misaligned");
    ::operator delete[](raw, std::align_val_t(1024));

    for (std::size_t i = 0; i < lines.size(); i++) {
        if (lines[i]->bytes[63] != static_cast<unsigned char>(i))
            fail("a Line was overwritten");
        r.checksum = mix(r.checksum, lines[i]->tag);
        delete lines[i];
    }
    for (std::size_t i = 0; i < n; i++)
        if (arr[i].tag != i)
            fail("a Line[] element was overwritten");
    delete[] arr;
    if (pg->bytes[4095] != 3)
        fail("the Page was overwritten");
    delete pg;
    delete[] pgs;
    r.objects += 200 + n + 1 + 3 + 2;
}

void containers(std::mt19937_64 &rng, Result &r)
{
    std::vector<std::string> words;
    for (int i = 0; i < 2000; i++)
        words.push_back(random_string(rng));
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    for (const auto &w : words)
        r.checksum = mix(r.checksum, hash_str(w));

    std::unordered_map<std::string, int> counts;
    for (int i = 0; i < 5000; i++) {
        std::string k(1 + rng() % 3, static_cast<char>('a' + rng() % 6));
        counts[k]++;
    }
    std::map<std::string, int> ordered(counts.begin(), counts.end());
    for (const auto &kv : ordered)
        r.checksum =
            mix(mix(r.checksum, hash_str(kv.first)), static_cast<std::uint64_t>(kv.second));

    std::map<int, std::vector<int>> buckets;
    for (int i = 0; i < 3000; i++) {
        int k = static_cast<int>(rng() % 100);
        if (rng() % 4 == 0)
            buckets.erase(k);
        else
            buckets[k].push_back(i);
    }
    for (const auto &kv : buckets)
        r.checksum =
            mix(r.checksum, kv.second.size() * 1000 + static_cast<std::uint64_t>(kv.first));

    std::list<std::shared_ptr<std::string>> shared;
    for (int i = 0; i < 500; i++)
        shared.push_back(std::make_shared<std::string>(random_string(rng)));
    std::vector<std::shared_ptr<std::string>> copies(shared.begin(), shared.end());
    shared.clear();
    for (const auto &p : copies)
        r.checksum = mix(r.checksum, hash_str(*p));

    std::unique_ptr<std::uint64_t[]> big(new std::uint64_t[100000 + rng() % 100000]);
    big[0] = 1;
    std::string grown;
    for (int i = 0; i < 20000; i++)
        grown += static_cast<char>('0' + i % 10);
    r.checksum = mix(r.checksum, hash_str(grown));
    r.objects += words.size() + counts.size() + buckets.size() + copies.size() + 2;
}

void produce(std::mt19937_64 &rng, Queue &q, Result &r)
{
    for (int i = 0; i < 300; i++) {
        auto n = std::make_unique<Node>();
        n->name = "node-" + std::to_string(rng() % 100000);
        n->values.resize(1 + rng() % 200);
        n->sum = 0;
        for (auto &v : n->values) {
            v = static_cast<int>(rng() % 1000);
            n->sum += static_cast<std::uint64_t>(v);
        }
        r.sent += n->sum;
        std::lock_guard<std::mutex> hold(q.lock);
        q.items.push_back(std::move(n));
        q.ready.notify_one();
    }
}

void expect_bad_alloc()
{
    volatile std::size_t huge = SIZE_MAX / 2;
    bool caught = false;
    try {
        char *p = new char[huge];
        p[0] = 1;
        delete[] p;
    } catch (const std::bad_alloc &) {
        caught = true;
    }
    if (!caught)
        fail("new char[SIZE_MAX / 2] did not throw bad_alloc");
    char *q = new (std::nothrow) char[huge];
    if (q != nullptr)
        fail("nothrow new of SIZE_MAX / 2 did not return nullptr");
    delete[] q;
}

/* Which library the program's own references to the operators reach:
 * reported on stderr, so stdout stays the same with and without a preload. */
const char *library_of(void *fn)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return "?";
    const char *base = std::strrchr(info.dli_fname, '/');
    return base ? base + 1 : info.dli_fname;
}

void report_operators()
{
    void *ops[] = {
        reinterpret_cast<void *>(static_cast<void *(*)(std::size_t)>(&::operator new)),
        reinterpret_cast<void *>(static_cast<void *(*)(std::size_t)>(&::operator new[])),
        reinterpret_cast<void *>(
            static_cast<void *(*)(std::size_t, std::align_val_t)>(&::operator new)),
        reinterpret_cast<void *>(
            static_cast<void *(*)(std::size_t, const std::nothrow_t &) noexcept>(&::operator new)),
        reinterpret_cast<void *>(static_cast<void (*)(void *) noexcept>(&::operator delete)),
        reinterpret_cast<void *>(
            static_cast<void (*)(void *, std::size_t) noexcept>(&::operator delete)),
        reinterpret_cast<void *>(
            static_cast<void (*)(void *, std::align_val_t) noexcept>(&::operator delete[])),
        reinterpret_cast<void *>(
            static_cast<void (*)(void *, std::size_t, std::align_val_t) noexcept>(
                &::operator delete)),
    };
    std::size_t n = sizeof ops / sizeof ops[0], ours = 0;
    for (void *op : ops)
        ours += std::strncmp(library_of(op), "libpfalloc", 10) == 0;
    std::fprintf(stderr, "cxx_threads: operators from libpfalloc: %s\n",
                 ours == n   ? "all"
                 : ours == 0 ? "none"
                             : "some");
}

} // namespace

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? std::atoi(argv[1]) : 6;
    int rounds = argc > 2 ? std::atoi(argv[2]) : 6;
    if (nthreads < 1 || nthreads > 64 || rounds < 1)
        return 2;
    report_operators();
    std::vector<Result> results(static_cast<std::size_t>(nthreads));
    std::vector<std::unique_ptr<Queue>> queues;
    for (int i = 0; i < nthreads; i++)
        queues.push_back(std::make_unique<Queue>());
    std::vector<std::uint64_t> received(static_cast<std::size_t>(nthreads));

    std::vector<std::thread> consumers;
    for (int i = 0; i < nthreads; i++)
        consumers.emplace_back([&, i] {
            received[static_cast<std::size_t>(i)] = consume(*queues[static_cast<std::size_t>(i)]);
        });

    std::vector<std::thread> workers;
    for (int i = 0; i < nthreads; i++) {
        workers.emplace_back([&, i] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(i) * 7919 + 17);
            Result &r = results[static_cast<std::size_t>(i)];
            for (int k = 0; k < rounds; k++) {
                aligned_news(rng, r);
                containers(rng, r);
                produce(rng, *queues[static_cast<std::size_t>((i + 1) % nthreads)], r);
            }
            expect_bad_alloc();
        });
    }
    for (auto &t : workers)
        t.join();
    for (auto &q : queues) {
        std::lock_guard<std::mutex> hold(q->lock);
        q->closed = true;
        q->ready.notify_all();
    }
    for (auto &t : consumers)
        t.join();

    std::uint64_t sent = 0, got = 0;
    for (int i = 0; i < nthreads; i++) {
        const Result &r = results[static_cast<std::size_t>(i)];
        std::printf("worker %d: objects %lu checksum %016llx\n", i, r.objects,
                    static_cast<unsigned long long>(r.checksum));
        sent += r.sent;
        got += received[static_cast<std::size_t>(i)];
    }
    std::printf("sent %llu, received %llu\n", static_cast<unsigned long long>(sent),
                static_cast<unsigned long long>(got));
    std::printf("errors: %lu\n", errors.load());
    return errors.load() == 0 && sent == got ? 0 : 1;
}
