/*
 * armstat: a QEMU 7.x TCG plugin (plugin API v1) that counts, per guest PC, executed
 * instructions, memory accesses and taken jumps (a translation block that does not start where
 * the previous one ended means the previous block's last instruction jumped).
 *
 * Arguments: out=<file> (default armstat.tsv); mark=<hex address>: every execution of the
 * instruction at that address appends a snapshot of all counters, so the host can split the
 * counts into intervals (adaptc calls a marker function before each model step).
 * Output lines: "S <k>" starts snapshot k (a final snapshot is written at exit), then one line
 * per executed PC: "<pc hex> <size> <executions> <memory accesses> <taken jumps>".
 *
 * totals=1: a cheap mode for long runs. One counter only: executed instructions, each counted
 * as it starts (inline, exact), except those in the address ranges skip=<lo hex>-<hi hex>
 * (half-open; the argument may repeat). Every execution of the mark instruction appends one
 * line, "<instructions so far>", so the host takes differences between marks; nothing else is
 * written (no per-PC table, no memory or jump counts).
 *
 * Debian 12's QEMU ships no qemu-plugin.h, so the few API functions used are declared here.
 * Build: gcc -O2 -shared -fPIC -o armstat.so armstat.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *, int, void *, uint64_t);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, void (*)(unsigned int, void *), int, void *);
extern void qemu_plugin_register_vcpu_mem_inline(struct qemu_plugin_insn *, int, int, void *, uint64_t);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, void (*)(unsigned int, void *), int, void *);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

enum { INLINE_ADD_U64 = 0, CB_NO_REGS = 0, MEM_RW = 3 };

typedef struct {
    uint64_t pc, n, mem, taken;
    uint32_t size;
} Entry;

typedef struct {
    uint64_t start;
    Entry *last;
} Block;

#define CAPACITY (1u << 20)
static Entry *table;
static uint32_t *used;
static uint32_t n_used;
static Block *previous;
static FILE *out;
static uint64_t mark = UINT64_MAX;
static unsigned snapshots;

#define MAX_SKIP 16
static int totals;
static uint64_t total;
static uint64_t skip_lo[MAX_SKIP], skip_hi[MAX_SKIP];
static int n_skip;

static Entry *lookup(uint64_t pc)
{
    uint32_t h = (uint32_t)(pc * 2654435761u) & (CAPACITY - 1);
    while (table[h].size && table[h].pc != pc) {
        h = (h + 1) & (CAPACITY - 1);
    }
    if (!table[h].size) {
        used[n_used++] = h;
    }
    return &table[h];
}

static void snapshot(void)
{
    fprintf(out, "S %u\n", snapshots++);
    for (uint32_t i = 0; i < n_used; i++) {
        const Entry *e = &table[used[i]];
        if (e->n || e->taken) {
            fprintf(out, "%llx %u %llu %llu %llu\n", (unsigned long long)e->pc, e->size,
                    (unsigned long long)e->n, (unsigned long long)e->mem, (unsigned long long)e->taken);
        }
    }
}

static void on_mark(unsigned int vcpu, void *data)
{
    (void)vcpu;
    (void)data;
    snapshot();
}

static void on_total_mark(unsigned int vcpu, void *data)
{
    (void)vcpu;
    (void)data;
    fprintf(out, "%llu\n", (unsigned long long)total);
}

static int skipped(uint64_t pc)
{
    for (int i = 0; i < n_skip; i++) {
        if (skip_lo[i] <= pc && pc < skip_hi[i]) {
            return 1;
        }
    }
    return 0;
}

static void on_translate_totals(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (pc == mark) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_total_mark, CB_NO_REGS, NULL);
        }
        if (!skipped(pc)) {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, INLINE_ADD_U64, &total, 1);
        }
    }
}

static void on_block(unsigned int vcpu, void *data)
{
    Block *b = data;
    (void)vcpu;
    if (previous && previous->last->pc + previous->last->size != b->start) {
        previous->last->taken++;
    }
    previous = b;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    Block *b = calloc(1, sizeof *b);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, CB_NO_REGS, b);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        Entry *e = lookup(pc);
        e->pc = pc;
        e->size = (uint32_t)qemu_plugin_insn_size(insn);
        if (pc == mark) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, CB_NO_REGS, NULL);
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, INLINE_ADD_U64, &e->n, 1);
        qemu_plugin_register_vcpu_mem_inline(insn, MEM_RW, INLINE_ADD_U64, &e->mem, 1);
        b->last = e;
        if (i == 0) {
            b->start = pc;
        }
    }
}

static void at_exit(qemu_plugin_id_t id, void *data)
{
    (void)id;
    (void)data;
    if (!totals) {
        snapshot();
    }
    fclose(out);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info,
                                                                int argc, char **argv)
{
    const char *path = "armstat.tsv";
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "out=", 4)) {
            path = argv[i] + 4;
        } else if (!strncmp(argv[i], "mark=", 5)) {
            mark = strtoull(argv[i] + 5, NULL, 16);
        } else if (!strncmp(argv[i], "totals=", 7)) {
            totals = atoi(argv[i] + 7);
        } else if (!strncmp(argv[i], "skip=", 5)) {
            char *end;
            if (n_skip == MAX_SKIP) {
                return -1;
            }
            skip_lo[n_skip] = strtoull(argv[i] + 5, &end, 16);
            if (*end != '-') {
                return -1;
            }
            skip_hi[n_skip++] = strtoull(end + 1, NULL, 16);
        }
    }
    if (totals) {
        out = fopen(path, "w");
        if (!out) {
            return -1;
        }
        qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate_totals);
        qemu_plugin_register_atexit_cb(id, at_exit, NULL);
        return 0;
    }
    table = calloc(CAPACITY, sizeof *table);
    used = calloc(CAPACITY, sizeof *used);
    out = fopen(path, "w");
    if (!table || !used || !out) {
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
