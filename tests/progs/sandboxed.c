/*
 * sandboxed — runs a program under a seccomp filter that allows only the
 * system calls listed in a file, as a service runs under systemd's
 * SystemCallFilter=: any other call kills the process with SIGSYS
 * ("kill", systemd's default) or fails with EPERM ("eperm", as with
 * SystemCallErrorNumber=EPERM).
 *
 * usage: sandboxed LIST kill|eperm PROGRAM [ARG...]
 *   LIST  lines "NUMBER NAME" of x86-64 system call numbers; lines that
 *         start with '#' are comments
 * Exit status 2 when the filter cannot be set, 127 when PROGRAM cannot be
 * run; else PROGRAM's.
 * Built like a distribution's binaries (-O2 -g, nothing exported).
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define MAX_CALLS 1000
#define X32_BIT 0x40000000u

static struct sock_filter prog[8 + 2 * MAX_CALLS];

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[2], "kill") != 0 && strcmp(argv[2], "eperm") != 0)) {
        fprintf(stderr, "usage: sandboxed LIST kill|eperm PROGRAM [ARG...]\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    unsigned deny = strcmp(argv[2], "kill") == 0 ? SECCOMP_RET_KILL_PROCESS : SECCOMP_RET_ERRNO | EPERM;
    unsigned short n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT, 0, 1);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    char line[256];
    unsigned calls = 0;
    while (fgets(line, sizeof line, f)) {
        char *end;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        unsigned long nr = strtoul(line, &end, 10);
        if (end == line || calls == MAX_CALLS) {
            fprintf(stderr, "sandboxed: %s: bad line: %s", argv[1], line);
            return 2;
        }
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        calls++;
    }
    fclose(f);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    struct sock_fprog fp = {n, prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0) {
        perror("sandboxed: seccomp");
        return 2;
    }
    execvp(argv[3], argv + 3);
    perror(argv[3]);
    return 127;
}
