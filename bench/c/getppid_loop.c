// SPDX-License-Identifier: Apache-2.0
/*
 * The syscall counter benchmark's hot loop: getppid() in a tight loop (the
 * raw syscall, so libc cannot cache it), `count` times, `rounds` times;
 * prints the nanoseconds per call of each round on one line.
 *
 *   getppid_loop COUNT ROUNDS
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 1;

	for (int r = 0; r < rounds; r++) {
		double t0 = now_ns();

		for (long i = 0; i < count; i++)
			syscall(SYS_getppid);
		printf("%s%.2f", r ? " " : "", (now_ns() - t0) / count);
	}
	printf("\n");
	return 0;
}
