/* The module's threads: a caller and up to GC_MAX_HELPERS helper threads share a job, a list
   of tasks fn(b, lo, hi) over 0 <= lo < hi <= n, cut into pieces of `chunk` iterations.
   Pieces are claimed one at a time from a shared counter, the caller claiming too, so the
   caller never waits for a helper that has not started: it waits only for pieces a helper
   has claimed and is running. On a busy machine a helper that is not scheduled in time
   simply takes no piece, where a fork-join team (OpenMP) would wait a whole time slice for
   it at every loop. A piece is always computed the same way whichever thread runs it.

   A helper the OS takes off its core in the middle of a piece still holds the caller up. When
   a caller has waited for helpers more than twice as long as it worked itself (a busy
   machine), the module's jobs run on the caller alone for a while: on a machine without a
   free core, one thread is the faster choice. The while is GC_BACKOFF_MIN_NS after a lone
   stall (a helper's core briefly taken), twice the last after each stall that follows, up
   to GC_BACKOFF_MAX_NS, and halves again with each job the helpers do not hold up.

   After a job a helper polls for the next one for GC_SPIN_NS, then sleeps on a condition
   variable; a caller wakes the sleepers. A second call while a job runs (another Python
   thread in the same module) runs its tasks on its own thread. After fork() the child starts
   with no helpers and makes new ones when it needs them. */
#include <ctype.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define GC_MAX_HELPERS 63
#define GC_MAX_TASKS 8
#define GC_SPIN_NS 50000    /* a helper's polling after a job, before it sleeps */
#define GC_YIELD_NS 50000   /* a caller's polling for running pieces before it yields */
#define GC_STALL_NS 200000  /* waiting longer than this (and than twice the caller's work) */
#define GC_BACKOFF_MIN_NS 2000000  /* ... makes the jobs of the next 2 ms run alone, */
#define GC_BACKOFF_MAX_NS 200000000  /* ... up to 0.2 s after stall upon stall */

#if defined(__x86_64__) || defined(__i386__)
#define GC_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define GC_RELAX() __asm__ __volatile__("yield")
#else
#define GC_RELAX() ((void)0)
#endif

typedef void (*gc_range_fn)(const void* b, Py_ssize_t lo, Py_ssize_t hi);
typedef struct { gc_range_fn fn; const void* b; Py_ssize_t n, chunk; } gc_task;
typedef struct { const gc_task* tasks; int ntasks; uint32_t first[GC_MAX_TASKS + 1]; } gc_job;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int helpers;        /* helper threads started (in this process) */
    int busy;           /* a caller holds the pool */
    int sleeping;       /* helpers waiting on `wake` */
    int limit;          /* helpers that may take part in the current job */
    int forks;          /* the fork handler is registered */
    const gc_job* job;  /* the current job; read by a helper only once it holds a piece */
    uint32_t total[2];  /* pieces of the job of each generation parity */
    uint64_t next;      /* generation << 32 | the next unclaimed piece */
    uint32_t done;      /* pieces of the current job finished */
    uint64_t helped;    /* pieces run by helpers, ever (for tests and curious users) */
    uint64_t stalls;    /* times a caller waited too long for helpers (see above) */
    int64_t alone_until;  /* gc_now() before which jobs run on the caller alone */
    int64_t backoff;      /* how long the next stall makes them run alone (0: the least) */
} gc_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static int64_t gc_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* A piece of generation `gen`, or -1 when it has none left (or is over). The counter holds the
   generation, so a claim made with a stale view of an earlier job fails; `total` is read from
   the slot of the generation's parity, which the next job does not write. */
static int64_t gc_claim(uint32_t gen) {
    uint64_t v = __atomic_load_n(&gc_pool.next, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen) return -1;
        if ((uint32_t)v >= __atomic_load_n(&gc_pool.total[gen & 1], __ATOMIC_RELAXED)) return -1;
        if (__atomic_compare_exchange_n(&gc_pool.next, &v, v + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return (int64_t)(uint32_t)v;
    }
}

static void gc_piece(const gc_job* job, uint32_t k) {
    int t = 0;
    while (k >= job->first[t + 1]) t++;
    const gc_task* task = &job->tasks[t];
    Py_ssize_t lo = (Py_ssize_t)(k - job->first[t]) * task->chunk;
    Py_ssize_t hi = task->n - lo < task->chunk ? task->n : lo + task->chunk;
    task->fn(task->b, lo, hi);
    __atomic_add_fetch(&gc_pool.done, 1, __ATOMIC_RELEASE);
}

static void* gc_helper(void* arg) {
    int id = (int)(intptr_t)arg;
    uint32_t seen = (uint32_t)(__atomic_load_n(&gc_pool.next, __ATOMIC_ACQUIRE) >> 32);
    for (;;) {
        int64_t until = gc_now() + GC_SPIN_NS;
        int polls = 0;
        uint32_t gen;
        while ((gen = (uint32_t)(__atomic_load_n(&gc_pool.next, __ATOMIC_SEQ_CST) >> 32)) == seen) {
            GC_RELAX();
            if (++polls % 64 || gc_now() < until) continue;
            pthread_mutex_lock(&gc_pool.lock);
            __atomic_add_fetch(&gc_pool.sleeping, 1, __ATOMIC_SEQ_CST);
            while ((uint32_t)(__atomic_load_n(&gc_pool.next, __ATOMIC_SEQ_CST) >> 32) == seen)
                pthread_cond_wait(&gc_pool.wake, &gc_pool.lock);
            __atomic_sub_fetch(&gc_pool.sleeping, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&gc_pool.lock);
        }
        seen = gen;
        if (id >= __atomic_load_n(&gc_pool.limit, __ATOMIC_RELAXED)) continue;
        int64_t k;
        while ((k = gc_claim(gen)) >= 0) {
            gc_piece(gc_pool.job, (uint32_t)k);
            __atomic_add_fetch(&gc_pool.helped, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

/* In a forked child the helpers are gone and the lock may be held by a thread that is gone:
   start again from nothing (runs in the child's only thread). */
static void gc_after_fork(void) {
    pthread_mutex_init(&gc_pool.lock, NULL);
    pthread_cond_init(&gc_pool.wake, NULL);
    gc_pool.helpers = gc_pool.sleeping = gc_pool.busy = 0;
}

/* Start helpers until there are `want` (fewer if the system refuses threads). */
static void gc_start(int want) {
    if (!gc_pool.forks) gc_pool.forks = pthread_atfork(NULL, NULL, gc_after_fork) == 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (gc_pool.helpers < want && gc_pool.helpers < GC_MAX_HELPERS) {
        pthread_t t;
        if (pthread_create(&t, &attr, gc_helper, (void*)(intptr_t)gc_pool.helpers)) break;
        gc_pool.helpers++;
    }
    pthread_attr_destroy(&attr);
}

/* (helper threads started, pieces they have run, stalls) */
static void gc_stats(int* helpers, unsigned long long* helped, unsigned long long* stalls) {
    *helpers = gc_pool.helpers;
    *helped = __atomic_load_n(&gc_pool.helped, __ATOMIC_RELAXED);
    *stalls = __atomic_load_n(&gc_pool.stalls, __ATOMIC_RELAXED);
}

/* Run `ntasks` tasks on up to `threads` threads (this one included); returns when all is done. */
static void gc_run(const gc_task* tasks, int ntasks, int threads) {
    gc_job job = {tasks, ntasks, {0}};
    uint64_t total = 0;
    for (int t = 0; t < ntasks; t++) {
        total += tasks[t].n > 0 ? (uint64_t)((tasks[t].n + tasks[t].chunk - 1) / tasks[t].chunk) : 0;
        job.first[t + 1] = (uint32_t)(total < UINT32_MAX ? total : UINT32_MAX);
    }
    int alone = threads <= 1 || total <= 1 || total >= UINT32_MAX || ntasks > GC_MAX_TASKS;
    int64_t start = alone ? 0 : gc_now();
    alone = alone || start < __atomic_load_n(&gc_pool.alone_until, __ATOMIC_RELAXED);
    int expected = 0;
    if (alone || !__atomic_compare_exchange_n(&gc_pool.busy, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        for (int t = 0; t < ntasks; t++)
            if (tasks[t].n > 0) tasks[t].fn(tasks[t].b, 0, tasks[t].n);
        return;
    }
    if (gc_pool.helpers < threads - 1) gc_start(threads - 1);
    uint32_t gen = (uint32_t)(__atomic_load_n(&gc_pool.next, __ATOMIC_RELAXED) >> 32) + 1;
    gc_pool.job = &job;
    __atomic_store_n(&gc_pool.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&gc_pool.limit, threads - 1, __ATOMIC_RELAXED);
    __atomic_store_n(&gc_pool.total[gen & 1], (uint32_t)total, __ATOMIC_RELAXED);
    __atomic_store_n(&gc_pool.next, (uint64_t)gen << 32, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&gc_pool.sleeping, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&gc_pool.lock);
        pthread_cond_broadcast(&gc_pool.wake);
        pthread_mutex_unlock(&gc_pool.lock);
    }
    int64_t k;
    while ((k = gc_claim(gen)) >= 0) gc_piece(&job, (uint32_t)k);
    int64_t worked = 0, now = 0;
    while (__atomic_load_n(&gc_pool.done, __ATOMIC_ACQUIRE) < (uint32_t)total) {
        GC_RELAX();
        now = gc_now();
        if (!worked) worked = now;
        else if (now - worked > GC_YIELD_NS) sched_yield();  /* a helper may need this core */
    }
    /* the caller holds the pool: `backoff` is its own to update */
    int64_t backoff = gc_pool.backoff < GC_BACKOFF_MIN_NS ? GC_BACKOFF_MIN_NS : gc_pool.backoff;
    if (worked && now - worked > GC_STALL_NS && now - worked > 2 * (worked - start)) {
        __atomic_add_fetch(&gc_pool.stalls, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&gc_pool.alone_until, now + backoff, __ATOMIC_RELAXED);
        gc_pool.backoff = backoff < GC_BACKOFF_MAX_NS / 2 ? 2 * backoff : GC_BACKOFF_MAX_NS;
    } else {
        gc_pool.backoff = backoff / 2;
    }
    __atomic_store_n(&gc_pool.busy, 0, __ATOMIC_RELEASE);
}

/* The cores this process may run on. */
static int gc_cores(void) {
#ifdef CPU_COUNT
    cpu_set_t cores;
    if (sched_getaffinity(0, sizeof cores, &cores) == 0) return CPU_COUNT(&cores);
#endif
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)online : 1;
}

/* The threads a module starts with: $GRAPHC_NUM_THREADS when it is set (-1 when it is not a
   whole number), else the cores this process may run on. */
static int gc_default_threads(void) {
    const char* s = getenv("GRAPHC_NUM_THREADS");
    while (s != NULL && isspace((unsigned char)*s)) s++;
    if (s != NULL && *s) {
        long n = 0;
        for (; *s >= '0' && *s <= '9'; s++) n = n < 100000 ? n * 10 + (*s - '0') : n;
        while (isspace((unsigned char)*s)) s++;
        return *s ? -1 : (int)n;
    }
    return gc_cores();
}
