/*
 * sigstorm — four threads allocate and free at full speed for a fixed amount
 * of work, checking every block's contents before freeing it, then print one
 * checksum. The checksum depends only on the work (a fixed pseudo-random
 * sequence per thread), never on timing, so a run hammered with report
 * signals must print the same line as a quiet one.
 * Usage: sigstorm [ROUNDS]   (default 2000000 per thread)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define SLOTS 512

struct job {
    unsigned id;
    unsigned long rounds;
    uint64_t sum;
    int bad;
};

static uint64_t next(uint64_t *s)
{
    /* xorshift64*: a fixed sequence per seed */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t pick_size(uint64_t r)
{
    switch (r % 16) {
    case 0:
        return 70000 + (size_t)(r >> 8) % 60000; /* a large block now and then */
    case 1:
    case 2:
        return 1000 + (size_t)(r >> 8) % 7000;
    default:
        return 4 + (size_t)(r >> 8) % 300; /* >= 4: tags and middle byte apart */
    }
}

static void *work(void *arg)
{
    struct job *j = arg;
    unsigned char *slot[SLOTS];
    size_t size[SLOTS];
    memset(slot, 0, sizeof slot);
    uint64_t seed = 0x9E3779B97F4A7C15ull * (j->id + 1);
    for (unsigned long n = 0; n < j->rounds; n++) {
        uint64_t r = next(&seed);
        unsigned i = (unsigned)(r % SLOTS);
        if (slot[i]) {
            unsigned char tag = (unsigned char)(i ^ size[i]);
            if (slot[i][0] != tag || slot[i][size[i] - 1] != tag)
                j->bad++;
            j->sum += size[i] * 31 + slot[i][size[i] / 2];
            if ((r >> 40) % 4 == 0) {
                /* grow in place or move: contents must follow */
                size_t grown = size[i] + (size_t)((r >> 20) % 500) + 1;
                unsigned char *q = realloc(slot[i], grown);
                if (!q) {
                    j->bad++;
                    continue;
                }
                q[grown / 2] = q[size[i] / 2];
                q[0] = q[grown - 1] = (unsigned char)(i ^ grown);
                slot[i] = q;
                size[i] = grown;
                continue;
            }
            free(slot[i]);
            slot[i] = NULL;
        } else {
            size_t s = pick_size(r >> 9);
            unsigned char *p = (r >> 5) % 8 == 0 ? calloc(1, s) : malloc(s);
            if (!p) {
                j->bad++;
                continue;
            }
            unsigned char tag = (unsigned char)(i ^ s);
            p[0] = p[s - 1] = tag;
            p[s / 2] = (unsigned char)(r >> 56);
            slot[i] = p;
            size[i] = s;
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        if (slot[i]) {
            j->sum += size[i];
            free(slot[i]);
        }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;
    struct job jobs[THREADS];
    pthread_t tid[THREADS];
    for (unsigned t = 0; t < THREADS; t++) {
        jobs[t] = (struct job){.id = t, .rounds = rounds};
        if (pthread_create(&tid[t], NULL, work, &jobs[t]) != 0) {
            fprintf(stderr, "sigstorm: pthread_create failed\n");
            return 2;
        }
    }
    uint64_t sum = 0;
    int bad = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        pthread_join(tid[t], NULL);
        sum = sum * 1000003u + jobs[t].sum;
        bad += jobs[t].bad;
    }
    printf("sigstorm: checksum %016llx, %d bad blocks\n", (unsigned long long)sum, bad);
    return bad ? 1 : 0;
}
