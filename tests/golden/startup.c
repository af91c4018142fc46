/*
 * adaptc firmware runtime: vector table, reset handler and semihosting -- the whole C runtime
 * of the example firmware (no newlib crt0). Reset copies .data from flash, zeroes .bss (not
 * .noinit), enables the FPU where there is one, runs main() and exits with its return value.
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Fault_Handler(void);

static int semihost(int op, void *arg)
{
    register int r0 __asm("r0") = op;
    register void *r1 __asm("r1") = arg;
    __asm volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_write0(const char *text)
{
    semihost(0x04, (void *)text);                                     /* SYS_WRITE0 */
}

void sh_exit(int status)
{
    uint32_t block[2] = {0x20026u, (uint32_t)status};                  /* ADP_Stopped_ApplicationExit */
    semihost(0x20, block);                                            /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

int sh_write_file(const char *name, const void *data, uint32_t length)
{
    uint32_t n = 0;
    uint32_t open_args[3];
    uint32_t write_args[3];
    int fd, left;
    while (name[n] != '\0') {
        n++;
    }
    open_args[0] = (uint32_t)name;
    open_args[1] = 5u;                                                /* "wb" */
    open_args[2] = n;
    fd = semihost(0x01, open_args);                                   /* SYS_OPEN */
    if (fd < 0) {
        return -1;
    }
    write_args[0] = (uint32_t)fd;
    write_args[1] = (uint32_t)data;
    write_args[2] = length;
    left = semihost(0x05, write_args);                                /* SYS_WRITE: bytes not written */
    semihost(0x02, write_args);                                       /* SYS_CLOSE */
    return left;
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    uint32_t *dst;
    for (dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
#ifdef __ARM_FP
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;                  /* CPACR: CP10, CP11 full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    sh_exit(main());
}

void Fault_Handler(void)
{
    sh_exit(0xdead);                                                  /* exit status 0xad */
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
