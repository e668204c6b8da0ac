/*
 * The floor of the exec benchmark (benches/exec.rs): the least a sandbox with an empty root
 * does to run a static program, in C, no error paths beyond exiting. Not part of Portcullis;
 * compiled by the bench with `cc` and timed beside `portcullis run` and bwrap.
 *
 *   exec_floor PROGRAM
 *
 * One clone into new user, pid, net, mount, ipc, uts and cgroup namespaces; the parent writes
 * the id maps and lets the child go; the child dies with its parent, makes its mounts private,
 * pivots into an empty tmpfs, drops every capability, sets no_new_privs and executes PROGRAM
 * from an fd opened before the clone. No seccomp filter, no cgroup, no rlimits, no supervision.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        _exit(111);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc != 2)
        return 2;
    int program = open(argv[1], O_RDONLY | O_CLOEXEC);
    int go[2];
    if (program < 0 || pipe2(go, O_CLOEXEC) != 0)
        return 111;
    long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC |
                 CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD;
    pid_t pid = (pid_t)syscall(SYS_clone, flags, 0, 0, 0, 0);
    if (pid < 0)
        return 111;
    if (pid == 0) {
        char byte;
        close(go[1]);
        if (read(go[0], &byte, 1) != 1)
            _exit(111);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
            _exit(111);
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=4k,mode=0555") != 0 ||
            chdir("/tmp") != 0 || syscall(SYS_pivot_root, ".", ".") != 0 ||
            umount2(".", MNT_DETACH) != 0 || chdir("/") != 0)
            _exit(111);
        struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
        struct __user_cap_data_struct data[2];
        memset(data, 0, sizeof data);
        if (syscall(SYS_capset, &header, data) != 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            _exit(111);
        char *args[] = {"true", NULL};
        char *env[] = {NULL};
        syscall(SYS_execveat, program, "", args, env, AT_EMPTY_PATH);
        _exit(111);
    }
    char path[64], map[64];
    snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
    write_file(path, "deny");
    snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)getuid());
    write_file(path, map);
    snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)getgid());
    write_file(path, map);
    close(go[0]);
    if (write(go[1], "g", 1) != 1)
        return 111;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 111;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
