// SPDX-License-Identifier: Apache-2.0
// Traffic for the packet filter benchmark: a UDP sender and a UDP receiver
// with sendmmsg/recvmmsg, so the kernel path (veth, XDP/tc, UDP) and not the
// tool is the bottleneck.
//   udp_flood send DST_IPV4 PORT SECONDS PAYLOAD   prints datagrams sent
//   udp_flood recv PORT SECONDS                     prints datagrams received
//                                                  (counting starts at the first one)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int do_send(const char *dst, int port, double seconds, int payload)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char buf[1500];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned long long sent = 0;

	if (fd < 0 || inet_pton(AF_INET, dst, &to.sin_addr) != 1) {
		perror("socket/inet_pton");
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = buf;
		iov[i].iov_len = payload;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
	}
	double end = now() + seconds;
	while (now() < end) {
		int n = sendmmsg(fd, msgs, BATCH, 0);
		if (n < 0 && errno != ENOBUFS && errno != EAGAIN) {
			perror("sendmmsg");
			return 1;
		}
		if (n > 0)
			sent += n;
	}
	printf("%llu\n", sent);
	return 0;
}

static int do_recv(int port, double seconds)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int rcvbuf = 8 << 20;
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	static char bufs[BATCH][2048];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	unsigned long long got = 0;
	double start = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me))) {
		perror("bind");
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int n = recvmmsg(fd, msgs, BATCH, 0, NULL);
		double t = now();
		if (n > 0) {
			if (!start)
				start = t;
			got += n;
		}
		if (start && t - start >= seconds)
			break;
		if (!start && n < 0 && errno != EAGAIN && errno != EINTR) {
			perror("recvmmsg");
			return 1;
		}
	}
	printf("%llu %.6f\n", got, now() - start);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "send"))
		return do_send(argv[2], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
	if (argc == 4 && !strcmp(argv[1], "recv"))
		return do_recv(atoi(argv[2]), atof(argv[3]));
	fprintf(stderr, "usage: %s send DST PORT SECONDS PAYLOAD | recv PORT SECONDS\n", argv[0]);
	return 2;
}
