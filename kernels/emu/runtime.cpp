// runtime.cpp: the host emulator's scheduler. NOT a GPU; see docs/emulator.md.
//
// One launch at a time (a process-wide mutex), on the calling OS thread. Blocks run one after
// another in grid order (x fastest). Within a block every CUDA thread is a fiber with its own
// stack (stacks are allocated once and reused); a fiber runs until it finishes or reaches a
// barrier (__syncthreads, or the warp barrier under every warp collective), and the scheduler
// releases a barrier when every thread it names has arrived. A barrier that can never be
// released (threads that exited, or threads waiting on each other at different barriers) ends
// the launch with an error message instead of hanging, and so do malformed launch shapes and
// warp collectives that read lanes outside their mask.
//
// Context switches: on x86-64 a 20-instruction switch that saves the callee-saved registers and
// the FP control words (glibc's swapcontext also saves the signal mask, one system call per
// switch, and a block of 256 threads meeting at one barrier switches 512 times); elsewhere
// ucontext.

#include "cuda_emu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace kemu {
extern const Unit* const g_units[];
extern const size_t g_unit_count;

Fiber* g_cur = nullptr;
uint3 g_block_idx = {0, 0, 0};
dim3 g_block_dim;
dim3 g_grid_dim;

namespace {

enum State : unsigned { READY = 0, AT_BLOCK = 1, AT_WARP = 2, DONE = 3 };

// Kernels keep small register tiles in locals; 256 KiB is far more than any uses, and pages
// never touched cost nothing (the mapping reserves address space only).
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;  // PROT_NONE below each stack: an overflow faults loudly
constexpr size_t kSlotBytes = 64;

std::mutex g_launch_mutex;
std::vector<char*> g_stacks;  // top of each stack, reused by launch after launch
std::vector<Fiber> g_fibers;
void* g_sched_sp = nullptr;
void (*g_call)(void**) = nullptr;
void** g_args = nullptr;
std::string g_error;
std::vector<unsigned char> g_dyn;
unsigned char g_slots[32][32][kSlotBytes];  // [warp][lane]: warp_exchange deposits

#if defined(__x86_64__)
extern "C" void kemu_switch(void** save_sp, void* to_sp);
extern "C" void kemu_fiber_entry();
asm(R"(
    .text
    .p2align 4
    .globl kemu_switch
    .hidden kemu_switch
    .type kemu_switch, @function
kemu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size kemu_switch, .-kemu_switch
)");

void fiber_init(Fiber& f, char* top) {
    uint64_t* sp = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15));
    *--sp = 0;  // fiber_entry's return address: it never returns
    *--sp = reinterpret_cast<uint64_t>(&kemu_fiber_entry);
    for (int i = 0; i < 6; ++i) *--sp = 0;  // rbp rbx r12 r13 r14 r15
    unsigned mxcsr;
    unsigned short fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    *--sp = static_cast<uint64_t>(mxcsr) | (static_cast<uint64_t>(fpucw) << 32);
    f.sp = sp;
}
void switch_to_fiber(Fiber& f) { kemu_switch(&g_sched_sp, f.sp); }
void switch_to_scheduler() { kemu_switch(&g_cur->sp, g_sched_sp); }
#else
std::vector<ucontext_t> g_ctx;
ucontext_t g_sched_ctx;
extern "C" void kemu_fiber_entry();
void fiber_init(Fiber& f, char* top) {
    const size_t i = static_cast<size_t>(&f - g_fibers.data());
    if (g_ctx.size() < g_fibers.size()) g_ctx.resize(g_fibers.size());
    getcontext(&g_ctx[i]);
    g_ctx[i].uc_stack.ss_sp = top - kStackBytes;
    g_ctx[i].uc_stack.ss_size = kStackBytes;
    g_ctx[i].uc_link = nullptr;
    makecontext(&g_ctx[i], kemu_fiber_entry, 0);
}
void switch_to_fiber(Fiber& f) { swapcontext(&g_sched_ctx, &g_ctx[static_cast<size_t>(&f - g_fibers.data())]); }
void switch_to_scheduler() { swapcontext(&g_ctx[static_cast<size_t>(g_cur - g_fibers.data())], &g_sched_ctx); }
#endif

bool ensure_stacks(size_t n, std::string& err) {
    while (g_stacks.size() < n) {
        const size_t bytes = kStackBytes + kGuardBytes;
        void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            err = "host emulator: could not map a fiber stack";
            return false;
        }
        mprotect(m, kGuardBytes, PROT_NONE);
        g_stacks.push_back(static_cast<char*>(m) + bytes);
    }
    return true;
}

std::string fmt(const char* f, unsigned a, unsigned b, unsigned c) {
    char buf[96];
    snprintf(buf, sizeof buf, f, a, b, c);
    return buf;
}
std::string thread_name(const Fiber& f) { return fmt("thread (%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z); }
std::string block_name() { return fmt("block (%u,%u,%u)", g_block_idx.x, g_block_idx.y, g_block_idx.z); }

void wait_at(State s, unsigned mask) {
    g_cur->state = s;
    g_cur->mask = mask;
    switch_to_scheduler();
}

// Releases the warp barriers that can be released; false with `err` set when one never can be.
bool release_warps(unsigned nthreads, bool& released, std::string& err) {
    released = false;
    const unsigned nwarps = (nthreads + 31) / 32;
    for (unsigned w = 0; w < nwarps; ++w) {
        const unsigned lanes = nthreads - w * 32 < 32 ? nthreads - w * 32 : 32;
        bool any = false, ready = true;
        for (unsigned l = 0; l < lanes; ++l) {
            const Fiber& f = g_fibers[w * 32 + l];
            if (f.state != AT_WARP) continue;
            any = true;
            for (unsigned o = 0; o < 32; ++o) {
                if (!((f.mask >> o) & 1u)) continue;
                if (o >= lanes) {
                    err = "warp collective in " + block_name() + ", " + thread_name(f) +
                          fmt(": its mask %#x names lane %u, which this block does not have", f.mask, o, 0);
                    return false;
                }
                const Fiber& p = g_fibers[w * 32 + o];
                if (p.state == DONE) {
                    err = "warp collective in " + block_name() + ", " + thread_name(f) +
                          fmt(": its mask %#x names lane %u, which has exited (it can never arrive)", f.mask, o, 0);
                    return false;
                }
                if (p.state != AT_WARP) ready = false;
            }
        }
        if (any && ready) {
            for (unsigned l = 0; l < lanes; ++l) {
                Fiber& f = g_fibers[w * 32 + l];
                if (f.state == AT_WARP) f.state = READY;
            }
            released = true;
        }
    }
    return true;
}

bool run_block(unsigned nthreads, std::string& err) {
    const unsigned bx = g_block_dim.x, by = g_block_dim.y;
    for (unsigned i = 0; i < nthreads; ++i) {
        Fiber& f = g_fibers[i];
        f.tid = {i % bx, (i / bx) % by, i / (bx * by)};
        f.lane = i % 32;
        f.warp = i / 32;
        f.state = READY;
        f.mask = 0;
        fiber_init(f, g_stacks[i]);
    }
    for (;;) {
        for (unsigned i = 0; i < nthreads; ++i) {
            if (g_fibers[i].state != READY) continue;
            g_cur = &g_fibers[i];
            switch_to_fiber(g_fibers[i]);
            g_cur = nullptr;
            if (!g_error.empty()) {
                err = g_error + " (" + block_name() + ")";
                return false;
            }
        }
        unsigned done = 0, at_block = 0, at_warp = 0;
        for (unsigned i = 0; i < nthreads; ++i) {
            done += g_fibers[i].state == DONE;
            at_block += g_fibers[i].state == AT_BLOCK;
            at_warp += g_fibers[i].state == AT_WARP;
        }
        if (done == nthreads) return true;
        bool released = false;
        if (!release_warps(nthreads, released, err)) return false;
        if (released) continue;
        if (at_block == nthreads - done) {
            if (done > 0) {
                err = "__syncthreads in " + block_name() +
                      fmt(": %u threads wait while %u threads of the block have exited, so the barrier "
                          "can never complete (undefined behaviour on the GPU)",
                          at_block, done, 0);
                return false;
            }
            for (unsigned i = 0; i < nthreads; ++i) g_fibers[i].state = READY;
            continue;
        }
        err = "deadlock in " + block_name() +
              fmt(": %u threads at __syncthreads, %u at warp collectives whose lanes wait elsewhere, %u exited",
                  at_block, at_warp, done);
        return false;
    }
}

bool check_shape(const unsigned grid[3], const unsigned block[3], size_t dyn, std::string& err) {
    const unsigned long long threads = 1ull * block[0] * block[1] * block[2];
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || threads == 0) {
        err = fmt("launch with an empty grid (%u,%u,", grid[0], grid[1], grid[2]) +
              fmt("%u) or block (%u,%u,", grid[2], block[0], block[1]) + fmt("%u)", block[2], 0, 0);
        return false;
    }
    // The limits of compute capability 8.0 (CUDA Programming Guide, "Technical Specifications").
    if (block[0] > 1024 || block[1] > 1024 || block[2] > 64 || threads > 1024) {
        err = fmt("block (%u,%u,%u) exceeds 1024 threads or the per-axis limits (1024,1024,64)", block[0], block[1],
                  block[2]);
        return false;
    }
    if (grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535) {
        err = fmt("grid (%u,%u,%u) exceeds the limits (2^31-1,65535,65535)", grid[0], grid[1], grid[2]);
        return false;
    }
    // Above 48 KiB of dynamic shared memory a kernel needs cudaFuncAttributeMaxDynamicSharedMemorySize,
    // which our launch path never sets.
    if (dyn > 48 * 1024) {
        err = fmt("%u bytes of dynamic shared memory: above the 48 KiB a launch gets without opting in", (unsigned)dyn,
                  0, 0);
        return false;
    }
    return true;
}

const Entry* find_entry(const char* source, const char* kernel, std::string& err) {
    for (size_t u = 0; u < g_unit_count; ++u) {
        if (strcmp(g_units[u]->source, source) != 0) continue;
        for (size_t e = 0; e < g_units[u]->count; ++e)
            if (strcmp(g_units[u]->entries[e].name, kernel) == 0) return &g_units[u]->entries[e];
        err = std::string(source) + " has no extern \"C\" __global__ kernel named " + kernel;
        return nullptr;
    }
    err = std::string("no kernel source named ") + source + " was built into the emulator";
    return nullptr;
}

void copy_err(const std::string& msg, char* err, size_t err_len) {
    if (err == nullptr || err_len == 0) return;
    const size_t n = msg.size() < err_len - 1 ? msg.size() : err_len - 1;
    memcpy(err, msg.data(), n);
    err[n] = 0;
}

}  // namespace

extern "C" void kemu_fiber_entry() {
    g_call(g_args);
    g_cur->state = DONE;
    switch_to_scheduler();
    __builtin_unreachable();
}

void syncthreads() { wait_at(AT_BLOCK, 0); }
void syncwarp(unsigned mask) {
    if (!((mask >> g_cur->lane) & 1u)) fail("__syncwarp: the mask does not include the calling lane");
    wait_at(AT_WARP, mask);
}

void warp_exchange(unsigned mask, const void* mine, size_t bytes, void* all) {
    Fiber* f = g_cur;
    if (bytes > kSlotBytes) fail("warp exchange of more than 64 bytes");
    if (!((mask >> f->lane) & 1u)) fail("warp collective whose mask does not include the calling lane");
    memcpy(g_slots[f->warp][f->lane], mine, bytes);
    wait_at(AT_WARP, mask);  // every lane of the mask has deposited
    unsigned char* out = static_cast<unsigned char*>(all);
    for (unsigned l = 0; l < 32; ++l) {
        if ((mask >> l) & 1u)
            memcpy(out + l * bytes, g_slots[f->warp][l], bytes);
        else
            memset(out + l * bytes, 0, bytes);
    }
    wait_at(AT_WARP, mask);  // every lane has read: the slots may be written again
}

[[noreturn]] void fail(const char* what) {
    if (g_error.empty()) g_error = std::string(what) + " in " + thread_name(*g_cur);
    g_cur->state = DONE;
    switch_to_scheduler();
    __builtin_unreachable();
}

void* dynamic_smem() { return g_dyn.data(); }

}  // namespace kemu

// Runs `kernel` of `source` over the whole grid before returning. 0 on success; otherwise 1 and
// a message in `err` (NUL-terminated, truncated to err_len).
extern "C" int kernels_emu_launch(const char* source, const char* kernel, const unsigned grid[3],
                                  const unsigned block[3], size_t dynamic_smem, void** args, char* err,
                                  size_t err_len) {
    using namespace kemu;
    std::lock_guard<std::mutex> lock(g_launch_mutex);
    std::string msg;
    const Entry* e = find_entry(source, kernel, msg);
    if (e == nullptr || !check_shape(grid, block, dynamic_smem, msg)) {
        copy_err(std::string(source) + "::" + kernel + ": " + msg, err, err_len);
        return 1;
    }
    const unsigned nthreads = block[0] * block[1] * block[2];
    if (!ensure_stacks(nthreads, msg)) {
        copy_err(msg, err, err_len);
        return 1;
    }
    if (g_fibers.size() < nthreads) g_fibers.resize(nthreads);
    // 16-byte aligned like the GPU's; filled with 0xFF (NaN in every float format) per block, so
    // a kernel reading dynamic shared memory it did not write sees NaN.
    g_dyn.assign(dynamic_smem + 16, 0xFF);
    g_block_dim = dim3(block[0], block[1], block[2]);
    g_grid_dim = dim3(grid[0], grid[1], grid[2]);
    g_call = e->call;
    g_args = args;
    g_error.clear();
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                g_block_idx = {x, y, z};
                if (dynamic_smem > 0) memset(g_dyn.data(), 0xFF, dynamic_smem);
                if (!run_block(nthreads, msg)) {
                    copy_err(std::string(source) + "::" + kernel + ": " + msg, err, err_len);
                    g_error.clear();
                    return 1;
                }
            }
    return 0;
}

// The parameter sizes `kernel` declares, for the Rust side to check its argument list against:
// the count, or -1 when there is no such kernel. At most `max` sizes are written.
extern "C" int kernels_emu_kernel_params(const char* source, const char* kernel, unsigned* sizes, size_t max) {
    std::string msg;
    const kemu::Entry* e = kemu::find_entry(source, kernel, msg);
    if (e == nullptr) return -1;
    for (unsigned i = 0; i < e->nparams && i < max; ++i) sizes[i] = e->sizes[i];
    return static_cast<int>(e->nparams);
}
