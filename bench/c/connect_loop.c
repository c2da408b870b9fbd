// SPDX-License-Identifier: Apache-2.0
// Hot loop of the ConnectPolicy benchmark (bench/connect-policy.ts). Moves
// itself into a cgroup (writes its pid to CGROUP_DIR/cgroup.procs), then for
// SECONDS runs one of:
//   udp     one UDP socket connect()ed to 127.0.0.1:PORT_A and :PORT_B in
//           turn. Each connect runs the cgroup's connect4 programs with no
//           handshake and no packet: the call is short, so the hook's cost
//           is a large part of it.
//   tcp     socket() + connect() to a listener of this program on
//           127.0.0.1:PORT_A, accept(), close() of both: a real connect. On
//           loopback the handshake completes within connect(), so one thread
//           does it all: no wake-ups across CPUs, which makes the rate far
//           steadier on a small shared machine. The client closes with
//           SO_LINGER 0 (a reset), so no TIME_WAIT sockets pile up and use up
//           the ephemeral ports during the run.
//   sendto  one unconnected UDP socket sending 1 byte to 127.0.0.1:PORT_A and
//           :PORT_B in turn (the sendmsg4 hook). Sockets of this program bound
//           there never read: once their small receive queues are full the
//           datagrams are dropped, which is cheaper than the ICMP errors a
//           closed port would send back.
// Prints operations per second of wall-clock time and per second of CPU
// time of the process (what the operations cost, whatever else runs on the
// machine; softirq work done in its context included). Exits 1 if any call fails (e.g. EPERM: a program on
// the cgroup denied it).
//
// With BASELINE_CGROUP_DIR the run is cut into slices of SLICE_MS that
// alternate between the two cgroups, and both cgroups' rates are printed
// (first CGROUP_DIR's, then the baseline's): a change of the machine's speed
// during the run (other work on a shared machine) then hits both alike. A
// socket is decided by the programs of the cgroup it was created in, so the
// UDP modes keep one socket per cgroup and the process moves between the two
// (cgroup.procs) only for tcp, outside the timed slices.
//   usage: connect_loop CGROUP_DIR udp|tcp|sendto SECONDS PORT_A PORT_B [BASELINE_CGROUP_DIR]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLICE_MS 100

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static int join_cgroup(const char *dir)
{
	char path[4096], pid[32];
	int fd, n;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	n = snprintf(pid, sizeof(pid), "%d\n", getpid());
	if (write(fd, pid, n) != n) {
		perror(path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int bound_udp(int port)
{
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), small = 1;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		perror("bind udp");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	return fd;
}

static int udp_connect(int fd, const struct sockaddr_in *to)
{
	return connect(fd, (const struct sockaddr *)to, sizeof(*to));
}

static int listener = -1;

static int tcp_connect(const struct sockaddr_in *to)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), peer;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to))) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	peer = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	if (peer < 0)
		return -1;
	close(fd);
	return close(peer);
}

/* What one cgroup's slices add up to. */
struct side {
	const char *cgroup;
	int fd; /* UDP modes: a socket created in this cgroup */
	unsigned long long ops;
	double wall, cpu;
};

static const char *mode;
static struct sockaddr_in to[2];
static char byte;

static int one_op(int fd, int i)
{
	if (mode[0] == 'u')
		return udp_connect(fd, &to[i & 1]);
	if (mode[0] == 's')
		return sendto(fd, &byte, 1, 0, (const struct sockaddr *)&to[i & 1], sizeof(to[0])) == 1 ? 0 : -1;
	return tcp_connect(&to[0]);
}

/* Runs operations for `seconds` and adds them to `s`. */
static void run_slice(struct side *s, double seconds)
{
	double start = now(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID), end = start + seconds, t;

	do {
		for (int i = 0; i < BATCH; i++)
			if (one_op(s->fd, i)) {
				fprintf(stderr, "%s in %s after %llu operations: %s\n", mode, s->cgroup, s->ops, strerror(errno));
				exit(1);
			}
		s->ops += BATCH;
		t = now();
	} while (t < end);
	s->wall += t - start;
	s->cpu += clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu;
}

static int udp_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	if (argc != 6 && argc != 7) {
		fprintf(stderr, "usage: %s CGROUP_DIR udp|tcp|sendto SECONDS PORT_A PORT_B [BASELINE_CGROUP_DIR]\n", argv[0]);
		return 2;
	}
	mode = argv[2];
	double seconds = atof(argv[3]);
	struct side sides[2] = { { .cgroup = argv[1], .fd = -1 }, { .cgroup = argc == 7 ? argv[6] : NULL, .fd = -1 } };
	int n = argc == 7 ? 2 : 1;

	to[0] = loopback(atoi(argv[4]));
	to[1] = loopback(atoi(argv[5]));
	if (strcmp(mode, "udp") && strcmp(mode, "tcp") && strcmp(mode, "sendto")) {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	/* The baseline's socket first, so the process ends up in CGROUP_DIR. */
	for (int k = n - 1; k >= 0; k--) {
		if (join_cgroup(sides[k].cgroup))
			return 1;
		if (mode[0] != 't')
			sides[k].fd = udp_socket();
	}
	if (!strcmp(mode, "sendto")) {
		bound_udp(atoi(argv[4]));
		bound_udp(atoi(argv[5]));
	} else if (!strcmp(mode, "tcp")) {
		struct sockaddr_in a = to[0];
		int one = 1;

		listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) || listen(listener, 128)) {
			perror("listen");
			return 1;
		}
	}

	if (n == 1)
		run_slice(&sides[0], seconds);
	else
		for (int slice = 0; slice * SLICE_MS < seconds * 1000 / n; slice++)
			for (int j = 0; j < n; j++) {
				/* Odd slices run the baseline first: neither side always follows a migration. */
				struct side *s = &sides[(j + slice) % n];
				if (mode[0] == 't' && join_cgroup(s->cgroup))
					return 1;
				run_slice(s, SLICE_MS / 1000.0);
			}
	for (int k = 0; k < n; k++)
		printf("%s%.0f %.0f", k ? " " : "", sides[k].ops / sides[k].wall, sides[k].ops / sides[k].cpu);
	printf("\n");
	return 0;
}
