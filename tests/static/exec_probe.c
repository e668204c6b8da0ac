/* A static program the exec-mode tests run inside a sandboxed child (see tests/build.rs).
 * argv[1] says what to try; it reports on stdout and exits 0 unless told otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
    if (strcmp(what, "echo") == 0) {
        char buf[256];
        ssize_t n = read(0, buf, sizeof buf);
        if (n > 0) write(1, buf, (size_t)n);
        return 0;
    }
    fprintf(stderr, "unknown probe %s\n", what);
    return 2;
}
