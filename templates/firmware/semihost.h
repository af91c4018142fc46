/*
 * adaptc firmware runtime: Arm semihosting calls (QEMU -semihosting, debug probes).
 * Implemented in startup.c; on hardware without a debugger attached, `bkpt 0xAB` halts.
 */
#ifndef ADAPTC_SEMIHOST_H
#define ADAPTC_SEMIHOST_H

#include <stdint.h>

void sh_write0(const char *text);                                       /* print (QEMU: stderr) */
int sh_write_file(const char *name, const void *data, uint32_t length); /* host file; 0 = all written */
void sh_exit(int status) __attribute__((noreturn));                     /* emulator exit status */

#endif /* ADAPTC_SEMIHOST_H */
