/* N1's physical limit: the minimal HTTP server, in C, on one thread.

   Every N1 server does the same work (bench/_http_servers.py): append what
   arrived on a keep-alive connection to that connection's buffer, count the
   complete requests in it by finding each "\r\n\r\n", drop them, and answer
   them all with one write of the fixed response repeated that many times.
   This program does exactly that and nothing else, with no interpreter and
   no event-loop library in the way: one thread, one level-triggered epoll
   set, non-blocking sockets, TCP_NODELAY on every connection as the Python
   servers set it, one read of up to 64 KiB per readiness as they read. What
   it serves is how far the kernel lets any server go on this machine; N1
   reports shardio's ratio to it.

   It is not meant to be run directly: `python -m bench._http_servers
   c-epoll` builds it with `cc -O2` (once per version of this file) and
   replaces itself with it, passing the response bytes as the only argument,
   so that every server sends the same bytes by construction (and the
   harness checks them). It listens on 127.0.0.1, an ephemeral port, prints
   "port N" once it listens, and serves until a signal ends it (SIGTERM,
   Ctrl-C: the default action, nothing to flush or close).

   A connection is either reading or flushing. When a send takes only part
   of the answer (the peer's window is full), the rest is kept, the
   connection waits for EPOLLOUT instead of EPOLLIN, and it reads again only
   once everything is sent: a client that does not read its answers stops
   being read, as trio's and shardio's send_all stop their handlers. With
   wrk's one request in flight per connection this never happens; it is here
   so that the server is correct, not for speed. */

#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_SIZE 65536
#define MAX_EVENTS 256

static const char *response;
static size_t response_size;

/* Scratch space for one answer: the response repeated `count` times. */
static char *answer;
static size_t answer_capacity;

struct connection {
    int fd;
    char *in;       /* received bytes not yet part of a complete request */
    size_t in_size, in_capacity;
    char *out;      /* the unsent rest of an answer, while flushing */
    size_t out_size, out_sent;
};

/* The listening socket's epoll data: any pointer no connection has. */
static int listener_tag;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void *grow(void *buffer, size_t *capacity, size_t needed) {
    if (needed <= *capacity)
        return buffer;
    size_t capacity_now = *capacity ? *capacity : READ_SIZE;
    while (capacity_now < needed)
        capacity_now *= 2;
    buffer = realloc(buffer, capacity_now);
    if (buffer == NULL)
        die("realloc");
    *capacity = capacity_now;
    return buffer;
}

static void close_connection(struct connection *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->in);
    free(c->out);
    free(c);
}

static void watch(int epoll, int op, struct connection *c, unsigned events) {
    struct epoll_event event = {.events = events, .data.ptr = c};
    if (epoll_ctl(epoll, op, c->fd, &event) < 0)
        die("epoll_ctl");
}

/* Send what is left of the answer; 1 when it is all sent, 0 when the socket
   is full, -1 when the connection is gone. */
static int flush(struct connection *c) {
    while (c->out_sent < c->out_size) {
        ssize_t sent = send(c->fd, c->out + c->out_sent, c->out_size - c->out_sent,
                            MSG_NOSIGNAL);
        if (sent < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
        c->out_sent += (size_t)sent;
    }
    free(c->out);
    c->out = NULL;
    c->out_size = c->out_sent = 0;
    return 1;
}

/* Answer `count` requests with one send; keep what it did not take. Returns
   0 when the connection must now wait for EPOLLOUT, -1 when it is gone. */
static int answer_requests(struct connection *c, size_t count) {
    size_t size = count * response_size;
    answer = grow(answer, &answer_capacity, size);
    for (size_t i = 0; i < count; i++)
        memcpy(answer + i * response_size, response, response_size);
    ssize_t sent = send(c->fd, answer, size, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -1;
        sent = 0;
    }
    if ((size_t)sent == size)
        return 1;
    size_t capacity = 0;
    c->out = grow(NULL, &capacity, size - (size_t)sent);
    memcpy(c->out, answer + sent, size - (size_t)sent);
    c->out_size = size - (size_t)sent;
    c->out_sent = 0;
    return 0;
}

/* One read, then the minimal parsing. Returns -1 when the connection is
   done (closed by the peer, or an error), 0 when it must wait for
   EPOLLOUT, 1 when it stays reading. */
static int on_readable(struct connection *c) {
    c->in = grow(c->in, &c->in_capacity, c->in_size + READ_SIZE);
    ssize_t received = recv(c->fd, c->in + c->in_size, READ_SIZE, 0);
    if (received == 0)
        return -1;
    if (received < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 1 : -1;
    c->in_size += (size_t)received;
    size_t count = 0, start = 0;
    const char *end;
    while ((end = memmem(c->in + start, c->in_size - start, "\r\n\r\n", 4)) != NULL) {
        start = (size_t)(end - c->in) + 4;
        count++;
    }
    if (count == 0)
        return 1;
    memmove(c->in, c->in + start, c->in_size - start);
    c->in_size -= start;
    int answered = answer_requests(c, count);
    return answered < 0 ? -1 : answered;
}

static void accept_all(int epoll, int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            die("accept4");
        }
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            die("setsockopt TCP_NODELAY");
        struct connection *c = calloc(1, sizeof *c);
        if (c == NULL)
            die("calloc");
        c->fd = fd;
        watch(epoll, EPOLL_CTL_ADD, c, EPOLLIN);
    }
}

static int listen_on_loopback(void) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0)
        die("socket");
    int one = 1;
    if (setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0)
        die("bind");
    if (listen(listener, SOMAXCONN) < 0)
        die("listen");
    socklen_t size = sizeof address;
    if (getsockname(listener, (struct sockaddr *)&address, &size) < 0)
        die("getsockname");
    printf("port %d\n", ntohs(address.sin_port));
    fflush(stdout);
    return listener;
}

int main(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: %s RESPONSE (the bytes to answer every request with)\n",
                argv[0]);
        return 2;
    }
    response = argv[1];
    response_size = strlen(response);

    int listener = listen_on_loopback();
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0)
        die("epoll_create1");
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = &listener_tag};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) < 0)
        die("epoll_ctl");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int ready = epoll_wait(epoll, events, MAX_EVENTS, -1);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < ready; i++) {
            if (events[i].data.ptr == &listener_tag) {
                accept_all(epoll, listener);
                continue;
            }
            struct connection *c = events[i].data.ptr;
            int state;
            if (c->out_size > 0) {
                state = flush(c);
                if (state == 1)
                    watch(epoll, EPOLL_CTL_MOD, c, EPOLLIN);
            } else {
                state = on_readable(c);
                if (state == 0)
                    watch(epoll, EPOLL_CTL_MOD, c, EPOLLOUT);
            }
            if (state < 0)
                close_connection(c);
        }
    }
}
