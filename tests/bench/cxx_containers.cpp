/*
 * cxx_containers — C++ containers and strings across threads: `threads`
 * producers each build, `rounds` times, a bundle of a std::map<string,
 * vector<int>>, a std::unordered_map<uint64_t, string>, a vector<string>
 * (sorted) and one long string, and move it through a bounded queue to
 * their consumer thread, which checks every element against values it
 * recomputes, edits the containers (erasing, appending, reinserting) and
 * destroys them: most of the memory is freed by a thread that did not
 * allocate it, in the sizes and patterns the standard library asks for.
 */
#include "bench.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Bundle {
    unsigned producer;
    uint64_t round;
    std::map<std::string, std::vector<int>> tree;
    std::unordered_map<uint64_t, std::string> hash;
    std::vector<std::string> words;
    std::string text;
};

class Queue {
public:
    explicit Queue(size_t cap) : cap_(cap) {}
    void push(std::unique_ptr<Bundle> b)
    {
        std::unique_lock<std::mutex> l(m_);
        nonfull_.wait(l, [this] { return q_.size() < cap_; });
        q_.push_back(std::move(b));
        nonempty_.notify_one();
    }
    std::unique_ptr<Bundle> pop()
    {
        std::unique_lock<std::mutex> l(m_);
        nonempty_.wait(l, [this] { return !q_.empty(); });
        std::unique_ptr<Bundle> b = std::move(q_.front());
        q_.pop_front();
        nonfull_.notify_one();
        return b;
    }

private:
    size_t cap_;
    std::mutex m_;
    std::condition_variable nonempty_, nonfull_;
    std::deque<std::unique_ptr<Bundle>> q_;
};

std::string key_of(unsigned p, uint64_t r, size_t i)
{
    return "key:" + std::to_string(p) + ":" + std::to_string(r) + ":" + std::to_string(i * 7919 % 100003);
}

std::string word_of(uint64_t r, size_t i)
{
    size_t len = 1 + (i * 31 + r) % 40;
    return std::string(len, (char)('a' + (i + r) % 26)) + std::to_string(i);
}

std::unique_ptr<Bundle> build(unsigned p, uint64_t r, size_t n)
{
    std::unique_ptr<Bundle> b(new Bundle);
    b->producer = p;
    b->round = r;
    for (size_t i = 0; i < n; i++) {
        std::vector<int> v;
        for (size_t j = 0; j <= i % 17; j++)
            v.push_back((int)(i + j));
        b->tree.emplace(key_of(p, r, i), std::move(v));
        b->hash[(uint64_t)i * 2654435761u + r] = word_of(r, i);
        b->words.push_back(word_of(r, n - 1 - i));
        b->text += std::to_string(i);
        b->text += ',';
    }
    std::sort(b->words.begin(), b->words.end());
    return b;
}

void check(Bundle &b, size_t n)
{
    if (b.tree.size() != n || b.hash.size() != n || b.words.size() != n)
        bench_fail("bundle %u/%llu: sizes %zu %zu %zu, expected %zu", b.producer, (unsigned long long)b.round,
                   b.tree.size(), b.hash.size(), b.words.size(), n);
    std::string expect_text;
    for (size_t i = 0; i < n; i++) {
        auto t = b.tree.find(key_of(b.producer, b.round, i));
        if (t == b.tree.end() || t->second.size() != i % 17 + 1)
            bench_fail("bundle %u/%llu: map entry %zu wrong", b.producer, (unsigned long long)b.round, i);
        for (size_t j = 0; j < t->second.size(); j++)
            if (t->second[j] != (int)(i + j))
                bench_fail("bundle %u/%llu: map vector %zu wrong", b.producer, (unsigned long long)b.round, i);
        auto h = b.hash.find((uint64_t)i * 2654435761u + b.round);
        if (h == b.hash.end() || h->second != word_of(b.round, i))
            bench_fail("bundle %u/%llu: hash entry %zu wrong", b.producer, (unsigned long long)b.round, i);
        expect_text += std::to_string(i);
        expect_text += ',';
    }
    if (b.text != expect_text)
        bench_fail("bundle %u/%llu: text differs", b.producer, (unsigned long long)b.round);
    if (!std::is_sorted(b.words.begin(), b.words.end()))
        bench_fail("bundle %u/%llu: words not sorted", b.producer, (unsigned long long)b.round);
    for (size_t i = 0; i < n; i++)
        if (!std::binary_search(b.words.begin(), b.words.end(), word_of(b.round, i)))
            bench_fail("bundle %u/%llu: word %zu missing", b.producer, (unsigned long long)b.round, i);
}

/* The consumer's own churn on memory the producer allocated. */
void edit(Bundle &b)
{
    size_t i = 0;
    for (auto it = b.tree.begin(); it != b.tree.end(); i++) {
        if (i % 2 == 0) {
            it = b.tree.erase(it);
        } else {
            it->second.resize(it->second.size() * 3);
            ++it;
        }
    }
    for (auto &w : b.words)
        w += "-seen";
    for (size_t k = 0; k < i / 2; k++)
        b.hash.erase((uint64_t)k * 2654435761u + b.round);
    b.text.append(b.text);
}

} // namespace

int main(int argc, char **argv)
{
    static const char *const keys[] = {"threads", "rounds", "n", NULL};
    struct bench_args a = bench_parse(argc, argv, keys);
    unsigned threads = (unsigned)bench_opt(&a, "threads", 2, 2);
    uint64_t rounds = bench_opt(&a, "rounds", 20, 2);
    size_t n = (size_t)bench_opt(&a, "n", 20000, 4000);
    if (threads == 0 || threads > 64 || n == 0)
        bench_fail("need 0 < threads <= 64 and n > 0");

    std::vector<std::unique_ptr<Queue>> queues;
    for (unsigned t = 0; t < threads; t++)
        queues.emplace_back(new Queue(2));
    std::vector<uint64_t> consumed(threads, 0);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; t++) {
        pool.emplace_back([&, t] {
            for (uint64_t r = 0; r < rounds; r++)
                queues[t]->push(build(t, r, n));
            queues[t]->push(nullptr);
        });
        pool.emplace_back([&, t] {
            for (;;) {
                std::unique_ptr<Bundle> b = queues[t]->pop();
                if (!b)
                    break;
                if (b->producer != t || b->round != consumed[t])
                    bench_fail("consumer %u got bundle %u/%llu out of order", t, b->producer,
                               (unsigned long long)b->round);
                check(*b, n);
                edit(*b);
                consumed[t]++;
            }
        });
    }
    for (auto &th : pool)
        th.join();
    for (unsigned t = 0; t < threads; t++)
        if (consumed[t] != rounds)
            bench_fail("consumer %u saw %llu bundles of %llu", t, (unsigned long long)consumed[t],
                       (unsigned long long)rounds);
    printf("cxx_containers: %u producer/consumer pairs x %llu bundles of %zu elements: ok\n", threads,
           (unsigned long long)rounds, n);
    return 0;
}
