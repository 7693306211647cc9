/*
 * Workloads for tests/lifetimes_test.ts: processes whose threads outlive,
 * replace or end apart from their main thread. Each mode forks a child that
 * does the work; the parent (this process) reaps it with waitpid() and prints
 * the status it got: the reference a waiter must agree with.
 *
 * Lines on stdout (one write each):
 *   child PID              the process the test watches
 *   thread TID START END   a thread's own CLOCK_MONOTONIC start and end (ns)
 *   last NS                CLOCK_MONOTONIC just before the last thread ends
 *   status STATUS NS       waitpid()'s raw status, CLOCK_MONOTONIC after it returned
 *
 * Modes (argv[1]); GATE (argv[2]) is a file the child waits for before it ends:
 *   nonmain-exec GATE  a second thread execs this program ("after-exec"),
 *                      which exits 5; the main thread is killed by the exec
 *   pthread-exit GATE  the main thread calls pthread_exit(); a second thread
 *                      exits 7 after the gate opens
 *   thread-life GATE   a thread lives ~200 ms and prints its own lifetime
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *gate;
static char self[4096];

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void say(const char *line) {
  (void)!write(1, line, strlen(line));
}

static void wait_gate(void) {
  while (access(gate, F_OK) != 0) usleep(5000);
}

static void *exec_thread(void *arg) {
  (void)arg;
  wait_gate();
  char *argv[] = {self, "after-exec", NULL};
  execv(self, argv);
  _exit(99);
}

static void *exit7_thread(void *arg) {
  (void)arg;
  wait_gate();
  usleep(300000);
  char line[64];
  snprintf(line, sizeof line, "last %lld\n", now_ns());
  say(line);
  exit(7);
}

static void *timed_thread(void *arg) {
  (void)arg;
  long long start = now_ns();
  usleep(200000);
  long long end = now_ns();
  char line[128];
  snprintf(line, sizeof line, "thread %ld %lld %lld\n", (long)syscall(SYS_gettid), start, end);
  say(line);
  return NULL;
}

static void child(const char *mode) {
  pthread_t thread;
  if (strcmp(mode, "nonmain-exec") == 0) {
    pthread_create(&thread, NULL, exec_thread, NULL);
    for (;;) pause();
  } else if (strcmp(mode, "pthread-exit") == 0) {
    pthread_create(&thread, NULL, exit7_thread, NULL);
    pthread_exit(NULL);
  } else if (strcmp(mode, "thread-life") == 0) {
    wait_gate();
    pthread_create(&thread, NULL, timed_thread, NULL);
    pthread_join(thread, NULL);
    exit(0);
  }
  _exit(98);
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "after-exec") == 0) {
    usleep(300000);
    char line[64];
    snprintf(line, sizeof line, "last %lld\n", now_ns());
    say(line);
    return 5;
  }
  if (argc < 3) return 2;
  gate = argv[2];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return 2;
  self[n] = 0;
  pid_t pid = fork();
  if (pid == 0) child(argv[1]);
  char line[128];
  snprintf(line, sizeof line, "child %d\n", pid);
  say(line);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return 3;
  snprintf(line, sizeof line, "status %d %lld\n", status, now_ns());
  say(line);
  return 0;
}
