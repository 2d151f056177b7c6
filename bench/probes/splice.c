/*
 * Is splice(2) cheaper than recv+send for forwarding WebSocket frames?
 * (docs/performance.md, "splice(2), measured".)
 *
 * One direction of a tunnel over loopback TCP: a client writes a binary
 * frame (4-byte header, SIZE bytes of payload) and waits for a 1-byte ack;
 * the "proxy" (this process's main thread) forwards the frame to a backend,
 * which reads it whole and acks; the proxy passes the ack back. One frame in
 * flight, N of them. Printed: the proxy thread's CPU time per frame.
 *
 *   mode 0: recv into a 64 KiB buffer, send it on;
 *   mode 1: recv(MSG_PEEK) of the frame header (a tunnel must see every
 *           header), then splice socket -> pipe -> socket.
 *
 * cc -O2 -o /tmp/splice bench/probes/splice.c && /tmp/splice MODE SIZE
 * (SIZE below 65536: the header carries a 16-bit length.)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N 100000

static int listener(int *port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (void *)&a, sizeof a) || listen(s, 4) ||
        getsockname(s, (void *)&a, &len)) {
        perror("listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return s;
}

static int connected(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(0x7f000001)};
    if (s < 0 || connect(s, (void *)&a, sizeof a)) {
        perror("connect");
        exit(1);
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

static int accepted(int l) {
    int s = accept(l, 0, 0), one = 1;
    if (s < 0) {
        perror("accept");
        exit(1);
    }
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

static void read_all(int s, char *b, int n) {
    while (n > 0) {
        int r = read(s, b, n);
        if (r <= 0) exit(1);
        b += r;
        n -= r;
    }
}

static void write_all(int s, const char *b, int n) {
    while (n > 0) {
        int r = write(s, b, n);
        if (r <= 0) exit(1);
        b += r;
        n -= r;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODE(0|1) SIZE\n", argv[0]);
        return 2;
    }
    int mode = atoi(argv[1]), size = atoi(argv[2]);
    if (size <= 0 || size > 65535) return 2;
    int frame = size + 4;
    int p1, p2, l1 = listener(&p1), l2 = listener(&p2);
    int client = connected(p1), from_client = accepted(l1);
    int to_backend = connected(p2), backend = accepted(l2);

    if (fork() == 0) {
        if (fork() == 0) { /* the backend */
            char *got = malloc(frame);
            for (int i = 0; i < N; i++) {
                read_all(backend, got, frame);
                write_all(backend, "k", 1);
            }
            exit(0);
        }
        char *msg = malloc(frame); /* the client */
        memset(msg, 'x', frame);
        msg[0] = (char)0x82;
        msg[1] = 126;
        msg[2] = (char)(size >> 8);
        msg[3] = (char)(size & 0xff);
        for (int i = 0; i < N; i++) {
            char ack;
            write_all(client, msg, frame);
            read_all(client, &ack, 1);
        }
        exit(0);
    }

    int pipe_fds[2];
    if (pipe(pipe_fds)) return 1;
    char *buf = malloc(65536);
    struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (int i = 0; i < N; i++) {
        for (int left = frame; left > 0;) {
            if (mode == 0) {
                int r = recv(from_client, buf, 65536, 0);
                if (r <= 0) return 1;
                write_all(to_backend, buf, r);
                left -= r;
            } else {
                char head[14];
                if (recv(from_client, head, sizeof head, MSG_PEEK) <= 0) return 1;
                ssize_t in = splice(from_client, 0, pipe_fds[1], 0, left, SPLICE_F_MOVE);
                if (in <= 0) return 1;
                for (ssize_t out = 0; out < in;) {
                    ssize_t w = splice(pipe_fds[0], 0, to_backend, 0, in - out, SPLICE_F_MOVE);
                    if (w <= 0) return 1;
                    out += w;
                }
                left -= in;
            }
        }
        char ack;
        read_all(to_backend, &ack, 1);
        write_all(from_client, &ack, 1);
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / N;
    printf("mode %d, %d B frames: proxy CPU %.2f us per frame\n", mode, size, us);
    return 0;
}
