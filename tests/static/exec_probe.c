/* A static program the exec-mode tests run inside a sandboxed child (see tests/build.rs).
 * argv[1] says what to try; it reports on stdout and exits 0 unless told otherwise. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/sched.h>
#include <unistd.h>

/* One escape attempt: the syscall's (or libc call's) return value; errno is left as it set it.
 * `host_pid` is a pid of the host (the test's own), which the sandbox must not reach. */
static long attempt(const char *name, long host_pid) {
    if (strcmp(name, "read-passwd") == 0) return open("/etc/passwd", O_RDONLY);
    if (strcmp(name, "list-root") == 0) {
        DIR *d = opendir("/");
        if (!d) return -1;
        long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
        closedir(d);
        errno = 0;
        return n > 0 ? n : -1;
    }
    if (strcmp(name, "create-file") == 0) return open("/escape", O_WRONLY | O_CREAT, 0600);
    if (strcmp(name, "socket-inet") == 0) return socket(AF_INET, SOCK_STREAM, 0);
    if (strcmp(name, "socket-netlink") == 0) return socket(AF_NETLINK, SOCK_RAW, 0);
    if (strcmp(name, "kill-host-pid") == 0) return kill((pid_t)host_pid, 0);
    if (strcmp(name, "ptrace-host-pid") == 0) return ptrace(PTRACE_ATTACH, (pid_t)host_pid, 0, 0);
    if (strcmp(name, "setpriority-host-pid") == 0)
        return setpriority(PRIO_PROCESS, (id_t)host_pid, 19);
    if (strcmp(name, "sethostname") == 0) return sethostname("escaped", 7);
    if (strcmp(name, "mount") == 0) return mount("none", "/", "tmpfs", 0, NULL);
    if (strcmp(name, "unshare-user") == 0) return unshare(CLONE_NEWUSER);
    if (strcmp(name, "clone-newuser") == 0)
        return syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L);
    if (strcmp(name, "clone3-newuser") == 0) {
        struct clone_args args;
        memset(&args, 0, sizeof args);
        args.flags = CLONE_NEWUSER;
        args.exit_signal = SIGCHLD;
        long r = syscall(SYS_clone3, &args, sizeof args);
        if (r == 0) _exit(0);
        return r;
    }
    if (strcmp(name, "io_uring_setup") == 0) return syscall(SYS_io_uring_setup, 8L, 0L);
    if (strcmp(name, "bpf") == 0) return syscall(SYS_bpf, 0L, 0L, 0L);
    if (strcmp(name, "keyctl") == 0) return syscall(SYS_keyctl, 0L, 0L, 0L, 0L, 0L);
    if (strcmp(name, "perf_event_open") == 0)
        return syscall(SYS_perf_event_open, 0L, 0L, -1L, -1L, 0L);
    if (strcmp(name, "userfaultfd") == 0) return syscall(SYS_userfaultfd, 0L);
    if (strcmp(name, "open_by_handle_at") == 0)
        return syscall(SYS_open_by_handle_at, (long)AT_FDCWD, 0L, (long)O_RDONLY);
    if (strcmp(name, "chroot") == 0) return chroot("/");
    if (strcmp(name, "fchdir") == 0) return fchdir(0);
    if (strcmp(name, "write-proc-sys") == 0)
        return open("/proc/sys/kernel/hostname", O_WRONLY);
    if (strcmp(name, "write-sys") == 0) return open("/sys/kernel/uevent_helper", O_WRONLY);
    if (strcmp(name, "tiocsti") == 0) {
        char c = 'x';
        return ioctl(0, TIOCSTI, &c);
    }
    if (strcmp(name, "tioclinux") == 0) {
        char sub = 2;
        return ioctl(0, TIOCLINUX, &sub);
    }
    errno = EINVAL;
    return -2;
}

extern char **environ;

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "";
    if (strcmp(what, "hello") == 0) {
        printf("hello from a static program, argv[2]=%s\n", argc > 2 ? argv[2] : "");
        return 3;
    }
    if (strcmp(what, "passwd") == 0) {
        int fd = open("/etc/passwd", O_RDONLY);
        printf("open /etc/passwd: %s\n", fd < 0 ? strerror(errno) : "opened");
        return 0;
    }
    if (strcmp(what, "socket") == 0) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        printf("socket: %s\n", fd < 0 ? strerror(errno) : "created");
        return 0;
    }
    if (strcmp(what, "env") == 0) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
        return 0;
    }
    if (strcmp(what, "fds") == 0) {
        for (int fd = 0; fd < 64; fd++)
            if (fcntl(fd, F_GETFD) >= 0) printf("%d\n", fd);
        return 0;
    }
    if (strcmp(what, "fd3") == 0) {
        /* A connection passed as fd 3 (run --connect): say hello, print the answer. */
        char buf[256];
        if (write(3, "hello\n", 6) != 6) {
            printf("write fd 3: %s\n", strerror(errno));
            return 1;
        }
        ssize_t n = read(3, buf, sizeof buf);
        if (n <= 0) {
            printf("read fd 3: %s\n", n < 0 ? strerror(errno) : "end of file");
            return 1;
        }
        fwrite(buf, 1, (size_t)n, stdout);
        return 0;
    }
    if (strcmp(what, "echo") == 0) {
        char buf[256];
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0) write(1, buf, (size_t)n);
        return 0;
    }
    if (strcmp(what, "escape") == 0 && argc > 3) {
        /* Prints "NAME: RESULT ERRNO" and exits 0 (unless killed first). */
        errno = 0;
        long r = attempt(argv[2], atol(argv[3]));
        printf("%s: %ld %d\n", argv[2], r, r < 0 ? errno : 0);
        return 0;
    }
    if (strcmp(what, "fork-and-wait") == 0) {
        /* Allowed with allow_processes: a child that exits 7, reaped. */
        pid_t pid = fork();
        if (pid == 0) _exit(7);
        if (pid < 0) {
            printf("fork: %s\n", strerror(errno));
            return 1;
        }
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) {
            printf("waitpid: %s\n", strerror(errno));
            return 1;
        }
        printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return 0;
    }
    if (strcmp(what, "forkbomb") == 0) {
        /* Forks until refused; every child just sleeps (and dies with this init). */
        for (int made = 0;; made++) {
            pid_t pid = fork();
            if (pid == 0) {
                for (;;) sleep(60);
            }
            if (pid < 0) {
                printf("fork refused after %d children: %s\n", made, strerror(errno));
                fflush(stdout);
                return 1;
            }
        }
    }
    if (strcmp(what, "membomb") == 0) {
        /* Touches memory without end, 1 MiB at a time. */
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) {
                printf("malloc failed\n");
                return 1;
            }
            memset(p, 0xa5, 1 << 20);
        }
    }
    fprintf(stderr, "unknown probe %s\n", what);
    return 2;
}
